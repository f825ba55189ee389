"""ARM's request throttle: token buckets per subscription and per principal, by request kind.

ARM (since 2024, "regional throttling and token bucket algorithm") limits each subscription
per security principal and per operation type: reads 250 tokens refilled at 25/s, writes and
deletes 200 refilled at 10/s. On top of that a *global* subscription bucket, 15 times the
principal one, is shared by every principal. A request is served only if both its
principal bucket and its subscription's global bucket hold a token; it then takes one from
each. A refused request takes none (ARM: "your request isn't processed and a new retry value
is returned") and is answered 429 ``SubscriptionRequestsThrottled`` with ``Retry-After``.

The remaining tokens travel on every throttled-path response as
``x-ms-ratelimit-remaining-subscription-{reads|writes|deletes}`` (the principal's bucket) and
``x-ms-ratelimit-remaining-subscription-global-{kind}`` (the subscription's), only the header
pair of the request's own kind, as recorded live. The clock is injectable so the buckets can
be tested without sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

KINDS = ("reads", "writes", "deletes")
# what ARM's message calls each kind: "Number of 'read' requests for subscription ..."
_SINGULAR = {"reads": "read", "writes": "write", "deletes": "delete"}
GLOBAL_MULTIPLIER = 15.0  # docs: the global subscription limit is 15x the principal limit
THROTTLE_CODE = "SubscriptionRequestsThrottled"


@dataclass(frozen=True)
class Rate:
    """One bucket's shape: ``capacity`` tokens, refilled at ``refill_per_second``."""

    capacity: float
    refill_per_second: float

    def __post_init__(self) -> None:
        if not self.capacity >= 1:
            raise ValueError(f"capacity must be >= 1 (got {self.capacity})")
        if not self.refill_per_second > 0:
            raise ValueError(f"refill_per_second must be > 0 (got {self.refill_per_second})")

    def scaled(self, factor: float) -> Rate:
        return Rate(self.capacity * factor, self.refill_per_second * factor)

    def to_dict(self) -> dict[str, float]:
        return {"capacity": self.capacity, "refill_per_second": self.refill_per_second}


# learn.microsoft.com "Understand how Azure Resource Manager throttles requests" (2024+)
ARM_RATES: dict[str, Rate] = {
    "reads": Rate(250, 25),
    "writes": Rate(200, 10),
    "deletes": Rate(200, 10),
}


def request_kind(method: str) -> str:
    """ARM's operation type of an HTTP method: GET/HEAD read, DELETE delete, the rest write."""
    upper = method.upper()
    if upper in ("GET", "HEAD"):
        return "reads"
    if upper == "DELETE":
        return "deletes"
    return "writes"


def throttled_subscription(path: str) -> str | None:
    """The subscription id a request path is scoped to, or None (not throttled here).

    Only ``/subscriptions/{id}/...`` is subscription-scoped; ``/subscriptions`` itself,
    ``/tenants`` and ``/metadata`` are tenant-level or not ARM operations at all.
    """
    segs = [s for s in path.split("/") if s]
    if len(segs) >= 2 and segs[0].lower() == "subscriptions":
        return segs[1].lower()
    return None


class TokenBucket:
    """A token bucket on an external clock (seconds, monotonic); starts full."""

    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.tokens = float(rate.capacity)
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            gained = (now - self.stamp) * self.rate.refill_per_second
            self.tokens = min(float(self.rate.capacity), self.tokens + gained)
            self.stamp = now

    def available(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def wait_s(self, now: float) -> float:
        """Seconds until one whole token is there (0 if one is there now)."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate.refill_per_second)

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0


@dataclass(frozen=True)
class Admission:
    """The throttle's verdict on one request, with what its response headers report."""

    allowed: bool
    kind: str
    subscription: str
    actor: str
    remaining: int  # the principal's bucket, after this request
    global_remaining: int  # the subscription's global bucket, after this request
    retry_after: int = 0  # seconds, when refused

    def headers(self) -> dict[str, str]:
        out = {
            f"x-ms-ratelimit-remaining-subscription-{self.kind}": str(self.remaining),
            f"x-ms-ratelimit-remaining-subscription-global-{self.kind}": str(self.global_remaining),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out

    def error_body(self) -> dict[str, Any]:
        """ARM's 429 body, as observed live (2025): kind, subscription and actor named."""
        message = (
            f"Number of '{_SINGULAR[self.kind]}' requests for subscription "
            f"'{self.subscription}' actor '{self.actor}' exceeded. Please try again after "
            f"'{self.retry_after}' seconds after additional tokens are available. Refer to "
            f"https://aka.ms/arm-throttling for additional information."
        )
        return {"error": {"code": THROTTLE_CODE, "message": message}}


class ArmThrottle:
    """Buckets per (subscription, principal) and per subscription (global), per kind."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        rates: dict[str, Rate] | None = None,
        global_multiplier: float = GLOBAL_MULTIPLIER,
        min_retry_after: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self.clock = clock
        self.enabled = enabled
        self.rates = dict(ARM_RATES)
        self.rates.update(rates or {})
        self.global_multiplier = float(global_multiplier)
        self.min_retry_after = int(min_retry_after)
        self._principal: dict[tuple[str, str, str], TokenBucket] = {}
        self._global: dict[tuple[str, str], TokenBucket] = {}
        self.throttled = dict.fromkeys(KINDS, 0)
        self.admitted = dict.fromkeys(KINDS, 0)

    # -- configuration -----------------------------------------------------------------------
    def configure(
        self,
        *,
        enabled: bool | None = None,
        rates: dict[str, Rate] | None = None,
        global_multiplier: float | None = None,
        min_retry_after: int | None = None,
        reset: bool = False,
    ) -> None:
        """Change the knobs. New rates (or ``reset``) start every bucket full again and, with
        ``reset``, zero the counters."""
        for kind in rates or {}:
            if kind not in KINDS:
                raise ValueError(f"unknown request kind {kind!r}; use one of {KINDS}")
        if global_multiplier is not None and not global_multiplier >= 1:
            raise ValueError("global_multiplier must be >= 1")
        if min_retry_after is not None and int(min_retry_after) < 1:
            raise ValueError("min_retry_after must be >= 1 (ARM never says 'retry now')")
        with self._lock:
            if enabled is not None:
                self.enabled = bool(enabled)
            if rates:
                self.rates.update(rates)
            if global_multiplier is not None:
                self.global_multiplier = float(global_multiplier)
            if min_retry_after is not None:
                self.min_retry_after = int(min_retry_after)
            if rates or global_multiplier is not None or reset:
                self._principal.clear()
                self._global.clear()
            if reset:
                self.throttled = dict.fromkeys(KINDS, 0)
                self.admitted = dict.fromkeys(KINDS, 0)

    # -- the decision ------------------------------------------------------------------------
    def _buckets(self, sub: str, actor: str, kind: str, now: float) -> tuple[TokenBucket, ...]:
        principal = self._principal.get((sub, actor, kind))
        if principal is None:
            principal = self._principal[(sub, actor, kind)] = TokenBucket(self.rates[kind], now)
        shared = self._global.get((sub, kind))
        if shared is None:
            rate = self.rates[kind].scaled(self.global_multiplier)
            shared = self._global[(sub, kind)] = TokenBucket(rate, now)
        return principal, shared

    def admit(self, subscription: str, actor: str, method: str) -> Admission | None:
        """Take a token for this request, or refuse it; None when the throttle is off."""
        kind = request_kind(method)
        sub, who = subscription.lower(), actor.lower()
        with self._lock:
            if not self.enabled:
                return None
            now = self.clock()
            principal, shared = self._buckets(sub, who, kind, now)
            wait = max(principal.wait_s(now), shared.wait_s(now))
            allowed = wait <= 0
            if allowed:
                principal.take(now)
                shared.take(now)
                self.admitted[kind] += 1
            else:
                self.throttled[kind] += 1
            return Admission(
                allowed=allowed,
                kind=kind,
                subscription=subscription,
                actor=actor,
                remaining=max(0, math.floor(principal.tokens)),
                global_remaining=max(0, math.floor(shared.tokens)),
                retry_after=0 if allowed else max(self.min_retry_after, math.ceil(wait)),
            )

    # -- what GET /_sandbox/throttle answers -------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            now = self.clock()
            buckets: list[dict[str, Any]] = []
            for (sub, actor, kind), bucket in sorted(self._principal.items()):
                buckets.append(_bucket_row(sub, actor, kind, bucket, now))
            for (sub, kind), bucket in sorted(self._global.items()):
                buckets.append(_bucket_row(sub, None, kind, bucket, now))
            remaining: dict[str, int] = {}
            for kind in KINDS:
                # the tightest bucket of this kind: what the busiest caller sees next
                left = [row["remaining"] for row in buckets if row["kind"] == kind]
                remaining[kind] = min(left) if left else math.floor(self.rates[kind].capacity)
            return {
                "enabled": self.enabled,
                "rates": {kind: self.rates[kind].to_dict() for kind in KINDS},
                "global_multiplier": self.global_multiplier,
                "min_retry_after": self.min_retry_after,
                "throttled": dict(self.throttled),
                "admitted": dict(self.admitted),
                "remaining": remaining,
                "buckets": buckets,
            }


def _bucket_row(
    sub: str, actor: str | None, kind: str, bucket: TokenBucket, now: float
) -> dict[str, Any]:
    return {
        "subscription": sub,
        "actor": actor,  # None: the subscription's global bucket
        "kind": kind,
        "remaining": max(0, math.floor(bucket.available(now))),
        "capacity": bucket.rate.capacity,
        "refill_per_second": bucket.rate.refill_per_second,
    }


def parse_rates(body: dict[str, Any], current: dict[str, Rate]) -> dict[str, Rate]:
    """``{"reads": {"capacity": N, "refill_per_second": R}, ...}`` to Rates; a field left out
    keeps its ``current`` value, a kind left out is not returned."""
    rates: dict[str, Rate] = {}
    for kind in KINDS:
        spec = body.get(kind)
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise ValueError(f"{kind} must be an object with capacity and refill_per_second")
        unknown = set(spec) - {"capacity", "refill_per_second"}
        if unknown:
            raise ValueError(f"{kind}: unknown field(s) {sorted(unknown)}")
        now = current[kind]
        rates[kind] = Rate(
            float(spec.get("capacity", now.capacity)),
            float(spec.get("refill_per_second", now.refill_per_second)),
        )
    return rates
