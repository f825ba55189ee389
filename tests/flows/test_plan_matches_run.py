"""The dry run is the real run minus the applies: its rows are the rows the run then reports.

Walks every step of provision-site on a fresh site and on a converged one: a step the real run
reports without a plan entry (or a plan entry the run does not perform) fails, and so does a
different action or reason. Rows planned before a resource they depend on exists (the mirror
of a service the run creates) are marked provisional: their step and action must match, their
reason cannot name what does not exist yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.models import ProvisionSpec
from flows.provision_site import provision_site

pytestmark = pytest.mark.prefect

# Rows that report a fact, not a step's change: not every run has them.
NOT_STEPS = frozenset({"host-key"})


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("plan-vs-run"), sites=1)
    try:
        yield box
    finally:
        box.running.stop()


def _rows(out: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in out["steps"] if r["step"] not in NOT_STEPS]


def _provisional(plan: dict[str, Any]) -> set[str]:
    return {n.split(":", 1)[0] for n in plan["notes"] if "planned from the facts available" in n}


def _artifact_rows(fsb: FlowSandbox) -> list[dict[str, Any]]:
    """The run's table artifact, as the UI shows it (step, resource, action, this run, why)."""
    from prefect.artifacts import Artifact

    artifact: Any = Artifact.get(f"provision-{fsb.site_blocks[0]}")
    data = artifact.data if isinstance(artifact.data, list) else json.loads(artifact.data)
    return [r for r in data if r["step"] not in NOT_STEPS]


def assert_plan_matches_run(
    plan: dict[str, Any], run: dict[str, Any], table: list[dict[str, Any]]
) -> None:
    planned, performed = _rows(plan), _rows(run)
    assert [(r["step"], r["action"], r["why"]) for r in table] == [
        (r["step"], r["action"], r["message"]) for r in performed
    ], "the artifact shows other rows than the run returned"
    assert [r["step"] for r in planned] == [r["step"] for r in performed], (
        "a step the run performs has no plan entry (or the other way round)"
    )
    provisional = _provisional(plan)
    for p, r in zip(planned, performed, strict=True):
        assert p["planned"] is True and r["planned"] is False, (p, r)
        assert (p["step"], p["action"]) == (r["step"], r["action"]), (p, r)
        if p["step"] not in provisional:
            assert p["message"] == r["message"], (p, r)
            assert p["resource"] == r["resource"], (p, r)
        # A no-op says why, in the plan and in the run.
        assert p["message"].strip() and r["message"].strip(), (p, r)
    assert plan["planned_writes"] == sum(
        1 for r in performed if r["action"] != "none" and r["step"] != "canary"
    )


def test_fresh_site_plan_lists_every_step_the_run_performs(fsb: FlowSandbox) -> None:
    site = fsb.site_blocks[0]
    fsb.azure.clear_requests()
    plan = provision_site(
        site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True, dry_run=True))
    )
    assert fsb.arm_writes() == [] and plan["writes"] == 0
    # Before the release exists its service has no address: the mirror and the canary are
    # planned from the facts available, and say so.
    assert _provisional(plan) == {"node-mirror", "canary"}, plan["notes"]
    mirror = next(r for r in plan["steps"] if r["step"] == "node-mirror")
    assert mirror["message"] == (
        "mirror for the connected registry service: add once the release exists, with "
        "hosts.toml (no restart), then a canary pinned to the node"
    )
    run = provision_site(site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    assert run["outcome"] == "converged", run
    assert_plan_matches_run(plan, run, _artifact_rows(fsb))
    actions = {r["step"]: r["action"] for r in run["steps"]}
    assert actions["connected-registry"] == "create"
    assert actions["sync-credential"] == actions["client-password"] == "generate"
    assert actions["helm-release"] == "install"


def test_converged_site_plan_lists_the_same_no_ops_as_the_run(fsb: FlowSandbox) -> None:
    site = fsb.site_blocks[0]
    provision_site(site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    plan = provision_site(site, fsb.parent_block, ProvisionSpec(**spec(dry_run=True)))
    assert plan["planned_writes"] == 0 and _provisional(plan) == set(), plan
    fsb.azure.clear_requests()
    run = provision_site(site, fsb.parent_block, ProvisionSpec(**spec()))
    assert run["outcome"] == "already converged" and run["writes"] == 0, run
    assert_plan_matches_run(plan, run, _artifact_rows(fsb))
    assert {r["action"] for r in run["steps"] if r["step"] != "canary"} == {"none"}
