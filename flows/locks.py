"""Per-site mutual exclusion: provisioning and rotation never overlap on one site.

A Prefect global concurrency limit with limit 1 per (parent registry, site), taken directly
with one increment-with-lease call (not ``prefect.concurrency.sync.concurrency``, which costs
a service thread, a second client and an immediate lease renewal per lock): a missing limit is
created and then taken, a widened one restored, never skipped. The key holds the parent
registry because a connected-registry name is unique only within its parent: two registries
with a site of the same name are two sites and must not block each other.
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from model.errors import PermanentError

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


# The lock is a lease: a run that dies frees its site when the lease lapses; a live run renews
# it only if it holds the site this long (most runs never renew: no extra API call).
LEASE_SECONDS = 300.0
# Names whose limit a bulk check (ensure_site_limits) found active at limit 1, for the shard
# that checked them: its site runs then take the lock with a single call.
_checked: ContextVar[frozenset[str]] = ContextVar(
    "acr_edge_checked_site_limits", default=frozenset()
)


@contextmanager
def run_client() -> Iterator[Any]:
    """The current run's own API client, else a new one (no extra connection per lock; the
    CSRF-token GETs a new client makes did not measurably drop, see docs/design.md)."""
    from prefect.client.orchestration import SyncPrefectClient, get_client
    from prefect.context import FlowRunContext, TaskRunContext

    ctx = TaskRunContext.get() or FlowRunContext.get()
    if ctx is not None and isinstance(ctx.client, SyncPrefectClient):
        yield ctx.client
        return
    with get_client(sync_client=True) as client:
        yield client


def _fix_limit(client: Any, name: str, limit: int | None, active: bool | None) -> None:
    """Someone widened or disabled the site's limit: the exclusion is the point, restore it."""
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1, active=True))
    log.warning("concurrency limit %s was limit=%s active=%s; reset to 1", name, limit, active)


def _create_limit(client: Any, name: str) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists

    try:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
        log.info("created concurrency limit %s (limit 1)", name)
    except ObjectAlreadyExists:
        pass  # a concurrent run created it: fine


def ensure_site_limit(parent: ParentCoordinates, site: str) -> str:
    """Create the site's limit (limit 1) unless it exists; restore it if widened or disabled."""
    name = site_limit_name(parent, site)
    with run_client() as client:
        _check_one(client, name)
    return name


def _check_one(client: Any, name: str) -> None:
    from prefect.exceptions import ObjectNotFound

    try:
        existing = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        _create_limit(client, name)
        return
    if existing.limit != 1 or not existing.active:
        _fix_limit(client, name, existing.limit, existing.active)


def ensure_site_limits(parent: ParentCoordinates, sites: list[str]) -> list[str]:
    """The limits of many sites checked in bulk: one paged read of every global limit
    (200 a page), then a create or a repair only where needed. Returns the names."""
    names = [site_limit_name(parent, s) for s in sites]
    wanted = set(names)
    seen: dict[str, Any] = {}
    with run_client() as client:
        offset, page = 0, 200
        while True:
            batch = client.read_global_concurrency_limits(limit=page, offset=offset)
            seen.update({lim.name: lim for lim in batch if lim.name in wanted})
            if len(batch) < page:
                break
            offset += page
        for name in names:
            lim = seen.get(name)
            if lim is None:
                _create_limit(client, name)
            elif lim.limit != 1 or not lim.active:
                _fix_limit(client, name, lim.limit, lim.active)
    return names


@contextmanager
def checked_site_limits(parent: ParentCoordinates, sites: list[str]) -> Iterator[None]:
    """For the block: these sites' limits are checked in bulk, so each site run's lock costs
    one call to take (and one to give back) instead of a read first."""
    token = _checked.set(_checked.get() | frozenset(ensure_site_limits(parent, sites)))
    try:
        yield
    finally:
        _checked.reset(token)


def _holder() -> Any:
    """The run holding the lease, shown with the limit in the UI."""
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return None
    return ConcurrencyLeaseHolder(type="flow_run", id=ctx.flow_run.id)


def _acquire(client: Any, name: str, timeout_seconds: float | None) -> UUID:
    """One increment-with-lease call per attempt. 423 (held): wait as the server says, within
    the timeout. No limit: create it, then take it. A widened limit: give the slot back,
    restore limit 1, take it again. Never returns without the slot."""
    import httpx

    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    holder = _holder()
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                names=[name],
                slots=1,
                mode="concurrency",
                lease_duration=LEASE_SECONDS,
                holder=holder,
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:
                raise
            wait = float(exc.response.headers.get("Retry-After", "1") or 1)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"site lock {name} is held by another run (waited {timeout_seconds}s)"
                    ) from None
                wait = min(wait, left)
            time.sleep(max(wait, 0.05))
            continue
        body = response.json()
        limits = body.get("limits") or []
        lease_id = UUID(body["lease_id"])
        if not limits:
            _create_limit(client, name)  # the first run on this site: no limit yet
            continue
        if any(lim.get("limit") != 1 for lim in limits):
            client.release_concurrency_slots_with_lease(lease_id=lease_id)
            _fix_limit(client, name, limits[0].get("limit"), None)
            continue
        return lease_id


class _Renewal:
    """Renews the lease while the site is held longer than most runs take (a retry every few
    seconds on an error); a lease that ran out meanwhile fails the run when the lock is given
    back, since another run may have held the site."""

    def __init__(self, lease_id: UUID) -> None:
        self.lease_id = lease_id
        self.valid_until = time.monotonic() + LEASE_SECONDS
        self.error: BaseException | None = None
        self.stop = threading.Event()
        ctx = contextvars.copy_context()
        self.thread = threading.Thread(target=ctx.run, args=(self._loop,), daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        from prefect.client.orchestration import get_client

        period = LEASE_SECONDS * 0.6
        while not self.stop.wait(period):
            asked = time.monotonic()
            try:
                with get_client(sync_client=True) as client:
                    client.renew_concurrency_lease(
                        lease_id=self.lease_id, lease_duration=LEASE_SECONDS
                    )
            except Exception as exc:
                self.error, period = exc, 5.0
                log.warning("site lock lease %s not renewed: %s", self.lease_id, exc)
            else:
                self.valid_until, period = asked + LEASE_SECONDS, LEASE_SECONDS * 0.6

    def close(self) -> BaseException | None:
        """Stop renewing; the error if the lease may have run out while held."""
        self.stop.set()
        self.thread.join(timeout=5)
        return self.error if time.monotonic() > self.valid_until else None


@contextmanager
def site_lock(
    parent: ParentCoordinates, site: str, *, timeout_seconds: float | None = 1800
) -> Iterator[None]:
    """Hold the (parent registry, site) slot for the block; never runs unlocked.

    Taking it is one API call (a read first unless a bulk check of this site's limit is in
    force: :func:`checked_site_limits`), giving it back one more.
    """
    name = site_limit_name(parent, site)
    with run_client() as client:
        if name not in _checked.get():
            _check_one(client, name)  # a run started by hand: also catch a disabled limit
        lease_id = _acquire(client, name, timeout_seconds)
        renewal = _Renewal(lease_id)
        lapsed: BaseException | None = None
        try:
            yield
        finally:
            lapsed = renewal.close()
            client.release_concurrency_slots_with_lease(lease_id=lease_id)
        if lapsed is not None:
            raise PermanentError(
                f"the site lock's lease could not be renewed ({lapsed}); another run "
                "may have held the site meanwhile",
                resource=name,
                fix="check the Prefect API's health, then re-run (every step re-reads first)",
            )


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
