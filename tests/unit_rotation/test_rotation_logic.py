"""Pure rotation decisions: slot choice, lifetimes and the resume-after-crash plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.errors import InputError
from tasks.rotation import (
    NODE_CONSUMER,
    SLOTS,
    CredentialRef,
    PasswordState,
    choose_slot,
    decide_sync_credential,
    expiry_for,
    is_due,
    node_consumer,
    preferred_source,
    refs_of,
    validate_lifetime,
)
from tasks.rotation_plan import decide_client_password, plan_rotation

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LEAD = timedelta(days=14)


def pw(slot: str, created_days_ago: float | None, expires_in_days: float | None) -> PasswordState:
    created = None if created_days_ago is None else NOW - timedelta(days=created_days_ago)
    expiry = None if expires_in_days is None else NOW + timedelta(days=expires_in_days)
    return PasswordState(slot, created, expiry)  # type: ignore[arg-type]


def ref(p: PasswordState) -> CredentialRef:
    return CredentialRef(p.slot, p.creation_time)


maybe_days = st.one_of(st.none(), st.floats(min_value=-400, max_value=400, allow_nan=False))
password_sets = st.lists(
    st.builds(pw, st.sampled_from(SLOTS), maybe_days, maybe_days),
    max_size=2,
    unique_by=lambda p: p.slot,
)


@given(password_sets, st.lists(st.sampled_from(SLOTS), max_size=1, unique=True))
def test_chosen_slot_is_never_protected(
    passwords: list[PasswordState], protected: list[str]
) -> None:
    slot = choose_slot(passwords, protected, NOW)
    assert slot not in protected


@given(password_sets)
def test_choice_prefers_unused_else_older_and_is_deterministic(
    passwords: list[PasswordState],
) -> None:
    slot = choose_slot(passwords, (), NOW)
    assert slot == choose_slot(list(reversed(passwords)), (), NOW)
    live = {p.slot: p for p in passwords if p.expiry is None or p.expiry > NOW}
    unused = [s for s in SLOTS if s not in live]
    if unused:
        assert slot == unused[0]
    else:
        other = live["password2" if slot == "password1" else "password1"]
        mine = live[slot]
        if mine.creation_time is not None and other.creation_time is not None:
            assert mine.creation_time <= other.creation_time


def test_both_slots_protected_is_refused() -> None:
    with pytest.raises(InputError, match="both password slots"):
        choose_slot([], SLOTS, NOW)


@given(
    st.floats(min_value=0.01, max_value=3650, allow_nan=False),
    st.floats(min_value=0, max_value=3650, allow_nan=False),
    st.floats(min_value=1, max_value=86400 * 3, allow_nan=False),
)
def test_accepted_lifetime_is_never_due_when_fresh(
    lifetime: float, lead: float, propagation: float
) -> None:
    try:
        life = validate_lifetime(lifetime, lead, propagation)
    except InputError as exc:
        assert "lifetime_days" in str(exc) and "Fix:" in str(exc)
        assert timedelta(days=lifetime) <= timedelta(days=lead) + timedelta(seconds=propagation)
        return
    # Generated now, then proven within the propagation allowance: not yet due.
    proven_at = NOW + life.propagation
    fresh = PasswordState("password1", NOW, expiry_for(NOW, lifetime))
    assert fresh.expiry is not None and fresh.expiry > NOW
    if life.lifetime - life.lead - life.propagation > timedelta(seconds=1):
        assert not is_due(fresh, proven_at, life.lead)


@pytest.mark.parametrize(
    ("lifetime", "lead", "prop"), [(0, 1, 1), (-5, 1, 1), (10, -1, 1), (10, 1, 0), (14, 14, 300)]
)
def test_bad_lifetimes_are_refused(lifetime: float, lead: float, prop: float) -> None:
    with pytest.raises(InputError):
        validate_lifetime(lifetime, lead, prop)


def test_never_expiring_password_is_due() -> None:
    assert is_due(pw("password1", 1, None), NOW, LEAD)


# --- the rotation plan ------------------------------------------------------------------------


def test_converged_site_is_a_noop_with_a_reason() -> None:
    p1 = pw("password1", 10, 80)
    plan = plan_rotation([p1], {"app": ref(p1), "web": ref(p1)}, NOW, LEAD)
    assert plan.action == "noop" and not plan.writes
    assert "password1" in plan.reason and "expires" in plan.reason


def test_due_password_rotates_into_the_unused_slot() -> None:
    p1 = pw("password1", 80, 10)
    plan = plan_rotation([p1], {"app": ref(p1)}, NOW, LEAD)
    assert (plan.action, plan.target, plan.generate, plan.adopt, plan.revoke) == (
        "rotate",
        "password2",
        True,
        True,
        "password1",
    )


def test_crash_after_generate_regenerates_the_new_slot_not_the_used_one() -> None:
    p1 = pw("password1", 80, 10)
    p2 = pw("password2", 0.01, 90)  # generated, value lost with the crashed run
    plan = plan_rotation([p1, p2], {"app": ref(p1)}, NOW, LEAD)
    assert plan.action == "resume" and plan.target == "password2" and plan.generate
    assert plan.revoke == "password1"


def test_resume_happens_even_when_the_used_slot_is_not_due() -> None:
    p1 = pw("password1", 1, 89)
    p2 = pw("password2", 0.01, 90)
    plan = plan_rotation([p1, p2], {"app": ref(p1)}, NOW, LEAD)
    assert plan.action == "resume" and plan.target == "password2"


def test_crash_mid_adoption_finishes_with_the_value_already_on_site() -> None:
    p1 = pw("password1", 80, 10)
    p2 = pw("password2", 0.01, 90)
    plan = plan_rotation([p1, p2], {"a": ref(p2), "b": ref(p1)}, NOW, LEAD)
    assert plan.action == "adopt" and plan.target == "password2"
    assert not plan.generate and plan.value_sources == ("a",) and plan.revoke == "password1"


def test_crash_after_adoption_revokes_the_old_slot_only() -> None:
    p1 = pw("password1", 80, 10)
    p2 = pw("password2", 0.01, 90)
    plan = plan_rotation([p1, p2], {"a": ref(p2), "b": ref(p2)}, NOW, LEAD)
    assert plan.action == "finish" and plan.revoke == "password1"
    assert not plan.generate and not plan.adopt


def test_regenerated_slot_invalidates_the_consumer_copy() -> None:
    p1_old = pw("password1", 80, 10)
    p1_new = pw("password1", 0.01, 90)
    plan = plan_rotation([p1_new], {"app": ref(p1_old)}, NOW, LEAD)
    # The live password1 is held by nobody (the copy is of its previous value): it is the
    # slot regenerated, so no second live password appears beside it.
    assert plan.action == "repair" and plan.target == "password1" and plan.revoke is None


def test_missing_namespace_gets_the_live_value_copied() -> None:
    p1 = pw("password1", 10, 80)
    plan = plan_rotation([p1], {"app": ref(p1), "new": None}, NOW, LEAD)
    assert plan.action == "adopt" and plan.target == "password1" and not plan.generate
    assert plan.value_sources == ("app",)


@given(
    password_sets,
    st.dictionaries(
        st.sampled_from(["a", "b", "c", NODE_CONSUMER]),
        st.one_of(st.none(), st.sampled_from(SLOTS)),
        min_size=1,
    ),
)
def test_plan_never_regenerates_or_revokes_a_slot_a_valid_pull_secret_uses(
    passwords: list[PasswordState], uses: dict[str, str | None]
) -> None:
    by_slot = {p.slot: p for p in passwords}
    consumers = {
        ns: (ref(by_slot[s]) if s is not None and s in by_slot else None) for ns, s in uses.items()
    }
    live_used = {
        r.slot
        for r in consumers.values()
        if r is not None and (by_slot[r.slot].expiry is None or by_slot[r.slot].expiry > NOW)  # type: ignore[operator]
    }
    plan = plan_rotation(passwords, consumers, NOW, LEAD)
    if plan.generate:
        assert plan.target not in live_used
    if plan.revoke is not None and plan.adopt:
        # Revoking a used slot is only allowed after every namespace adopted the target.
        assert plan.target != plan.revoke
    if plan.revoke is not None and not plan.adopt:
        assert plan.revoke not in live_used


def test_sync_credential_kept_when_release_record_matches() -> None:
    p1 = pw("password1", 3, None)
    keep = decide_sync_credential(ref(p1), [p1], NOW)
    assert keep.keep and keep.slot == "password1"
    p1_regen = pw("password1", 0.01, None)
    change = decide_sync_credential(ref(p1), [p1_regen, pw("password2", 5, None)], NOW)
    assert not change.keep and change.slot == "password2"  # never the recorded slot
    inactive = decide_sync_credential(ref(p1), [p1], NOW, activated=False)
    assert not inactive.keep and inactive.slot == "password2" and "activated" in inactive.reason
    first = decide_sync_credential(None, [], NOW)
    assert not first.keep and first.slot == "password1"


def test_client_password_kept_when_a_pull_secret_holds_it() -> None:
    p2 = pw("password2", 3, 80)
    keep = decide_client_password({"a": ref(p2)}, [p2], NOW)
    assert keep.keep and keep.slot == "password2"
    assert keep.revoke is None
    fresh = decide_client_password({"a": None}, [], NOW)
    assert not fresh.keep and fresh.slot == "password1" and fresh.revoke is None


@given(password_sets, st.sampled_from(SLOTS))
def test_unreadable_kept_connection_string_falls_back_to_the_other_slot(
    passwords: list[PasswordState], recorded_slot: str
) -> None:
    from tasks.rotation import sync_slot_when_unreadable

    recorded = CredentialRef(recorded_slot, NOW)  # type: ignore[arg-type]
    decision = sync_slot_when_unreadable(recorded, passwords, NOW)
    assert not decision.keep
    assert decision.slot != recorded_slot  # the runtime keeps syncing with its own meanwhile
    assert "could not be read back" in decision.reason


# --- forced rotation (leaked or suspect password) -----------------------------------------------


def test_force_rotates_a_fresh_password_into_the_unused_slot() -> None:
    p1 = pw("password1", 1, 89)
    assert plan_rotation([p1], {"app": ref(p1)}, NOW, LEAD).action == "noop"
    plan = plan_rotation([p1], {"app": ref(p1)}, NOW, LEAD, force=True)
    assert (plan.action, plan.target, plan.generate, plan.adopt, plan.revoke) == (
        "rotate",
        "password2",
        True,
        True,
        "password1",
    )
    assert "forced" in plan.reason and "leaked" in plan.reason


def test_force_with_a_live_unused_older_slot_regenerates_it_instead_of_finishing() -> None:
    p1 = pw("password1", 80, 10)
    p2 = pw("password2", 1, 89)
    plain = plan_rotation([p1, p2], {"a": ref(p2)}, NOW, LEAD)
    assert plain.action == "finish" and plain.revoke == "password1"
    forced = plan_rotation([p1, p2], {"a": ref(p2)}, NOW, LEAD, force=True)
    # The suspect password is the one in use (password2): replace it, revoke it after proof.
    assert forced.action == "rotate" and forced.target == "password1" and forced.generate
    assert forced.revoke == "password2"


def test_force_during_an_interrupted_rotation_that_spares_the_used_slot_resumes_it() -> None:
    p1 = pw("password1", 80, 10)
    p2 = pw("password2", 0.01, 90)  # generated by a crashed run, not adopted
    plan = plan_rotation([p1, p2], {"app": ref(p1)}, NOW, LEAD, force=True)
    assert plan.action == "resume" and plan.target == "password2" and plan.revoke == "password1"


def test_force_copies_nothing_stale_it_rotates_away_from_the_suspect_slot() -> None:
    p1 = pw("password1", 10, 80)
    plan = plan_rotation([p1], {"app": ref(p1), "new": None}, NOW, LEAD, force=True)
    assert plan.action == "rotate" and plan.target == "password2" and plan.revoke == "password1"


def test_force_is_refused_while_pull_secrets_are_split_between_both_slots() -> None:
    p1 = pw("password1", 80, 10)
    p2 = pw("password2", 0.01, 90)
    with pytest.raises(InputError, match="force refused") as err:
        plan_rotation([p1, p2], {"a": ref(p2), "b": ref(p1)}, NOW, LEAD, force=True)
    assert "a: password2" in str(err.value) and "without force" in str(err.value)


@given(
    password_sets,
    st.dictionaries(
        st.sampled_from(["a", "b", "c", NODE_CONSUMER]),
        st.one_of(st.none(), st.sampled_from(SLOTS)),
        min_size=1,
    ),
)
def test_forced_plan_always_writes_and_never_touches_a_slot_workloads_use_first(
    passwords: list[PasswordState], uses: dict[str, str | None]
) -> None:
    by_slot = {p.slot: p for p in passwords}
    consumers = {
        ns: (ref(by_slot[s]) if s is not None and s in by_slot else None) for ns, s in uses.items()
    }
    live_used = {
        r.slot
        for r in consumers.values()
        if r is not None and (by_slot[r.slot].expiry is None or by_slot[r.slot].expiry > NOW)  # type: ignore[operator]
    }
    if len(live_used) == 2:
        with pytest.raises(InputError, match="force refused"):
            plan_rotation(passwords, consumers, NOW, LEAD, force=True)
        return
    plan = plan_rotation(passwords, consumers, NOW, LEAD, force=True)
    assert plan.generate and plan.adopt  # a fresh password, proven then adopted
    assert plan.target not in live_used
    assert plan.revoke != plan.target
    # Whatever workloads used is revoked by the plan (after proof), never left live.
    assert live_used <= {plan.revoke}


# -- the node's registries.yaml credential is a consumer (node auth model) ----------------------


def test_node_rewritten_then_crash_adopts_the_node_slot_never_regenerates_it() -> None:
    """Crash after registries.yaml got the new slot, before the pull secrets did."""
    p1 = pw("password1", 80, 10)
    p2 = pw("password2", 0.01, 90)
    plan = plan_rotation([p1, p2], {"app": ref(p1), NODE_CONSUMER: ref(p2)}, NOW, LEAD)
    assert plan.action == "adopt" and plan.target == "password2" and not plan.generate
    assert plan.value_sources == (NODE_CONSUMER,) and plan.revoke == "password1"
    # Without the node's record the same state looked like "generated, not adopted".
    blind = plan_rotation([p1, p2], {"app": ref(p1)}, NOW, LEAD)
    assert blind.action == "resume" and blind.generate and blind.target == "password2"


def test_node_without_a_record_gets_the_live_value_from_a_pull_secret() -> None:
    p1 = pw("password1", 10, 80)
    plan = plan_rotation([p1], {"app": ref(p1), NODE_CONSUMER: None}, NOW, LEAD)
    assert plan.action == "adopt" and plan.target == "password1" and not plan.generate
    assert preferred_source(plan.value_sources) == "app"


def test_force_is_refused_while_node_and_pull_secrets_hold_different_slots() -> None:
    p1 = pw("password1", 80, 10)
    p2 = pw("password2", 0.01, 90)
    with pytest.raises(InputError, match="force refused"):
        plan_rotation([p1, p2], {"app": ref(p1), NODE_CONSUMER: ref(p2)}, NOW, LEAD, force=True)


def test_provisioning_keeps_the_slot_only_the_node_holds() -> None:
    p2 = pw("password2", 0.01, 90)
    keep = decide_client_password({"app": None, NODE_CONSUMER: ref(p2)}, [p2], NOW)
    assert keep.keep and keep.slot == "password2"


def test_value_sources_prefer_pull_secrets_and_records_of_other_tokens_count_as_none() -> None:
    assert preferred_source([NODE_CONSUMER, "zeta", "alpha"]) == "alpha"
    assert preferred_source([NODE_CONSUMER]) == NODE_CONSUMER

    class Rec:
        def __init__(self, token: str) -> None:
            self.token, self.slot, self.created = token, "password1", "2026-01-01T00:00:00+00:00"

    refs = refs_of({"app": Rec("site1-client"), NODE_CONSUMER: Rec("other")}, "site1-client")
    assert refs["app"] is not None and refs["app"].slot == "password1"
    assert refs[NODE_CONSUMER] is None


# -- no live credential nobody holds -------------------------------------------------------------


def test_provisioning_after_a_crash_past_generation_regenerates_the_orphan_in_place() -> None:
    """provision-site died after generating password2, before any pull secret stored it."""
    orphan = pw("password2", 0.01, 90)
    again = decide_client_password({"a": None, "b": None}, [orphan], NOW)
    assert (again.keep, again.slot, again.revoke) == (False, "password2", None)
    assert "no consumer holds" in again.reason and "regenerating" in again.reason


def test_provisioning_with_two_unheld_live_slots_regenerates_the_newer_and_revokes_the_other() -> (
    None
):
    p1, p2 = pw("password1", 5, 85), pw("password2", 0.01, 90)
    out = decide_client_password({"a": None}, [p1, p2], NOW)
    assert (out.keep, out.slot, out.revoke) == (False, "password2", "password1")


@pytest.mark.parametrize("orphan_age", [0.01, 40])  # newer (a rotation's) or older than the held
def test_provisioning_keeps_the_held_slot_and_revokes_a_live_one_nobody_holds(
    orphan_age: float,
) -> None:
    held, orphan = pw("password1", 20, 70), pw("password2", orphan_age, 60)
    out = decide_client_password({"a": ref(held), "b": ref(held)}, [held, orphan], NOW)
    assert (out.keep, out.slot, out.revoke) == (True, "password1", "password2")
    assert "revoking it" in out.reason


def test_provisioning_never_revokes_a_slot_only_an_agent_node_holds() -> None:
    """A node rollout cut short: one agent already holds password2, the rest password1."""
    p1, p2 = pw("password1", 20, 70), pw("password2", 0.01, 90)
    consumers = {"a": ref(p1), NODE_CONSUMER: ref(p1), node_consumer("agent-1"): ref(p2)}
    out = decide_client_password(consumers, [p1, p2], NOW)
    assert out.keep and out.revoke is None
    assert preferred_source([node_consumer("agent-1"), NODE_CONSUMER]) == NODE_CONSUMER


consumer_uses = st.dictionaries(
    st.sampled_from(["a", "b", NODE_CONSUMER, node_consumer("agent-1")]),
    st.one_of(st.none(), st.sampled_from(SLOTS)),
    min_size=1,
)


def _live(passwords: list[PasswordState]) -> set[str]:
    return {p.slot for p in passwords if p.expiry is None or p.expiry > NOW}


def _refs(
    passwords: list[PasswordState], uses: dict[str, str | None]
) -> dict[str, CredentialRef | None]:
    by_slot = {p.slot: p for p in passwords}
    return {k: ref(by_slot[s]) if s is not None and s in by_slot else None for k, s in uses.items()}


@given(password_sets, consumer_uses)
def test_provisioning_leaves_exactly_the_slots_consumers_hold_live(
    passwords: list[PasswordState], uses: dict[str, str | None]
) -> None:
    refs = _refs(passwords, uses)
    held = {r.slot for r in refs.values() if r is not None} & _live(passwords)
    out = decide_client_password(refs, passwords, NOW)
    assert out.revoke not in held and out.revoke != out.slot
    if not out.keep:
        assert not held  # never regenerates under a consumer
    # Applied: the slot decided is live and every consumer gets it; the revoked one goes.
    live_after = (_live(passwords) | {out.slot}) - {out.revoke}
    assert live_after == held | {out.slot}


@given(password_sets, consumer_uses, st.booleans())
def test_a_finished_rotation_leaves_exactly_the_slots_consumers_hold_live(
    passwords: list[PasswordState], uses: dict[str, str | None], force: bool
) -> None:
    refs = _refs(passwords, uses)
    held = {r.slot for r in refs.values() if r is not None} & _live(passwords)
    if force and len(held) == 2:
        return  # refused (tested above)
    plan = plan_rotation(passwords, refs, NOW, LEAD, force=force)
    live_after = (_live(passwords) | ({plan.target} if plan.generate else set())) - {plan.revoke}
    held_after = {plan.target} if plan.adopt else held
    assert live_after == held_after, plan
