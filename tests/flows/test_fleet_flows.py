"""Fleet flows: selection by name/tag, and every fan-out through the real per-site deployments
(applied by the same registrar as test_deploy, on the same pool) and a real process worker:
a failing fleet, provisioning, rotation started from the rotate-fleet-tokens deployment, and
the fleet-status check."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploykit import KWARGS, wait_final, worker_argv, worker_env
from flowkit import FlowSandbox, spec, start

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
    box = start(tmp_path_factory.mktemp("fleet"), sites=2)
    try:
        yield box
    finally:
        box.running.stop()


@pytest.fixture(scope="module")
def worker(fsb: FlowSandbox) -> Iterator[subprocess.Popen[bytes]]:
    """All deployments applied by `acr-edge deploy`'s registrar, served by a process worker
    (room for a fleet run and its per-site runs at once)."""
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
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _site_runs(deployment: str, run_names: list[str]) -> dict[str, list[Any]]:
    """Runs of a per-site deployment by run name, newest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowRunFilter,
        FlowRunFilterName,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=run_names)),
            sort=FlowRunSort.START_TIME_DESC,
        )
    return {n: [r for r in runs if r.name == n] for n in run_names}


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


def test_fleet_fans_out_through_the_per_site_deployments(
    fsb: FlowSandbox, worker: subprocess.Popen[bytes]
) -> None:
    from prefect.client.orchestration import get_client

    sites = fsb.site_blocks
    rotate_names = [f"rotate-{s}" for s in sites]

    # Nothing provisioned yet: each site's rotation run fails, so the fleet run fails and its
    # summary names both sites with links to their runs.
    with pytest.raises(PermanentError) as failed:
        rotate_fleet_tokens(fsb.parent_block, tag=fsb.tag)
    for site in sites:
        assert f"{site}: rotate-{site} Failed" in str(failed.value)
    summary = _artifact("rotate-fleet-tokens-summary")
    assert summary is not None and summary.description is not None
    failed_runs = _site_runs("rotate-client-token", rotate_names)
    for site, name in zip(sites, rotate_names, strict=True):
        [run] = failed_runs[name]
        assert run.state is not None and run.state.is_failed()
        assert f"{site} (http" in summary.description and str(run.id) in summary.description

    out = provision_fleet(
        fsb.parent_block,
        ProvisionSpec(**spec(enable_data_endpoint=True, client_password_days=5)),
        tag=fsb.tag,
        max_concurrency=2,
    )
    assert out["failed"] == [] and {r["site"] for r in out["sites"]} == set(sites)
    assert [r["run"] for r in out["sites"]] == [f"provision-{s}" for s in sites]
    for site in fsb.info["sites"]:
        cr = fsb.azure.resource("connectedRegistries", site["name"])
        assert cr["properties"]["connectionState"] == "Online"

    # The weekly deployment itself, run by the worker: one rotate-client-token run per site.
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("rotate-fleet-tokens/rotate-fleet-tokens")
        fleet_run = client.create_flow_run_from_deployment(
            dep.id, parameters={"parent_block": fsb.parent_block, "tag": fsb.tag}
        )
    state = wait_final(fleet_run.id, timeout=120)
    assert state is not None and state.is_completed(), state
    runs = _site_runs("rotate-client-token", rotate_names)
    for site, name in zip(sites, rotate_names, strict=True):
        assert len(runs[name]) == 2, site  # the failed one above, and this fleet's
        newest = runs[name][0]
        assert newest.state is not None and newest.state.is_completed(), site
        assert newest.parameters["site_block"] == site
        assert newest.parent_task_run_id is not None  # shown under the fleet run in the UI
    table = _artifact("rotate-fleet-tokens-summary")
    assert table is not None and "2/2 sites ok" in str(table.description)
    assert all(": rotated" in r["outcome"] for r in _summary_rows(table))

    status = fleet_status(fsb.parent_block, tag=fsb.tag)
    assert [r["run"] for r in status["sites"]] == [f"status-{s}" for s in sites]
    assert status["failed"] == []


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
    done = teardown_fleet(fsb.parent_block, tag=fsb.tag, max_concurrency=2)
    assert [r["run"] for r in done["sites"]] == [f"teardown-{s}" for s in sites]
    assert all("torn down" in r["outcome"] for r in done["sites"]), done
    for cr in crs:
        assert fsb.azure.resource("connectedRegistries", cr) is None
        assert fsb.azure.resource("tokens", cr) is None


def _artifact(key: str) -> Any:
    from prefect.artifacts import Artifact

    return Artifact.get(key)


def _summary_rows(artifact: Any) -> list[dict[str, Any]]:
    import json

    data = artifact.data
    return json.loads(data) if isinstance(data, str) else list(data)
