"""The one retry policy: how often and how long transient failures are retried, in one place.

Azure requests are retried per request by azure-core's own RetryPolicy, configured from
:class:`RetryPolicy` when the block builds the clients (``blocks/azure_pipeline.py``);
everything else idempotent (kube API, SSH reads) goes through :func:`call_with_retry`. The
write loops that encode idempotency (re-read before rewrite in :func:`model.plan.converge`;
slot-aware password generation) wait with :func:`delay_for`, which every loop shares: it is
the only place that turns an attempt number and a server's Retry-After into a wait.
No Prefect task retries are stacked on top of these.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from model.errors import AcrEdgeError, TransientError, classify, parse_retry_after

__all__ = [
    "DEFAULT_POLICY",
    "RetryPolicy",
    "backoff_delays",
    "call_with_retry",
    "delay_for",
    "is_transient",
    "parse_retry_after",
]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all (first try included), exponential backoff from ``base_delay`` capped at
    ``max_delay``, each wait jittered by +/- ``jitter``; a server's Retry-After is honoured up
    to the cap."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1 (got {self.attempts})")
        if self.base_delay < 0 or self.max_delay < 0 or not 0 <= self.jitter < 1:
            raise ValueError("delays must be >= 0 and jitter in [0, 1)")

    def replace(self, **changes: float | None) -> RetryPolicy:
        """This policy with the given fields changed (``None`` keeps a field)."""
        given = {k: v for k, v in changes.items() if v is not None}
        if "attempts" in given:
            given["attempts"] = int(given["attempts"])
        return dataclasses.replace(self, **given)  # type: ignore[arg-type]


DEFAULT_POLICY = RetryPolicy()


def is_transient(exc: BaseException) -> bool:
    return isinstance(classify(exc), TransientError)


def _backoff(attempt: int, policy: RetryPolicy) -> float:
    delay = min(policy.max_delay, policy.base_delay * (2**attempt))
    return delay * (1 + random.uniform(-policy.jitter, policy.jitter))


def delay_for(
    cause: TransientError | float | None, attempt: int, policy: RetryPolicy = DEFAULT_POLICY
) -> float:
    """The wait before retry number ``attempt + 1`` (``attempt`` counts from 0).

    Exponential backoff, at least the server's Retry-After (``cause`` is the TransientError
    that carries it, or the seconds themselves), never more than ``policy.max_delay``: a
    Retry-After beyond the cap is the cap, so one throttled answer cannot park a run for an
    hour; the next attempt then meets the server's answer again.
    """
    retry_after = cause.retry_after if isinstance(cause, TransientError) else cause
    delay = _backoff(attempt, policy)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return max(0.0, min(delay, policy.max_delay))


def backoff_delays(
    attempts: int, *, base: float = 0.5, cap: float = 30.0, jitter: float = 0.2
) -> Iterable[float]:
    """``attempts`` successive backoff waits (no Retry-After): for loops that precompute them.
    Prefer :func:`delay_for`, which also honours the server's Retry-After."""
    policy = RetryPolicy(attempts=max(1, attempts), base_delay=base, max_delay=cap, jitter=jitter)
    for attempt in range(attempts):
        yield _backoff(attempt, policy)


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    attempts: int | None = None,
    base_delay: float | None = None,
    max_delay: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[AcrEdgeError, float], None] | None = None,
) -> T:
    """Call ``fn``; retry transient errors with :func:`delay_for` waits.

    For idempotent calls only (reads, connects): a write whose answer was lost belongs in
    :func:`model.plan.converge`, which re-reads before writing again. ``attempts``,
    ``base_delay`` and ``max_delay`` override the policy's fields. Permanent errors propagate
    at once, as the classified ``AcrEdgeError``.
    """
    policy = policy.replace(attempts=attempts, base_delay=base_delay, max_delay=max_delay)
    for attempt in range(policy.attempts):
        try:
            return fn()
        except Exception as exc:
            err = classify(exc, resource=what)
            if not isinstance(err, TransientError) or attempt == policy.attempts - 1:
                if err is exc:
                    raise
                raise err from exc
            delay = delay_for(err, attempt, policy)
            if on_retry is not None:
                on_retry(err, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
