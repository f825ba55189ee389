"""Pacing of ARM writes under the subscription write budget: a pure token bucket.

ARM throttles writes per subscription; a fleet run that starts many provisioning runs at once
would meet 429s instead of progress. The fleet flow asks the bucket how long to wait before
starting the next site's run (charged with that run's expected write count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

# Writes one provision-site run makes on a new site: scope map, token, CR, sync password,
# client scope map, client token, attach, client password.
WRITES_PER_PROVISION = 8
# Generate, revoke (and at most one more on an ambiguous failure).
WRITES_PER_ROTATION = 3


@dataclass(frozen=True)
class TokenBucket:
    """``capacity`` writes may burst; ``refill_per_second`` writes accrue per second."""

    capacity: float = 10.0
    refill_per_second: float = 10.0
    tokens: float = 10.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.refill_per_second <= 0:
            raise ValueError("capacity and refill_per_second must be positive")

    def at(self, now: float) -> TokenBucket:
        """The bucket refilled up to ``now`` (time never runs backwards here)."""
        now = max(now, self.updated)
        tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_second)
        return replace(self, tokens=tokens, updated=now)

    def take(self, now: float, cost: float = 1.0) -> tuple[TokenBucket, float]:
        """Reserve ``cost`` writes; returns the new bucket and how long to wait before writing.

        A cost above capacity is charged anyway (it waits for the deficit), so a single big
        run is paced rather than refused.
        """
        if cost < 0:
            raise ValueError("cost must be >= 0")
        bucket = self.at(now)
        remaining = bucket.tokens - cost
        wait = 0.0 if remaining >= 0 else -remaining / self.refill_per_second
        return replace(bucket, tokens=remaining), wait


class Pacer:
    """Thread-safe wrapper that sleeps as the bucket says (clock and sleep injectable)."""

    def __init__(
        self,
        bucket: TokenBucket | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import threading

        self._clock = clock
        self._sleep = sleep
        start = clock()
        base = bucket or TokenBucket()
        self._bucket = replace(base, updated=start)
        self._lock = threading.Lock()
        self.waited = 0.0

    def acquire(self, cost: float = 1.0) -> float:
        with self._lock:
            self._bucket, wait = self._bucket.take(self._clock(), cost)
            self.waited += wait
        if wait > 0:
            self._sleep(wait)
        return wait
