"""site-status's event decisions: health changes and expiring credentials (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flows import status_events as ev

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def change(previous: bool | None, healthy: bool) -> str | None:
    got = ev.health_change(
        previous, healthy, "site-a", site="plant1", reasons=["x: y"], codes=["DISK_ERROR"]
    )
    return None if got is None else got.event


def test_only_changes_of_health_emit() -> None:
    assert change(None, True) is None  # first check, healthy: nothing to recover from
    assert change(None, False) == ev.SITE_UNHEALTHY
    assert change(True, False) == ev.SITE_UNHEALTHY
    assert change(False, False) is None
    assert change(False, True) == ev.SITE_HEALTHY
    assert change(True, True) is None


def test_the_unhealthy_event_names_the_site_and_its_codes() -> None:
    got = ev.health_change(
        True, False, "site-a", site="plant1", reasons=["r"], codes=["DISK_ERROR"]
    )
    assert got is not None
    assert got.resource == {
        "prefect.resource.id": "acr-edge.site.site-a",
        "prefect.resource.name": "site-a",
    }
    assert got.payload["codes"] == ["DISK_ERROR"] and got.payload["reasons"] == ["r"]
    assert got.payload["first_check"] is False


def cred(days: float | None, *, in_use: bool = True, kind: str = "client") -> ev.Credential:
    expires = None if days is None else NOW + timedelta(days=days)
    return ev.Credential(kind, "plant1-client", "password1", days, expires, in_use)


def test_expiring_warns_for_used_slots_within_the_window() -> None:
    assert [e.payload["days_left"] for e in ev.expiring([cred(3.5)], "site-a", "plant1", 14)] == [
        3.5
    ]
    assert ev.expiring([cred(14.0)], "site-a", "plant1", 14)  # the boundary day warns
    assert ev.expiring([cred(-1.0)], "site-a", "plant1", 14)  # expired: still a warning
    assert not ev.expiring([cred(14.5)], "site-a", "plant1", 14)
    assert not ev.expiring([cred(3.0, in_use=False)], "site-a", "plant1", 14)
    assert not ev.expiring([cred(None)], "site-a", "plant1", 14)  # never expires


def test_each_credential_slot_is_its_own_resource() -> None:
    both = ev.expiring([cred(2.0), cred(2.0, kind="sync")], "site-a", "plant1", 14)
    ids = [e.resource["prefect.resource.id"] for e in both]
    assert ids == [
        "acr-edge.credential.site-a.client.password1",
        "acr-edge.credential.site-a.sync.password1",
    ]
    assert set(both[0].payload) == {
        "site",
        "site_block",
        "kind",
        "token",
        "slot",
        "days_left",
        "expires",
        "warning_days",
    }


def test_variable_names_and_stored_values() -> None:
    assert ev.variable_name("Site_A.1") == "acr-edge-health-site_a-1"
    assert len(ev.variable_name("x" * 400)) == 255
    assert ev.previous_health({"healthy": False}) is False
    assert ev.previous_health(None) is None and ev.previous_health({"healthy": "no"}) is None
