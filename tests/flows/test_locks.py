"""The per-site lock is keyed by parent registry and site, against the real Prefect API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from flows.locks import site_limit_name, site_lock

pytestmark = pytest.mark.prefect


@dataclass(frozen=True)
class Parent:
    subscription_id: str
    resource_group: str
    registry_name: str


def _parents() -> tuple[Parent, Parent]:
    rg = f"rg-{uuid.uuid4().hex[:6]}"  # fresh limits per test run
    sub = "00000000-0000-0000-0000-000000000001"
    return Parent(sub, rg, "contosoedge"), Parent(sub, rg, "fabrikamedge")


def test_limit_names_tell_registries_apart_and_obey_prefect_rules() -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    a, b = _parents()
    same_name_elsewhere = Parent(
        "00000000-0000-0000-0000-000000000002", a.resource_group, "contosoedge"
    )
    names = {site_limit_name(p, "site01") for p in (a, b, same_name_elsewhere)}
    assert len(names) == 3
    assert site_limit_name(a, "site01") == site_limit_name(
        Parent(a.subscription_id.upper(), a.resource_group.upper(), "ContosoEdge"), "site01"
    )  # Azure names are case-insensitive
    for name in names:
        assert name.startswith("site-") and name.endswith("-site01")
        GlobalConcurrencyLimitCreate(name=name, limit=1)  # Prefect accepts the name


def test_same_named_sites_of_two_registries_do_not_block_each_other() -> None:
    a, b = _parents()
    # The second would wait (and time out) if the key were the site name alone.
    with site_lock(a, "site01", timeout_seconds=60), site_lock(b, "site01", timeout_seconds=60):
        pass


def test_the_same_site_of_the_same_registry_is_exclusive() -> None:
    a, _ = _parents()
    with (
        site_lock(a, "site01", timeout_seconds=60),
        pytest.raises(TimeoutError),
        site_lock(a, "site01", timeout_seconds=1),
    ):
        pass  # pragma: no cover - the lock is held


def _limit(name: str) -> object:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name)


def test_a_widened_or_disabled_limit_is_restored_before_the_site_runs() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    from flows.locks import checked_site_limits

    a, _ = _parents()
    name = site_limit_name(a, "site02")
    with site_lock(a, "site02", timeout_seconds=60):  # creates it on first use
        assert _limit(name).active_slots == 1  # type: ignore[attr-defined]
    assert _limit(name).active_slots == 0  # type: ignore[attr-defined]
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=3))
    # The one-call path (bulk-checked limits) sees the width in the answer to its increment.
    with checked_site_limits(a, ["site03"]), site_lock(a, "site02", timeout_seconds=60):
        assert _limit(name).limit == 1  # type: ignore[attr-defined]
        with pytest.raises(TimeoutError), site_lock(a, "site02", timeout_seconds=1):
            pass  # pragma: no cover
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=False))
    # A disabled limit would grant nothing: the bulk check restores it, then the site is held.
    with checked_site_limits(a, ["site02"]):
        assert _limit(name).active  # type: ignore[attr-defined]
        with site_lock(a, "site02", timeout_seconds=60):
            assert _limit(name).active_slots == 1  # type: ignore[attr-defined]
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=False))
    with site_lock(a, "site02", timeout_seconds=60):  # started by hand: read first, restored
        assert _limit(name).active_slots == 1  # type: ignore[attr-defined]
