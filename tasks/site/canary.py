"""Canary pulls that wait for a new credential to propagate, and which image to pull.

A freshly generated token password reaches the connected registry only at its next sync; until
then pulls with it fail. The canary retries (bounded) instead of failing the rotation at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from model.errors import TransientError
from tasks.site import ops

if TYPE_CHECKING:
    from tasks.site.connection import SiteConnection

log = logging.getLogger("acr_edge.canary")

CANARY_TAG = "latest"


def canary_image(host: str, repository: str, tag: str = CANARY_TAG) -> str:
    return f"{host}/{repository}:{tag}"


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
