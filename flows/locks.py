"""Per-site mutual exclusion: provisioning and rotation never overlap on one site.

A Prefect global concurrency limit ``site-<name>`` with limit 1, taken with ``strict=True`` so a
missing limit is an error rather than a warning; the flow creates the limit first if needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("acr_edge.flows")


def site_limit_name(site: str) -> str:
    return f"site-{site}"


def ensure_site_limit(site: str) -> str:
    """Create the site's limit (limit 1) unless it exists; a concurrent create is fine."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = site_limit_name(site)
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
def site_lock(site: str, *, timeout_seconds: float | None = 1800) -> Iterator[None]:
    """Hold the site's slot for the duration of the block (strict: never run unlocked)."""
    from prefect.concurrency.sync import concurrency

    name = ensure_site_limit(site)
    with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_seconds):
        yield
