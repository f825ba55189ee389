"""Pure: which scheduled runs a redeploy updates or deletes."""

from __future__ import annotations

from types import SimpleNamespace as NS

from deployments.scheduled_runs import plan, schedule_of


def _run(sid: str, params: dict[str, str], auto: bool = True, slug: str | None = None) -> NS:
    creator = NS(id=sid, type="SCHEDULE", display_value=slug)
    return NS(created_by=creator, idempotency_key=None, auto_scheduled=auto, parameters=params)


def test_a_run_follows_its_schedule_slug_across_new_ids() -> None:
    stale = _run("old-id", {"parent_block": "a"})
    fresh = _run("new-id", {"parent_block": "b", "sites": "s1"})
    hand = _run("old-id", {"parent_block": "x"}, auto=False)
    update, delete = plan(
        [stale, fresh, hand],
        old_slugs={"old-id": "every-15"},
        now_ids={"new-id": "every-15"},
        wanted={"every-15": {"parent_block": "b", "sites": "s1"}},
    )
    assert update == [(stale, {"parent_block": "b", "sites": "s1"})]
    assert delete == []


def test_a_run_of_a_schedule_that_is_gone_is_deleted() -> None:
    orphan = _run("gone-id", {"parent_block": "a"}, slug="every-15")
    update, delete = plan([orphan], {}, {"new-id": "every-30"}, {"every-30": {}})
    assert (update, delete) == ([], [orphan])


def test_the_schedule_is_read_from_the_idempotency_key_without_a_creator() -> None:
    run = NS(created_by=None, idempotency_key="scheduled dep-1 sched-2 2026-12-03 06:00:00+01:00")
    assert schedule_of(run) == ("sched-2", None)
    assert schedule_of(NS(created_by=None, idempotency_key="mine")) == (None, None)
