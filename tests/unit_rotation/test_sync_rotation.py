"""Pure sync-credential rotation decisions: due/force/resume/finish, refusals, status facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from model.azure import PasswordMeta
from model.errors import PermanentError
from tasks.rotation import CredentialRef
from tasks.sync_rotation import (
    SYNC_LEAD_DAYS,
    SYNC_PASSWORD_DAYS,
    due_from,
    plan_sync_rotation,
    sync_password_facts,
    synced_since,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEAD = timedelta(days=30)


def pw(slot: str, created_days_ago: float, expires_in_days: float | None) -> PasswordMeta:
    expiry = None if expires_in_days is None else NOW + timedelta(days=expires_in_days)
    return PasswordMeta(slot, NOW - timedelta(days=created_days_ago), expiry)  # type: ignore[arg-type]


def ref(p: PasswordMeta) -> CredentialRef:
    return CredentialRef(p.slot, p.creation_time)


def test_default_lifetime_leaves_room_for_the_lead() -> None:
    assert SYNC_PASSWORD_DAYS > SYNC_LEAD_DAYS > 0


def test_fresh_password_is_a_noop_that_says_why() -> None:
    p1 = pw("password1", 1, 364)
    plan = plan_sync_rotation([p1], ref(p1), NOW, LEAD)
    assert plan.action == "noop" and not plan.writes
    assert "expires" in plan.reason
    assert f"due from {(NOW + timedelta(days=334)).isoformat()}" in plan.reason


def test_due_from_is_the_lead_before_the_expiry() -> None:
    assert due_from(NOW, LEAD) == (NOW - LEAD).isoformat()
    assert due_from(None, LEAD).startswith("now")


def test_due_password_rotates_into_the_other_slot_and_revokes_the_carried_one() -> None:
    p1 = pw("password1", 340, 25)
    plan = plan_sync_rotation([p1], ref(p1), NOW, LEAD)
    assert (plan.action, plan.target, plan.revoke) == ("rotate", "password2", "password1")
    assert plan.generate and plan.upgrade


def test_never_expiring_password_is_due() -> None:
    p2 = pw("password2", 3, None)
    plan = plan_sync_rotation([p2], ref(p2), NOW, LEAD)
    assert (plan.action, plan.target, plan.revoke) == ("rotate", "password1", "password2")


def test_force_rotates_a_fresh_password() -> None:
    p1 = pw("password1", 1, 364)
    plan = plan_sync_rotation([p1], ref(p1), NOW, LEAD, force=True)
    assert (plan.action, plan.target, plan.revoke) == ("rotate", "password2", "password1")
    assert "forced" in plan.reason


def test_crash_after_generation_regenerates_the_new_slot_never_the_carried_one() -> None:
    p1 = pw("password1", 10, 355)
    p2 = pw("password2", 0.01, 365)  # generated, value lost, release still on password1
    for force in (False, True):
        plan = plan_sync_rotation([p1, p2], ref(p1), NOW, LEAD, force=force)
        assert (plan.action, plan.target, plan.revoke) == ("resume", "password2", "password1")
        assert plan.generate and plan.upgrade


def test_crash_after_upgrade_finishes_by_revoking_the_older_slot() -> None:
    p1 = pw("password1", 10, 355)
    p2 = pw("password2", 0.01, 365)  # the release already carries it
    plan = plan_sync_rotation([p1, p2], ref(p2), NOW, LEAD)
    assert (plan.action, plan.target, plan.revoke) == ("finish", "password2", "password1")
    assert not plan.generate and not plan.upgrade
    assert plan.revoke != plan.carried


def test_expired_other_slot_is_not_live_so_nothing_to_finish() -> None:
    p1 = pw("password1", 400, -1)
    p2 = pw("password2", 1, 364)
    assert plan_sync_rotation([p1, p2], ref(p2), NOW, LEAD).action == "noop"


@pytest.mark.parametrize("carried", [None, CredentialRef("password1", NOW - timedelta(days=99))])
def test_release_without_a_valid_sync_credential_is_refused_naming_the_fix(
    carried: CredentialRef | None,
) -> None:
    p1 = pw("password1", 1, 364)  # regenerated after the release recorded it
    with pytest.raises(PermanentError, match="provision-site"):
        plan_sync_rotation([p1], carried, NOW, LEAD)


def test_no_plan_ever_revokes_or_regenerates_the_carried_slot() -> None:
    cases = [
        [pw("password1", 10, 355)],
        [pw("password1", 10, 5)],
        [pw("password1", 10, 355), pw("password2", 1, 364)],
        [pw("password1", 1, 364), pw("password2", 10, 355)],
    ]
    for passwords in cases:
        for carried in passwords:
            for force in (False, True):
                plan = plan_sync_rotation(passwords, ref(carried), NOW, LEAD, force=force)
                assert plan.carried == carried.slot
                assert plan.revoke != carried.slot or plan.upgrade
                assert not plan.generate or plan.target != carried.slot


def test_synced_since_needs_online_and_a_sync_strictly_after_the_change() -> None:
    t = NOW
    assert not synced_since("Syncing", t + timedelta(seconds=5), None, t).ok
    assert not synced_since("Online", t, None, t).ok
    assert not synced_since("Online", None, None, t).ok
    assert synced_since("Online", t + timedelta(seconds=1), None, t).ok
    # A failed sync moves lastSyncTime; the successful time wins when reported.
    assert not synced_since("Online", t + timedelta(seconds=5), t - timedelta(seconds=5), t).ok


def test_sync_password_facts_give_age_and_days_to_expiry_per_slot() -> None:
    facts = sync_password_facts(
        [pw("password2", 1.5, None), pw("password1", 10, 355)], "password1", NOW
    )
    assert [(f.slot, f.in_use, f.age_days, f.days_to_expiry) for f in facts] == [
        ("password1", True, 10.0, 355.0),
        ("password2", False, 1.5, None),
    ]
    assert [f.in_use for f in sync_password_facts([pw("password1", 1, 2)], None, NOW)] == [False]
