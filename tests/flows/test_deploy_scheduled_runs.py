"""A redeploy updates the runs already scheduled: due (Late) auto-scheduled runs get the new
parameters, runs of a removed schedule go, and a run a person scheduled by hand is kept.

The harness runs no scheduler, so the server's own schedule endpoint makes the auto-scheduled
runs (in the past, as a Late run waiting for a worker is); the server itself deletes only
*future* auto-scheduled runs when a deployment is re-applied.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from deploykit import ARGS, PARENT, parent_ref, ref_name, site_ref
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.states import Scheduled

from deployments.register import main as deploy_main

FLEET_STATUS = "fleet-status/fleet-status"


def _deploy(*extra: str) -> str:
    args = list(ARGS)
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert deploy_main(args) == 0
    return buf.getvalue()


def _runs(deployment_id: Any) -> list[Any]:
    with get_client(sync_client=True) as client:
        return [
            r
            for r in client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            if r.state is not None and r.state.is_scheduled()
        ]


def _line(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if name in line)


@pytest.fixture
def late_runs() -> Iterator[tuple[Any, Any]]:
    """fleet-status with two due auto-scheduled runs and one hand-scheduled run; every
    scheduled run of it is removed and the shared deployments restored afterwards (a worker
    in a later module must not pick a due run up)."""
    _deploy()
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(FLEET_STATUS)
        now = datetime.now(UTC)
        client.request(
            "POST",
            "/deployments/{id}/schedule",
            path_params={"id": dep.id},
            json={
                "start_time": (now - timedelta(hours=1)).isoformat(),
                "end_time": (now - timedelta(minutes=20)).isoformat(),
                "min_runs": 1,
                "max_runs": 2,
            },
        )
        hand = client.create_flow_run_from_deployment(
            dep.id,
            parameters={
                "parent_block": parent_ref("hand-picked"),
                "sites": [site_ref("sandbox-site-1")],
            },
            state=Scheduled(scheduled_time=now - timedelta(minutes=5)),
        )
    try:
        yield dep, hand
    finally:
        with get_client(sync_client=True) as client:
            for run in _runs(dep.id):
                client.delete_flow_run(run.id)
        _deploy()


def test_redeploy_gives_due_scheduled_runs_the_new_parameters(late_runs: tuple[Any, Any]) -> None:
    dep, hand = late_runs
    auto = [r for r in _runs(dep.id) if r.auto_scheduled]
    assert len(auto) == 2 and all(ref_name(r.parameters["parent_block"]) == PARENT for r in auto)

    out = _deploy("--parent-block", "other-parent")

    runs = {r.id: r for r in _runs(dep.id)}
    assert {r.id for r in auto} <= set(runs), "due runs are updated, not replaced"
    for r in auto:
        params = runs[r.id].parameters
        assert set(params) == {"parent_block", "sites"}
        assert ref_name(params["parent_block"]) == "other-parent"
        assert [ref_name(s) for s in params["sites"]] == ["sandbox-site-1"]
    assert ref_name(runs[hand.id].parameters["parent_block"]) == "hand-picked"
    assert "2 scheduled run(s) given the new parameters" in _line(out, FLEET_STATUS)

    again = _deploy("--parent-block", "other-parent")
    assert "scheduled run" not in _line(again, FLEET_STATUS), "a converged redeploy touches none"


def test_redeploy_deletes_the_due_runs_of_a_removed_schedule(late_runs: tuple[Any, Any]) -> None:
    dep, hand = late_runs
    auto = {r.id for r in _runs(dep.id) if r.auto_scheduled}

    # A new interval is a new schedule (its slug names the minutes): the old one is gone.
    out = _deploy("--status-minutes", "30")

    left = {r.id for r in _runs(dep.id)}
    assert not auto & left, "the due runs of the removed schedule are gone with it"
    assert hand.id in left
    # The server patches and adds schedules by slug but keeps one the request left out.
    with get_client(sync_client=True) as client:
        slugs = [s.slug for s in client.read_deployment_by_name(FLEET_STATUS).schedules]
    assert slugs == ["every-30-minutes"]
    assert "1 old schedule(s) removed: every-15-minutes" in _line(out, FLEET_STATUS)
