"""Per-site mutual exclusion: provisioning and rotation never overlap on one site.

A Prefect global concurrency limit with limit 1 per (parent registry, site), taken with
``strict=True`` so a missing limit is an error rather than a warning; the flow creates the
limit first if needed. The key holds the parent registry because a connected-registry name
is unique only within its parent: two registries with a site of the same name are two sites
and must not block each other.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flows.inputs import SiteInputs
    from model.azure_context import AzureContext

log = logging.getLogger("acr_edge.flows")

# Prefect names refuse / % & > <; keep the readable parts to what registry names allow.
_UNSAFE = re.compile(r"[^A-Za-z0-9-]", re.ASCII)


class ParentCoordinates(Protocol):
    """What identifies a parent registry (a ParentRegistry block has these fields)."""

    subscription_id: str
    resource_group: str
    registry_name: str


def site_limit_name(parent: ParentCoordinates, site: str) -> str:
    """``site-<registry>-<8 hex of subscription/group/registry>-<connected registry>``.

    The registry name keeps the limit readable in the UI; the digest tells apart registries
    of the same name in other subscriptions, groups or clouds' sandboxes. Azure names are
    case-insensitive, so the digest is too.
    """
    where = "/".join((parent.subscription_id, parent.resource_group, parent.registry_name)).lower()
    digest = hashlib.sha256(where.encode()).hexdigest()[:8]
    registry = _UNSAFE.sub("-", parent.registry_name.lower())
    return f"site-{registry}-{digest}-{_UNSAFE.sub('-', site)}"


def ensure_site_limit(parent: ParentCoordinates, site: str) -> str:
    """Create the site's limit (limit 1) unless it exists; a concurrent create is fine."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = site_limit_name(parent, site)
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
                log.info("created concurrency limit %s (limit 1)", name)
            except ObjectAlreadyExists:
                pass
            return name
        if existing.limit != 1 or not existing.active:
            # Someone widened or disabled it: the exclusion is the point, so restore it.
            from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

            client.update_global_concurrency_limit(
                name, GlobalConcurrencyLimitUpdate(limit=1, active=True)
            )
            log.warning(
                "concurrency limit %s was limit=%s active=%s; reset to 1",
                name,
                existing.limit,
                existing.active,
            )
    return name


@contextmanager
def site_lock(
    parent: ParentCoordinates, site: str, *, timeout_seconds: float | None = 1800
) -> Iterator[None]:
    """Hold the (parent registry, site) slot for the block (strict: never run unlocked)."""
    from prefect.concurrency.sync import concurrency

    name = ensure_site_limit(parent, site)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_seconds):
        yield


@contextmanager
def locked_site(inputs: SiteInputs) -> Iterator[AzureContext]:
    """The site's lock held and the parent registry's Azure clients open for one run; the
    clients are closed before the lock is released."""
    with site_lock(inputs.parent, inputs.site.name):
        ctx = inputs.parent.azure_context()
        try:
            yield ctx
        finally:
            ctx.close()
