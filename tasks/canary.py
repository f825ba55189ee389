"""Canary pulls that wait for a new credential to propagate, and which image to pull.

A freshly generated token password reaches the connected registry only at its next sync; until
then pulls with it fail. The canary retries (bounded) instead of failing the rotation at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tasks.errors import TransientError, call_with_retry
from tasks.site import ops

if TYPE_CHECKING:
    from tasks.azure.context import AzureContext
    from tasks.site.connection import SiteConnection

log = logging.getLogger("acr_edge.canary")

CANARY_TAG = "latest"


def canary_image(host: str, repository: str, tag: str = CANARY_TAG) -> str:
    return f"{host}/{repository}:{tag}"


def repositories_of_scope_map(actions: list[str]) -> list[str]:
    """Repositories a scope map lets a client pull (``repositories/<r>/content/read``; pure)."""
    prefix, suffix = "repositories/", "/content/read"
    return sorted(
        {
            a[len(prefix) : -len(suffix)]
            for a in actions
            if a.startswith(prefix) and a.endswith(suffix)
        }
    )


def client_repositories(ctx: AzureContext, scope_map_name: str) -> list[str]:
    """What the client scope map grants; the rotation canary pulls the first of them."""
    rg, reg = ctx.resource_group, ctx.registry

    def read() -> list[str]:
        sm = ctx.mgmt.scope_maps.get(rg, reg, scope_map_name)
        # SDK 15 nests fields under ``properties``; older models had them flat.
        props = getattr(sm, "properties", None)
        return list(getattr(props, "actions", None) or getattr(sm, "actions", None) or [])

    actions = call_with_retry(read, what=f"scopeMaps/{scope_map_name}", **ctx.retry_kwargs())
    return repositories_of_scope_map(actions)


def canary_until_ok(
    conn: SiteConnection,
    namespace: str,
    image: str,
    pull_secret: str,
    *,
    deadline_seconds: float,
    attempt_timeout: float = 30.0,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ops.CanaryResult:
    """Run canaries until one pulls, or raise TransientError after ``deadline_seconds``."""
    start = clock()
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline_seconds - (clock() - start)
        result = ops.run_canary(
            conn, namespace, image, pull_secret, timeout=max(1.0, min(attempt_timeout, remaining))
        )
        if result.ok:
            return ops.CanaryResult(True, f"{result.reason} (attempt {attempts})", result.pod)
        if clock() - start >= deadline_seconds:
            raise TransientError(
                f"{conn.resource}: canary pull of {image} with {pull_secret} still failing after "
                f"{deadline_seconds:g}s ({attempts} attempts): {result.reason}"
            )
        log.info("canary attempt %d failed (%s); retrying", attempts, result.reason)
        sleep(poll)
