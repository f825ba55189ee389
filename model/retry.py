"""The one retry policy: how often and how long transient failures are retried, in one place.

Azure requests are retried per request by azure-core's own RetryPolicy, configured from
:class:`RetryPolicy` when the block builds the clients; everything else idempotent (kube API,
SSH reads) goes through :func:`call_with_retry`. The two write loops that encode idempotency
(re-read before rewrite in :func:`model.plan.converge`; slot-aware password generation) use
:func:`delay_for`. Prefect task retries are not stacked on top of these.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from model.errors import AcrEdgeError, TransientError, classify

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all (first try included), exponential backoff from ``base_delay`` capped at
    ``max_delay``; a server's Retry-After is honoured up to the cap."""

    attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0


DEFAULT_POLICY = RetryPolicy()


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def is_transient(exc: BaseException) -> bool:
    return isinstance(classify(exc), TransientError)


def retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


def backoff_delays(
    attempts: int, *, base: float = 0.5, cap: float = 30.0, jitter: float = 0.2
) -> Iterable[float]:
    for attempt in range(attempts):
        delay = min(cap, base * (2**attempt))
        yield delay * (1 + random.uniform(-jitter, jitter))


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    attempts: int = 6,
    base_delay: float = 0.5,
    max_delay: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[AcrEdgeError, float], None] | None = None,
) -> T:
    """Call ``fn``; retry transient errors with exponential backoff, honouring Retry-After.

    Permanent errors propagate at once, as the classified ``AcrEdgeError``.
    """
    delays = list(backoff_delays(attempts - 1, base=base_delay, cap=max_delay))
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            err = classify(exc, resource=what)
            if not isinstance(err, TransientError) or attempt == attempts - 1:
                if err is exc:
                    raise
                raise err from exc
            delay = delays[attempt]
            if err.retry_after is not None:
                delay = min(max(delay, err.retry_after), max_delay)
            if on_retry is not None:
                on_retry(err, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def delay_for(err: TransientError, attempt: int, policy: RetryPolicy = DEFAULT_POLICY) -> float:
    """The wait before retry number ``attempt + 1``: backoff, at least the server's
    Retry-After, never more than the cap."""
    delay = next(
        iter(backoff_delays(1, base=policy.base_delay * (2**attempt), cap=policy.max_delay))
    )
    if err.retry_after is not None:
        delay = max(delay, err.retry_after)
    return min(delay, policy.max_delay)
