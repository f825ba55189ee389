"""Fleet flows: selection by name/tag, provision through the real deployment + a process worker,
rotation fan-out, and the summary artifact."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.fleet import provision_fleet, rotate_fleet_tokens, select_sites
from flows.models import ProvisionSpec
from tasks.errors import InputError

pytestmark = pytest.mark.prefect
ROOT = Path(__file__).resolve().parents[2]
POOL = "acr-edge-fleet-test"


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("fleet"), sites=2)
    try:
        yield box
    finally:
        box.running.stop()


@pytest.fixture(scope="module")
def worker(fsb: FlowSandbox) -> Iterator[subprocess.Popen[bytes]]:
    """The provision-site deployment served by a real process worker on the harness API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments.runner import EntrypointType
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL

    from flows.provision_site import provision_site

    with get_client(sync_client=True) as client, contextlib.suppress(ObjectAlreadyExists):
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
    deployment: Any = provision_site.to_deployment(
        name="provision-site",
        work_pool_name=POOL,
        entrypoint_type=EntrypointType.MODULE_PATH,
        parameters={"parent_block": fsb.parent_block},
    )
    deployment.apply()
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--limit", "4"],
        cwd=ROOT,
        env=env,
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


def test_selection_is_by_name_or_tag_and_refuses_unknowns(fsb: FlowSandbox) -> None:
    assert select_sites(None, fsb.tag) == sorted(fsb.site_blocks)
    assert select_sites([fsb.site_blocks[1]], None) == [fsb.site_blocks[1]]
    with pytest.raises(InputError, match="exactly one"):
        select_sites(None, None)
    with pytest.raises(InputError, match="exactly one"):
        select_sites(fsb.site_blocks, fsb.tag)
    with pytest.raises(InputError, match="no edge-site block named"):
        select_sites(["nope-not-here"], None)
    with pytest.raises(InputError, match="tag"):
        select_sites(None, "no-such-tag")


def test_provision_fleet_through_the_deployment_then_rotate_fleet(
    fsb: FlowSandbox, worker: subprocess.Popen[bytes]
) -> None:
    from prefect.artifacts import Artifact

    out = provision_fleet(
        fsb.parent_block,
        ProvisionSpec(**spec(enable_data_endpoint=True, client_password_days=5)),
        tag=fsb.tag,
        max_concurrency=2,
    )
    assert out["failed"] == [] and {r["site"] for r in out["sites"]} == set(fsb.site_blocks)
    for site in fsb.info["sites"]:
        cr = fsb.azure.resource("connectedRegistries", site["name"])
        assert cr["properties"]["connectionState"] == "Online"
    assert Artifact.get("provision-fleet-summary") is not None

    rotated = rotate_fleet_tokens(fsb.parent_block, tag=fsb.tag, max_concurrency=1)
    assert [r["outcome"] for r in rotated["sites"]] == ["rotated", "rotated"]
    again = rotate_fleet_tokens(fsb.parent_block, sites=fsb.site_blocks)
    assert [r["outcome"] for r in again["sites"]] == ["not due", "not due"]
