"""The shared ARM budget, backed by Prefect global concurrency limits used as rate limits.

Every flow run, worker, fleet run and hand-started run that talks to one subscription's ARM
draws each request from the same three limits (``arm-reads|writes|deletes-<8 hex>``, see
:mod:`model.arm_budget`), so together they stay under ARM's token buckets instead of meeting
429s. Prefect's rate limit never refills faster than its ``slot_decay_per_second`` (it
rounds the decay down at every update), so it is at least as strict as the bucket it models.

A draw takes one Prefect API call (plus one per 423 while the budget is spent). A busy process
takes up to a batch of slots at once and spends them within ``hold_seconds``; slots it did not
spend by then expire unspent (the limit keeps headroom for them, model doc).

The limits are created, or converged when someone changed them, on a process's first draw of
each kind (one read per limit and process) and by :func:`ensure_arm_budget_limits`, which
``acr-edge deploy`` calls. The rates are ARM's unless ``ACR_EDGE_ARM_RATES`` holds JSON in the
sandbox throttle's shape (a scaled sandbox, a bench run); every process of one deployment must
see the same value, or they converge the limits back and forth.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from model.arm_budget import (
    ARM_RATES,
    KINDS,
    ArmRates,
    Kind,
    LimitSettings,
    batch_size,
    limit_settings,
)
from model.errors import TransientError

__all__ = [
    "RATES_ENV",
    "PrefectArmBudget",
    "configured_rates",
    "converge_arm_budget_limits",
    "ensure_arm_budget_limits",
    "flow_arm_budget",
]

log = logging.getLogger("acr_edge.flows")

RATES_ENV = "ACR_EDGE_ARM_RATES"
# A draw waits for the budget at most this long (a fleet of 1,000 sites is read-bound for
# about 20 minutes; one request should never wait that long unless the limit is wrong).
DRAW_TIMEOUT_SECONDS = 1800.0


def configured_rates() -> ArmRates:
    """ARM's rates, or those in ``ACR_EDGE_ARM_RATES`` (InputError when it is not valid)."""
    text = os.environ.get(RATES_ENV, "").strip()
    return ArmRates.from_json(text, what=RATES_ENV) if text else ARM_RATES


def _ensure_limit(settings: LimitSettings) -> bool:
    """Create the limit or converge it to ``settings``; True when it had to change."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(settings.name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(
                        name=settings.name,
                        limit=settings.limit,
                        slot_decay_per_second=settings.slot_decay_per_second,
                    )
                )
                log.info(
                    "created ARM budget %s (limit %d, %.3g/s)",
                    settings.name,
                    settings.limit,
                    settings.slot_decay_per_second,
                )
                return True
            except ObjectAlreadyExists:
                existing = client.read_global_concurrency_limit_by_name(settings.name)
        same = (
            existing.limit == settings.limit
            and abs(existing.slot_decay_per_second - settings.slot_decay_per_second) < 1e-9
            and existing.active
        )
        if same:
            return False
        client.update_global_concurrency_limit(
            settings.name,
            GlobalConcurrencyLimitUpdate(
                limit=settings.limit,
                slot_decay_per_second=settings.slot_decay_per_second,
                active=True,
            ),
        )
        log.warning(
            "ARM budget %s was limit=%s decay=%s/s active=%s; reset to limit %d, %.3g/s",
            settings.name,
            existing.limit,
            existing.slot_decay_per_second,
            existing.active,
            settings.limit,
            settings.slot_decay_per_second,
        )
        return True


def ensure_arm_budget_limits(subscription_id: str, rates: ArmRates = ARM_RATES) -> list[str]:
    """Create (or converge) the subscription's three ARM budget limits; returns their names."""
    return [name for name, _ in converge_arm_budget_limits(subscription_id, rates)]


def converge_arm_budget_limits(
    subscription_id: str, rates: ArmRates = ARM_RATES
) -> list[tuple[str, bool]]:
    """(name, changed) per limit: ``acr-edge deploy`` shows the limits before the first run
    draws from them, at the rates the deployment's workers will use."""
    done = []
    for kind in KINDS:
        settings = limit_settings(kind, subscription_id, rates)
        changed = _ensure_limit(settings)
        _ENSURED.add(settings)
        done.append((settings.name, changed))
    return done


# Limits this process has already read (and created or converged): one read per limit.
_ENSURED: set[LimitSettings] = set()


@dataclass
class _Pool:
    """Slots one process drew and has not spent yet (shared by its threads)."""

    settings: LimitSettings
    lock: threading.Lock = field(default_factory=threading.Lock)
    slots: int = 0
    expires: float = 0.0
    recent: deque[float] = field(default_factory=deque)
    api_calls: int = 0  # successful draws (rate_limit calls) made by this process
    requests: int = 0  # ARM requests that drew from this pool


_POOLS: dict[LimitSettings, _Pool] = {}
_POOLS_LOCK = threading.Lock()


def _pool(settings: LimitSettings) -> _Pool:
    with _POOLS_LOCK:
        return _POOLS.setdefault(settings, _Pool(settings))


class PrefectArmBudget:
    """:class:`blocks.azure_pipeline.ArmBudget` over the subscription's Prefect limits."""

    def __init__(self, subscription_id: str, rates: ArmRates = ARM_RATES) -> None:
        self.subscription_id = subscription_id
        self.rates = rates
        self._settings = {k: limit_settings(k, subscription_id, rates) for k in KINDS}

    def settings(self, kind: Kind) -> LimitSettings:
        return self._settings[kind]

    def draw(self, kind: Kind) -> None:
        settings = self._settings[kind]
        pool = _pool(settings)
        with pool.lock:  # threads of this process queue here; one of them asks Prefect
            now = time.monotonic()
            pool.requests += 1
            pool.recent.append(now)
            while pool.recent and pool.recent[0] < now - settings.hold_seconds:
                pool.recent.popleft()
            if pool.slots > 0 and now < pool.expires:
                pool.slots -= 1
                return
            take = batch_size(len(pool.recent), settings)
            if settings not in _ENSURED:
                _ensure_limit(settings)
                _ENSURED.add(settings)
            if not _rate_limit(settings.name, take):
                # Deleted since this process read it: create it again, once.
                _ensure_limit(settings)
                if not _rate_limit(settings.name, take):
                    raise TransientError(f"ARM budget {settings.name} cannot be created")
            pool.api_calls += 1
            pool.slots = take - 1
            pool.expires = time.monotonic() + settings.hold_seconds


def _rate_limit(name: str, occupy: int) -> bool:
    """Take ``occupy`` slots (waiting while the budget is spent); False if the limit is gone."""
    from prefect.concurrency._asyncio import ConcurrencySlotAcquisitionError
    from prefect.concurrency.sync import rate_limit
    from prefect.exceptions import PrefectException

    try:
        rate_limit(name, occupy=occupy, strict=True, timeout_seconds=DRAW_TIMEOUT_SECONDS)
        return True
    except ConcurrencySlotAcquisitionError as exc:
        if "must be created" in str(exc):
            return False
        raise TransientError(f"ARM budget {name}: {exc}") from None
    except TimeoutError:
        raise TransientError(
            f"ARM budget {name}: no slot within {DRAW_TIMEOUT_SECONDS:.0f}s (is the limit's "
            "decay far below ARM's refill?)"
        ) from None
    except PrefectException as exc:  # the API refused or was unreachable
        raise TransientError(f"ARM budget {name}: {exc}") from None


def draw_counts() -> dict[str, dict[str, int]]:
    """Per limit, this process's ARM requests and the Prefect draws they took (for tests and
    the bench's API-call figure)."""
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
    # Summed per name: one process may hold pools of one limit at other rates (a bench or a
    # test that scaled them earlier), and overwriting one with another would count backwards.
    out: dict[str, dict[str, int]] = {}
    for p in pools:
        seen = out.setdefault(p.settings.name, {"requests": 0, "api_calls": 0})
        seen["requests"] += p.requests
        seen["api_calls"] += p.api_calls
    return out


def flow_arm_budget(subscription_id: str) -> PrefectArmBudget | None:
    """The shared budget inside a flow or task run; ``None`` outside (plain SDK use, CLI).
    Reads the rates here, so a bad ``ACR_EDGE_ARM_RATES`` is refused before any request."""
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return None
    return PrefectArmBudget(subscription_id, configured_rates())
