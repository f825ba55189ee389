"""Issue 12 item 7: a dry run is told apart from a real run in the run list.

Real flows against the strict sandbox, read back through the Prefect API: a dry run's run is
named plan-<usual name> and tagged plan; a dry run that meets a blocker (a principal without
the actions) ends Failed named Blocked with the blocker and its fix first in its artifact; a
clean dry run ends Completed named Planned; a fleet's shard reports a blocked site as
blocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, parent_as, spec, start

from flows import plan_runs
from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from flows.teardown_site import teardown_site
from model.errors import PermanentError

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("plan-runs"), sites=1, propagation_delay=0)
    try:
        yield box
    finally:
        box.running.stop()


@pytest.fixture(scope="module")
def reader(fsb: FlowSandbox) -> str:
    """A ParentRegistry block for a principal that may read but not write: every run stops
    at the permissions preflight."""
    return parent_as(fsb, ["Reader"], f"{fsb.parent_block}-reader")


def _run(state: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def _markdown(run: Any) -> str:
    """The run's own markdown artifact (keys repeat across modules; the run does not)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    found = [a for a in arts if a.type == "markdown"]
    assert len(found) == 1, arts
    return str(found[0].data)


def test_a_clean_dry_run_is_a_planned_plan_run(fsb: FlowSandbox) -> None:
    site = fsb.site_blocks[0]
    state = provision_site(
        site,
        fsb.parent_block,
        ProvisionSpec(**spec(enable_data_endpoint=True, dry_run=True)),
        return_state=True,
    )
    run = _run(state)
    assert state.is_completed() and state.name == "Planned", (state, state.message)
    assert run.state.name == "Planned" and run.state.is_completed()
    assert run.name == f"plan-provision-{site}", run.name
    assert "plan" in run.tags, run.tags
    summary = state.result()
    assert summary["outcome"] == "planned" and summary["blocked"] == [], summary
    text = _markdown(run)
    assert "## Blocked" not in text and "## ARM" in text
    assert fsb.arm_writes() == []


def test_the_dry_run_parameter_names_a_stored_or_given_spec_a_plan(fsb: FlowSandbox) -> None:
    """dry_run as its own parameter (the route for a site's stored spec) names it too."""
    site = fsb.site_blocks[0]
    state = provision_site(
        site,
        fsb.parent_block,
        ProvisionSpec(**spec(enable_data_endpoint=True)),
        dry_run=True,
        return_state=True,
    )
    run = _run(state)
    assert run.name == f"plan-provision-{site}" and "plan" in run.tags, (run.name, run.tags)
    assert state.name == "Planned", state


def test_an_error_the_real_run_would_stop_at_is_a_blocker(fsb: FlowSandbox) -> None:
    """preflight-parent refuses a disabled data endpoint by raising, in a dry run too: the
    plan makes a blocker row of the error."""
    state = provision_site(
        fsb.site_blocks[0], fsb.parent_block, ProvisionSpec(**spec(dry_run=True)), return_state=True
    )
    run = _run(state)
    assert run.state.name == "Blocked", run.state
    message = run.state.message or ""
    assert message.startswith("stop registries/") and "data endpoint" in message, message
    assert "Fix:" in message and message.count("registries/") == 1, message  # named once
    text = _markdown(run)
    assert next(s for s in text.splitlines() if s.startswith("## ")) == "## Blocked", text
    assert "az acr update" in text.split("## Blocked", 1)[1].split("\n## ", 1)[0]


def test_a_real_run_is_not_a_plan(fsb: FlowSandbox, reader: str) -> None:
    state = provision_site(fsb.site_blocks[0], reader, ProvisionSpec(**spec()), return_state=True)
    run = _run(state)
    assert run.name == f"provision-{fsb.site_blocks[0]}" and "plan" not in run.tags
    assert state.is_failed() and state.name == "Failed", state  # refused, not "Blocked"


def test_a_blocked_dry_run_ends_blocked_with_the_blocker_first(
    fsb: FlowSandbox, reader: str
) -> None:
    site = fsb.site_blocks[0]
    fsb.azure.clear_requests()
    state = provision_site(site, reader, ProvisionSpec(**spec(dry_run=True)), return_state=True)
    run = _run(state)
    assert fsb.arm_writes() == []
    assert run.name == f"plan-provision-{site}" and "plan" in run.tags, (run.name, run.tags)
    assert not run.state.is_completed() and run.state.is_failed()
    assert run.state.name == "Blocked", run.state
    message = run.state.message or ""
    assert message.startswith("preflight-permissions "), message
    assert "scopeMaps/write" in message and "Fix:" in message and "\n" not in message
    # The plan survives: the state's data is the PlanBlocked error carrying the summary.
    err = state.result(raise_on_failure=False)
    assert isinstance(err, plan_runs.PlanBlocked) and isinstance(err, PermanentError)
    assert err.summary["outcome"] == "blocked"
    assert [b["step"] for b in err.summary["blocked"]] == ["preflight-permissions"]
    text = _markdown(run)
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Blocked", sections
    blocked = text.split("## Blocked", 1)[1].split("\n## ", 1)[0]
    assert "preflight-permissions" in blocked and "README" in blocked  # the fix
    # Listed once, in the Blocked section only.
    assert text.count("| preflight-permissions |") == 1, text


def test_a_direct_call_of_a_blocked_dry_run_raises_the_blocker(
    fsb: FlowSandbox, reader: str
) -> None:
    with pytest.raises(plan_runs.PlanBlocked, match="scopeMaps/write") as err:
        provision_site(fsb.site_blocks[0], reader, ProvisionSpec(**spec(dry_run=True)))
    assert err.value.summary["planned_writes"] == 0


def test_teardown_dry_runs_blocked_and_clean(fsb: FlowSandbox, reader: str) -> None:
    site = fsb.site_blocks[0]
    state = teardown_site(site, reader, dry_run=True, return_state=True)
    run = _run(state)
    assert run.name == f"plan-teardown-{site}" and "plan" in run.tags
    assert run.state.name == "Blocked" and run.state.is_failed(), run.state
    assert (run.state.message or "").startswith("preflight-permissions "), run.state.message
    text = _markdown(run)
    assert next(s for s in text.splitlines() if s.startswith("## ")) == "## Blocked", text
    assert text.index("## Blocked") < text.index("| why | step | action | resource |")

    clean = teardown_site(site, fsb.parent_block, dry_run=True, return_state=True)
    run = _run(clean)
    assert clean.is_completed() and clean.name == "Planned", (clean, clean.message)
    assert run.name == f"plan-teardown-{site}" and "plan" in run.tags
    assert "## Blocked" not in _markdown(run)
    assert fsb.arm_writes() == []


def test_a_fleet_shard_reports_a_blocked_site_as_blocked(fsb: FlowSandbox, reader: str) -> None:
    from flows.fleet_report import ordered
    from flows.fleet_shard import run_site

    site = fsb.site_blocks[0]
    row = run_site.fn("teardown", site, {"parent_block": reader, "dry_run": True})
    assert row["state"] == "Blocked" and row["ok"] is False, row
    assert row["outcome"].startswith("blocked: preflight-permissions "), row
    assert row["run"] == f"plan-teardown-{site}", row
    planned = run_site.fn("teardown", site, {"parent_block": fsb.parent_block, "dry_run": True})
    assert planned["state"] == "Planned" and planned["ok"] is True, planned
    assert planned["run"] == f"plan-teardown-{site}"
    failed = {**row, "site": "z-failed", "state": "Failed"}
    assert [r["state"] for r in ordered([planned, row, failed])] == [
        "Failed",
        "Blocked",
        "Planned",
    ]


def test_mark_plan_renames_and_tags_the_run_it_is_in() -> None:
    """The run-time route (a fleet's generated name; a spec known only once loaded)."""
    from prefect import flow

    @flow(name="plan-runs-mark", flow_run_name="mark-me")
    def marked() -> None:
        plan_runs.mark_plan()
        plan_runs.mark_plan()  # idempotent: one prefix, one tag

    run = _run(marked(return_state=True))
    assert run.name == "plan-mark-me" and run.tags.count("plan") == 1, (run.name, run.tags)
    plan_runs.mark_plan()  # outside a flow run: nothing, no error
