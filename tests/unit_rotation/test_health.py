"""Site-health rules: cron fire times, sync age vs schedule and window, codes mapped to fixes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from flows.health import (
    Cron,
    Health,
    check_password_expiry,
    check_status_details,
    check_sync_age,
    fix_for,
)

NOW = datetime(2026, 11, 26, 12, 40, tzinfo=UTC)


def test_previous_fire_time() -> None:
    assert Cron.parse("30 * * * *").previous(NOW) == NOW.replace(minute=30)
    assert Cron.parse("30 * * * *").previous(NOW.replace(minute=10)) == NOW.replace(
        hour=11, minute=30, second=0
    )
    assert Cron.parse("0 2 * * *").previous(NOW) == NOW.replace(hour=2, minute=0)
    assert Cron.parse("*/15 * * * *").previous(NOW) == NOW.replace(minute=30)
    # 2026-11-26 is a Thursday (4); the last Monday 03:00 is 2026-11-23.
    assert Cron.parse("0 3 * * 1").previous(NOW) == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)


@given(
    st.integers(0, 59),
    st.integers(0, 23),
    st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
)
def test_previous_is_a_match_and_the_latest(minute: int, hour: int, when: datetime) -> None:
    cron = Cron.parse(f"{minute} {hour} * * *")
    prev = cron.previous(when)
    assert prev is not None and prev <= when and cron.matches(prev)
    assert when - prev < timedelta(days=1)


def test_sync_age_against_schedule_and_window() -> None:
    window = timedelta(hours=1)
    # 30 * * * * with a 1 h window: the 11:30 window closed at 12:30; a sync at 11:45 is fine.
    ok = check_sync_age(NOW.replace(hour=11, minute=45), "30 * * * *", window, NOW, activated=True)
    assert ok.ok, ok.message
    late = check_sync_age(NOW.replace(hour=10, minute=5), "30 * * * *", window, NOW, activated=True)
    assert not late.ok and "overdue" in late.message
    never = check_sync_age(None, "30 * * * *", window, NOW, activated=False)
    assert not never.ok and "never" in never.message
    cont = check_sync_age(NOW - timedelta(minutes=2), "* * * * *", None, NOW, activated=True)
    assert cont.ok
    stale = check_sync_age(NOW - timedelta(hours=2), "* * * * *", None, NOW, activated=True)
    assert not stale.ok


def test_codes_map_to_fixes() -> None:
    assert "storage" in fix_for("DiskError")  # the spec's spelling of DISK_ERROR
    assert "pod logs" in fix_for("SomethingNew")
    health = Health()
    check_status_details(health, [{"code": "DiskError", "description": "disk full"}])
    assert not health.healthy and "Fix:" in health.problems[0]


def test_password_expiry_in_use_inside_lead_is_unhealthy() -> None:
    health = Health()
    check_password_expiry(
        health,
        "site1-client",
        {"password1": NOW + timedelta(days=5), "password2": None},
        ["password1"],
        NOW,
        timedelta(days=14),
    )
    by = {c.name: c for c in health.checks}
    assert not by["site1-client password1 (in use)"].ok
    assert by["site1-client password2"].ok  # unused, never-expiring: flagged only when used
    good = Health()
    check_password_expiry(
        good, "t", {"password1": NOW + timedelta(days=50)}, ["password1"], NOW, timedelta(days=14)
    )
    assert good.healthy


DOCUMENTED = ("DISK_STORAGE_FULL", "DISK_PERMISSION_DENIED", "DISK_ERROR")
UNDOCUMENTED = ("SYNC_TOKEN_INVALID", "PARENT_UNREACHABLE", "SOMETHING_NEW")


def test_the_fixes_table_is_exactly_the_documented_codes() -> None:
    from flows.health import DOCUMENTED_CODES, UNDOCUMENTED_FIX

    assert set(DOCUMENTED_CODES) == set(DOCUMENTED)
    fixes = {code: fix_for(code) for code in DOCUMENTED}
    assert UNDOCUMENTED_FIX not in fixes.values()
    assert len(set(fixes.values())) == len(fixes)  # no two codes share a fix
    # the documented corrective actions: log limits / log level, permissions of the host path
    assert "--log-level" in fixes["DISK_STORAGE_FULL"] and "log" in fixes["DISK_STORAGE_FULL"]
    assert "read, write and execute" in fixes["DISK_PERMISSION_DENIED"]
    for code in UNDOCUMENTED:
        assert fix_for(code) == UNDOCUMENTED_FIX, code


def test_a_code_without_description_gets_the_documented_one() -> None:
    health = Health()
    check_status_details(health, [{"code": "DISK_PERMISSION_DENIED"}])
    assert "did not have sufficient permissions" in health.checks[0].value


def test_disk_capacity_metrics_are_a_fact_not_a_problem() -> None:
    from flows.health import disk_capacity, status_codes

    # the 2026-09-01-preview contract's entry (both spellings of the keys occur there)
    metrics = {
        "type": "Disk",
        "code": "DiskCapacityMetrics",
        "description": "Disk space available on the connected registry.",
        "totalGiB": 1024,
        "availableGiB": 512.5,
    }
    health = Health()
    check_status_details(health, [metrics])
    assert health.healthy
    assert disk_capacity([metrics]) == {"total_gib": 1024.0, "available_gib": 512.5}
    assert status_codes([metrics, {"code": "DISK_ERROR"}]) == ["DISK_ERROR"]
    both = Health()
    check_status_details(both, [metrics, {"code": "DISK_STORAGE_FULL"}])
    assert [c.name for c in both.checks] == ["statusDetails DISK_STORAGE_FULL"]


def test_unhealthy_fails_and_points_at_status_details() -> None:
    from flows.health import check_connection

    health = Health()
    check_connection(health, "Unhealthy", "Active")
    check_status_details(health, [{"code": "DISK_STORAGE_FULL", "description": "no storage"}])
    assert not health.healthy
    problems = " | ".join(health.problems)
    assert "connectionState: Unhealthy" in problems and "statusDetails" in problems
    assert fix_for("DISK_STORAGE_FULL") in problems


def test_syncing_is_healthy_and_said_so() -> None:
    from flows.health import check_connection, check_sync_result

    health = Health()
    check_connection(health, "Syncing", "Active")
    check_sync_result(health, "Syncing", None)
    assert health.healthy
    assert "Syncing" in health.table()[0]["value"]


def test_a_failed_sync_result_is_a_problem() -> None:
    from flows.health import check_sync_result

    health = Health()
    check_sync_result(health, "Failed", NOW - timedelta(hours=3))
    assert not health.healthy and "Failed" in health.problems[0]
    absent = Health()
    check_sync_result(absent, None, None)  # older api-versions: no row at all
    assert absent.checks == []


def test_last_successful_sync_drives_the_age_rule_when_present() -> None:
    from flows.health import CONTINUOUS, sync_reference

    recent, old = NOW - timedelta(minutes=1), NOW - timedelta(hours=5)
    # lastSyncTime moved (a failed attempt), the last success is 5 h old: overdue.
    last, label = sync_reference(recent, old)
    assert last == old and label == "last successful sync"
    assert not check_sync_age(last, CONTINUOUS, None, NOW, activated=True).ok
    assert sync_reference(recent, None) == (recent, "last sync")
