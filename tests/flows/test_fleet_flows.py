"""Fleet flows: selection by name/tag, and every fleet run in waves of fleet-shard runs through
the real deployments (applied by the same registrar as test_deploy, on the same pool) and a real
process worker, each site a named subflow of its shard: a wave that halts at its budget, a
failing fleet, provisioning, rotation started from the rotate-fleet-tokens deployment, the
fleet-status check, sync rotation and teardown."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploykit import KWARGS, parent_ref, wait_final, worker_argv, worker_env
from flowkit import FlowSandbox, spec, start

from acr_edge.local_prefect import stop_process
from deployments.register import deploy
from flows.fleet import (
    fleet_status,
    provision_fleet,
    rotate_fleet_sync,
    rotate_fleet_tokens,
    select_sites,
    teardown_fleet,
)
from flows.models import ProvisionSpec
from model.errors import InputError, PermanentError

pytestmark = pytest.mark.prefect
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("fleet"), sites=3)
    try:
        yield box
    finally:
        box.running.stop()


@pytest.fixture(scope="module")
def worker(fsb: FlowSandbox) -> Iterator[subprocess.Popen[bytes]]:
    """All deployments applied by `acr-edge deploy`'s registrar, served by a process worker
    (room for a fleet run and its shard runs at once)."""
    deploy(**KWARGS)
    proc = subprocess.Popen(
        worker_argv("--limit", "4"),
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        stop_process(proc, timeout=10)


def _site_runs(flow_name: str, run_names: list[str]) -> dict[str, list[Any]]:
    """Runs of a per-site flow by run name, newest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=run_names)),
            sort=FlowRunSort.START_TIME_DESC,
        )
    return {n: [r for r in runs if r.name == n] for n in run_names}


def _parent_flow_run(run: Any) -> Any:
    """The flow run a subflow ran in (through its tracking task run)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        task_run = client.read_task_run(run.parent_task_run_id)
        assert task_run.flow_run_id is not None
        return client.read_flow_run(task_run.flow_run_id)


def _halted_events(fleet_run_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    from flows.fleet import HALTED_EVENT

    with get_client(sync_client=True) as client:
        page = client.read_events(
            filter=EventFilter(
                event=EventNameFilter(name=[HALTED_EVENT]),
                resource=EventResourceFilter(id=[f"acr-edge.fleet.{fleet_run_id}"]),
            ),
            limit=50,  # the server's maximum page
        )
    return list(page.events)


def test_selection_is_by_name_or_tag_and_refuses_unknowns(fsb: FlowSandbox) -> None:
    assert select_sites(None, fsb.tag) == sorted(fsb.site_blocks)
    assert select_sites([fsb.site_blocks[1]], None) == [fsb.site_blocks[1]]
    with pytest.raises(InputError, match="exactly one"):
        select_sites(None, None)
    with pytest.raises(InputError, match="exactly one"):
        select_sites(fsb.site_blocks, fsb.tag)
    with pytest.raises(InputError, match="exactly one"):
        select_sites(fsb.site_blocks, fsb.tag, default_all=True)
    with pytest.raises(InputError, match="no edge-site block named"):
        select_sites(["nope-not-here"], None)
    with pytest.raises(InputError, match="tag"):
        select_sites(None, "no-such-tag")
    # rotation and status may mean "every site": all blocks, including this fleet's
    assert set(fsb.site_blocks) <= set(select_sites(None, None, default_all=True))


@pytest.mark.timeout(900)
def test_a_wave_halts_at_its_budget(fsb: FlowSandbox, worker: subprocess.Popen[bytes]) -> None:
    """The canary site's node refuses SSH: its run fails, so with no failure budget the later
    waves never start; the fleet run fails naming both kinds, and emits the halted event."""
    import time

    sites = fsb.site_blocks
    fsb.site(0).knobs.unreachable = "refuse"
    try:
        state = provision_fleet(
            fsb.parent_block,
            ProvisionSpec(**spec()),
            sites=sites,
            canary=1,
            wave_size=1,
            max_failures=0,
            return_state=True,
        )
    finally:
        fsb.site(0).knobs.unreachable = False
    assert state.is_failed()
    with pytest.raises(PermanentError) as halted:
        state.result()
    text = str(halted.value)
    assert f"{sites[0]}: provision-{sites[0]} Failed" in text
    assert f"not started: {sites[1]}, {sites[2]}" in text
    summary = _artifact("provision-fleet-summary")
    assert "not started (" in summary.description and sites[2] in summary.description
    rows = {r["site"]: r for r in _summary_rows(summary)}
    assert rows[sites[0]]["state"] == "Failed" and str(sites[0]) in rows[sites[0]]["run"]
    assert rows[sites[1]]["state"] == rows[sites[2]]["state"] == "NotStarted"
    # Worst first, outcome first; the overview counts per state before the rows.
    assert _summary_rows(summary)[0]["site"] == sites[0]
    assert next(iter(_summary_rows(summary)[0])) == "outcome"
    overview = _artifact("provision-fleet-overview")
    assert overview is not None and "| Failed | 1 |" in str(overview.data)
    assert "| NotStarted | 2 |" in str(overview.data)
    fleet_run_id = state.state_details.flow_run_id
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        # Named for what it does and to which sites, not Prefect's random two words.
        assert client.read_flow_run(fleet_run_id).name == "provision-fleet-3-sites"
    progress = _progress(fleet_run_id)
    assert progress is not None and "1/3 site(s) finished, 1 failed" in str(progress.description)
    # Only the canary ran: no provision run exists for the others.
    runs = _site_runs("provision-site", [f"provision-{s}" for s in sites])
    assert len(runs[f"provision-{sites[0]}"]) == 1
    assert runs[f"provision-{sites[1]}"] == [] and runs[f"provision-{sites[2]}"] == []
    assert fsb.azure.resource("connectedRegistries", fsb.info["sites"][1]["name"]) is None
    deadline = time.monotonic() + 60  # events are written by the server in the background
    while not (events := _halted_events(fleet_run_id)) and time.monotonic() < deadline:
        time.sleep(1)
    [event] = events
    assert event.payload["failed"] == [sites[0]]
    assert event.payload["not_started"] == [sites[1], sites[2]]
    assert event.resource["prefect.resource.name"] == "provision-fleet"


@pytest.mark.timeout(900)  # a busy 2-core machine: each wave starts its own shard processes
def test_fleet_runs_sites_as_named_subflows_of_shards(
    fsb: FlowSandbox, worker: subprocess.Popen[bytes]
) -> None:
    sites = fsb.site_blocks
    rotate_names = [f"rotate-{s}" for s in sites]

    # Nothing provisioned yet: the canary site's rotation fails, so the fleet run fails, its
    # summary names that site with a link to its run, and the other sites are not started.
    with pytest.raises(PermanentError) as failed:
        rotate_fleet_tokens(fsb.parent_block, tag=fsb.tag)
    assert f"{sites[0]}: rotate-{sites[0]} Failed" in str(failed.value)
    assert f"not started: {sites[1]}, {sites[2]}" in str(failed.value)
    summary = _artifact("rotate-fleet-tokens-summary")
    assert summary is not None and summary.description is not None
    [run] = _site_runs("rotate-client-token", rotate_names)[rotate_names[0]]
    assert run.state is not None and run.state.is_failed()
    assert f"{sites[0]} (http" in summary.description and str(run.id) in summary.description

    # Canary first, then a wave of two shards of one site each.
    out = provision_fleet(
        fsb.parent_block,
        ProvisionSpec(**spec(enable_data_endpoint=True, client_password_days=5)),
        tag=fsb.tag,
        wave_size=2,
        shard_size=1,
        max_concurrency=2,
    )
    assert out["failed"] == [] and out["not_started"] == []
    assert [r["run"] for r in out["sites"]] == [f"provision-{s}" for s in sites]
    for site in fsb.info["sites"]:
        cr = fsb.azure.resource("connectedRegistries", site["name"])
        assert cr["properties"]["connectionState"] == "Online"
    provisioned = _site_runs("provision-site", [f"provision-{s}" for s in sites])
    shards = {_parent_flow_run(provisioned[f"provision-{s}"][0]).name for s in sites}
    assert shards == {
        "provision-shard-w1-1of1",
        "provision-shard-w2-1of2",
        "provision-shard-w2-2of2",
    }


@pytest.mark.timeout(900)  # a busy 2-core machine: each wave starts its own shard processes
def test_the_weekly_rotation_deployment_runs_shards_on_the_worker(
    fsb: FlowSandbox, worker: subprocess.Popen[bytes]
) -> None:
    """After the provisioning above: the rotate-fleet-tokens deployment itself, run by the
    worker, starts its shards on the same pool: one rotate-<site> subflow per site."""
    from prefect.client.orchestration import get_client

    sites = fsb.site_blocks
    rotate_names = [f"rotate-{s}" for s in sites]
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("rotate-fleet-tokens/rotate-fleet-tokens")
        fleet_run = client.create_flow_run_from_deployment(
            dep.id, parameters={"parent_block": parent_ref(fsb.parent_block), "tag": fsb.tag}
        )
    state = wait_final(fleet_run.id, timeout=600)
    assert state is not None and state.is_completed(), state
    runs = _site_runs("rotate-client-token", rotate_names)
    for site, name in zip(sites, rotate_names, strict=True):
        newest = runs[name][0]
        assert newest.state is not None and newest.state.is_completed(), site
        assert newest.parameters["site_block"] == site
        assert newest.deployment_id is None  # a subflow of its shard, not a process of its own
        shard = _parent_flow_run(newest)
        assert shard.name.startswith("rotate-shard-w") and shard.deployment_id is not None
        assert site in shard.parameters["site_blocks"]
    table = _artifact("rotate-fleet-tokens-summary")
    assert table is not None and "3/3 sites ok" in str(table.description)
    assert all(": rotated" in r["outcome"] for r in _summary_rows(table))

    status_state = fleet_status(fsb.parent_block, tag=fsb.tag, return_state=True)
    status = status_state.result()
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(status_state.state_details.flow_run_id)
    assert run.name == f"fleet-status-tag-{fsb.tag}"
    assert [r["run"] for r in status["sites"]] == [f"status-{s}" for s in sites]
    assert status["failed"] == []
    # Each site's two numbers reach the fleet; the overview shows them as one picture, a dot
    # per site (the client passwords were just rotated: 90 days; the sync one: 365).
    for row in status["sites"]:
        assert isinstance(row["expiry_days"], float) and 30 < row["expiry_days"] <= 90, row
        assert row["sync_age_s"] is None or row["sync_age_s"] >= 0, row
    overview = _artifact("fleet-status-overview")
    assert overview is not None and "| Completed | 3 |" in str(overview.data)
    dots = _picture_dots(str(overview.data))
    assert sorted(dots) == sorted(f"{s}: ok" for s in sites)


@pytest.mark.timeout(900)
def test_sync_rotation_and_teardown_fan_out_per_site(
    fsb: FlowSandbox, worker: subprocess.Popen[bytes]
) -> None:
    """After the provisioning above: the sync rotation runs per site (not due: nothing
    rotated), the teardown needs an explicit choice, plans per site, then tears down."""
    sites = fsb.site_blocks
    crs = [s["name"] for s in fsb.info["sites"]]
    for cr in crs:
        assert fsb.azure.resource("connectedRegistries", cr) is not None
    out = rotate_fleet_sync(fsb.parent_block, tag=fsb.tag)
    assert out["failed"] == [] and [r["run"] for r in out["sites"]] == [
        f"rotate-sync-{s}" for s in sites
    ]
    with pytest.raises(InputError, match="exactly one"):
        teardown_fleet(fsb.parent_block)
    plan = teardown_fleet(fsb.parent_block, tag=fsb.tag, dry_run=True)
    assert plan["failed"] == [] and all("planned" in r["outcome"] for r in plan["sites"]), plan
    for cr in crs:
        assert fsb.azure.resource("connectedRegistries", cr) is not None
    done = teardown_fleet(fsb.parent_block, tag=fsb.tag, canary=0, max_concurrency=2)
    assert [r["run"] for r in done["sites"]] == [f"teardown-{s}" for s in sites]
    assert all("torn down" in r["outcome"] for r in done["sites"]), done
    for cr in crs:
        assert fsb.azure.resource("connectedRegistries", cr) is None
        assert fsb.azure.resource("tokens", cr) is None


def _artifact(key: str) -> Any:
    from prefect.artifacts import Artifact

    return Artifact.get(key)


def _progress(flow_run_id: Any) -> Any:
    """The fleet run's progress artifact (the newest of its progress artifacts)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterType,
        FlowRunFilter,
        FlowRunFilterId,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        )
    return found[-1] if found else None


def _picture_dots(markdown: str) -> list[str]:
    """The tooltips of the dots in the overview's picture (a base64 SVG data-URI image)."""
    import base64
    import xml.etree.ElementTree as ET

    encoded = markdown.split("](data:image/svg+xml;base64,", 1)[1].split(")", 1)[0]
    root = ET.fromstring(base64.b64decode(encoded).decode())
    circles = list(root.iter("{http://www.w3.org/2000/svg}circle"))[3:]  # 3: the legend
    return ["".join(c.itertext()) for c in circles]


def _summary_rows(artifact: Any) -> list[dict[str, Any]]:
    import json

    data = artifact.data
    return json.loads(data) if isinstance(data, str) else list(data)
