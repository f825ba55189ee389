"""The shared ARM request budget, decided without I/O: which bucket a request draws from, the
global concurrency limit that models each bucket, and how many slots one draw takes.

ARM throttles every subscription (and principal) with token buckets: writes (PUT, PATCH,
POST), deletes and reads each have their own. acr-edge models each bucket with one Prefect
global concurrency limit used as a rate limit (``limit`` slots, ``slot_decay_per_second``
refill), so every process that talks to ARM for the subscription draws from the same budget.

A process may take a few slots in one draw and spend them locally (one Prefect API call for
several ARM requests). A slot spent up to ``hold_seconds`` after it was drawn can let ARM see
up to ``refill * hold_seconds`` more requests in a window than the limit allowed, so a batched
bucket's limit keeps exactly that much headroom below ARM's capacity: the bound ARM enforces
is never exceeded by acr-edge alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from model.errors import InputError

__all__ = [
    "ARM_RATES",
    "KINDS",
    "ArmRates",
    "BucketRate",
    "Kind",
    "LimitSettings",
    "batch_size",
    "limit_name",
    "limit_settings",
    "request_kind",
]

Kind = Literal["reads", "writes", "deletes"]
KINDS: tuple[Kind, ...] = ("reads", "writes", "deletes")
_WRITE_METHODS = frozenset({"PUT", "PATCH", "POST"})


@dataclass(frozen=True)
class BucketRate:
    """One ARM token bucket: ``capacity`` requests may burst; ``refill_per_second`` accrue."""

    capacity: int
    refill_per_second: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or not self.refill_per_second > 0:
            raise ValueError(
                f"capacity must be >= 1 and refill_per_second > 0 (got {self.capacity}, "
                f"{self.refill_per_second})"
            )


@dataclass(frozen=True)
class ArmRates:
    """ARM's published subscription limits by default (writes 200 + 10/s, deletes the same in
    their own bucket, reads 250 + 25/s). ``hold_seconds`` is how long a slot drawn in a batch
    may wait to be spent (0: every request draws its own slot)."""

    reads: BucketRate = field(default_factory=lambda: BucketRate(250, 25.0))
    writes: BucketRate = field(default_factory=lambda: BucketRate(200, 10.0))
    deletes: BucketRate = field(default_factory=lambda: BucketRate(200, 10.0))
    max_batch: int = 5
    hold_seconds: float = 0.4

    def __post_init__(self) -> None:
        if self.max_batch < 1 or not 0 <= self.hold_seconds <= 5:
            raise ValueError("max_batch must be >= 1 and hold_seconds in [0, 5]")

    def of(self, kind: Kind) -> BucketRate:
        rate: BucketRate = getattr(self, kind)
        return rate

    @classmethod
    def from_json(cls, text: str, *, what: str = "ARM rates") -> ArmRates:
        """``{"reads"|"writes"|"deletes": {"capacity", "refill_per_second"}, "max_batch",
        "hold_seconds"}`` (the sandbox throttle's knob shape); omitted fields keep ARM's."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            unknown = set(data) - {*KINDS, "max_batch", "hold_seconds"}
            if unknown:
                raise ValueError(f"unknown keys {sorted(unknown)}")
            base = cls()
            buckets = {
                k: BucketRate(int(data[k]["capacity"]), float(data[k]["refill_per_second"]))
                for k in KINDS
                if k in data
            }
            return cls(
                reads=buckets.get("reads", base.reads),
                writes=buckets.get("writes", base.writes),
                deletes=buckets.get("deletes", base.deletes),
                max_batch=int(data.get("max_batch", base.max_batch)),
                hold_seconds=float(data.get("hold_seconds", base.hold_seconds)),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(
                f"{what} are invalid: {exc}",
                resource=what,
                fix='give JSON like {"writes": {"capacity": 200, "refill_per_second": 10}}',
            ) from None


ARM_RATES = ArmRates()


@dataclass(frozen=True)
class LimitSettings:
    """What the bucket's global concurrency limit must be: ``limit`` slots decaying at
    ``slot_decay_per_second``; one draw takes at most ``max_batch`` slots."""

    name: str
    limit: int
    slot_decay_per_second: float
    max_batch: int
    hold_seconds: float


def limit_name(kind: Kind, subscription_id: str) -> str:
    """``arm-<kind>-<8 hex of the subscription id>`` (GUIDs are case-insensitive)."""
    digest = hashlib.sha256(subscription_id.strip().lower().encode()).hexdigest()[:8]
    return f"arm-{kind}-{digest}"


def limit_settings(kind: Kind, subscription_id: str, rates: ArmRates = ARM_RATES) -> LimitSettings:
    """The limit for ``kind``: ARM's capacity less the headroom batching needs (module doc),
    never below one batch; a bucket too small to batch draws one slot per request."""
    rate = rates.of(kind)
    headroom = math.ceil(rate.refill_per_second * rates.hold_seconds - 1e-9)
    batch = min(rates.max_batch, rate.capacity - headroom) if rates.hold_seconds > 0 else 1
    if batch < 2:  # not worth the headroom: one slot per request, the full capacity
        return LimitSettings(
            limit_name(kind, subscription_id), rate.capacity, rate.refill_per_second, 1, 0.0
        )
    return LimitSettings(
        limit_name(kind, subscription_id),
        rate.capacity - headroom,
        rate.refill_per_second,
        batch,
        rates.hold_seconds,
    )


def request_kind(method: str, url: str, arm_endpoint: str) -> Kind | None:
    """The bucket an HTTP request draws from, or None when it is not an ARM request (another
    host: the registry's data plane, Entra ID). Scheme, host and port must all match."""
    target, arm = urlsplit(url), urlsplit(arm_endpoint)
    if (target.scheme.lower(), target.netloc.lower()) != (arm.scheme.lower(), arm.netloc.lower()):
        return None
    verb = method.upper()
    if verb == "DELETE":
        return "deletes"
    if verb in _WRITE_METHODS:
        return "writes"
    return "reads"  # GET, HEAD, OPTIONS; LRO polls are GETs and ARM counts them as reads


def batch_size(recent_draws: int, settings: LimitSettings) -> int:
    """Slots to take in one draw: as many requests as the process made in the last hold
    window (so a quiet process wastes nothing), at most one batch."""
    return max(1, min(settings.max_batch, recent_draws))
