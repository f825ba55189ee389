"""`acr-edge deploy` against the real Prefect API (harness), read back through the API, and a
real process worker running a deployment's flow run against the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from deployments.definitions import definitions
from deployments.register import main as deploy_main

POOL = "acr-edge-test-deploy"
TZ = "Europe/Berlin"
FLOWS = ("provision-site", "provision-fleet", "rotate-fleet-tokens", "site-status")
ARGS = [
    "--work-pool", POOL,
    "--timezone", TZ,
    "--site-status-sites", "sandbox-site-1",
    "--parent-block", "sandbox-parent",
]  # fmt: skip


def _deployment(name: str) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(f"{name}/{name}")


@pytest.fixture(scope="module")
def first_deploy_output() -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert deploy_main(ARGS) == 0
    return buf.getvalue()


def test_deploy_registers_pool_block_types_and_four_deployments(first_deploy_output: str) -> None:
    assert f"work-pool  {POOL}" in first_deploy_output
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(POOL)
        assert pool.type == "process"
        slugs = {bt.slug for bt in client.read_block_types()}
    assert {"parent-registry", "edge-site"} <= slugs
    for name in FLOWS:
        dep = _deployment(name)
        assert dep.work_pool_name == POOL
        assert dep.entrypoint.startswith("flows.")
        assert dep.path is None  # module entrypoint: nothing tied to this checkout
        assert "acr-edge" in dep.tags
        assert dep.description
        assert dep.parameters["parent_block"] == "sandbox-parent"


def test_second_deploy_updates_in_place(first_deploy_output: str, capsys: Any) -> None:
    ids = {name: _deployment(name).id for name in FLOWS}
    assert deploy_main(ARGS) == 0
    out = capsys.readouterr().out
    for name in FLOWS:
        assert f"{name}/{name}" in out
        line = next(li for li in out.splitlines() if f"{name}/{name}" in li)
        assert " updated " in f"{line} "
        assert _deployment(name).id == ids[name]
    assert "exists" in next(li for li in out.splitlines() if POOL in li)
    # schedules were replaced, not duplicated
    assert len(_deployment("rotate-fleet-tokens").schedules) == 1


def test_schedules_read_back_with_cron_interval_timezone_and_site_parameters(
    first_deploy_output: str,
) -> None:
    rotate = _deployment("rotate-fleet-tokens")
    [sched] = rotate.schedules
    assert sched.schedule.cron == "0 3 * * 1"
    assert sched.schedule.timezone == TZ
    assert sched.active
    status = _deployment("site-status")
    [per_site] = status.schedules
    assert per_site.schedule.interval.total_seconds() == 15 * 60
    assert per_site.schedule.timezone == TZ
    assert per_site.parameters == {"site_block": "sandbox-site-1"}
    assert per_site.slug == "status-sandbox-site-1"
    assert not _deployment("provision-site").schedules
    assert _deployment("provision-site").global_concurrency_limit.limit == 10
    assert _deployment("rotate-fleet-tokens").global_concurrency_limit.limit == 1


def test_parameter_schemas_describe_the_ui_form(first_deploy_output: str) -> None:
    schema = _deployment("provision-site").parameter_openapi_schema
    props = schema["properties"]
    assert {"site_block", "parent_block", "spec"} <= set(props)
    assert set(schema["required"]) >= {"site_block", "spec"}
    spec_def = schema["definitions"]["ProvisionSpec"]
    assert spec_def["properties"]["namespaces"]["description"]
    assert spec_def["properties"]["mode"]["enum"] == ["ReadOnly", "ReadWrite"]
    status = _deployment("site-status").parameter_openapi_schema
    assert "site_block" in status["required"]
    rotate = _deployment("rotate-fleet-tokens").parameter_openapi_schema["properties"]
    assert rotate["lifetime_days"]["default"] == 90


def test_bad_input_is_refused_before_any_write(capsys: Any) -> None:
    for bad in (
        ["--work-pool", "never-made", "--timezone", "Mars/Olympus"],
        ["--work-pool", "never-made", "--rotate-cron", "every monday"],
        ["--work-pool", "never-made", "--site-status-sites", "Bad_Site"],
    ):
        assert deploy_main(bad) == 2
        assert "Fix:" in capsys.readouterr().err
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_work_pool("never-made")


def test_prefect_yaml_matches_the_python_definitions() -> None:
    doc = yaml.safe_load(Path("deployments/prefect.yaml").read_text())
    by_name = {d["name"]: d for d in doc["deployments"]}
    assert set(by_name) == set(FLOWS)
    for defn in definitions():
        entry = by_name[defn.name]
        assert entry["entrypoint"] == defn.entrypoint
        assert entry["description"] == defn.description
        assert tuple(entry["tags"]) == defn.tags
        assert entry["parameters"] == defn.parameters
        assert entry["concurrency_limit"] == defn.concurrency_limit
        assert entry["work_pool"]["name"] == "acr-edge"
        assert [(s["cron"], s["timezone"], s["slug"]) for s in entry["schedules"]] == [
            (s.cron, s.timezone, s.slug) for s in defn.schedules
        ]


# ---- a real worker executes a deployment's run against the sandbox -------------------------


@pytest.fixture(scope="module")
def sandbox_blocks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from sandbox.blocks_registration import register
    from sandbox.runner import start_sandbox

    running = start_sandbox(tmp_path_factory.mktemp("deploy-sandbox"), sites=1)
    try:
        register(running.info)
        yield running.info
    finally:
        running.stop()


def _wait_final(flow_run_id: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(flow_run_id).state
            if (state is not None and state.is_final()) or time.monotonic() > deadline:
                return state
            time.sleep(0.5)


def test_worker_provisions_a_sandbox_site_from_the_deployment(
    first_deploy_output: str, sandbox_blocks: dict[str, Any]
) -> None:
    from blocks.parent_registry import ParentRegistry

    dep = _deployment("provision-site")
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(
            dep.id,
            parameters={
                "site_block": "sandbox-site-1",
                "spec": {"namespaces": ["samples"], "enable_data_endpoint": True},
            },
        )
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    worker = subprocess.run(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--run-once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd="/",  # the module entrypoint must resolve without this checkout as cwd
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    state = _wait_final(run.id)
    assert state is not None and state.is_completed(), (state, worker.stderr[-3000:])
    # the run made the connected registry through the block's ARM endpoint
    ctx = ParentRegistry.load("sandbox-parent").azure_context()
    try:
        cr_name = sandbox_blocks["sites"][0]["name"]
        cr = ctx.cr_mgmt.connected_registries.get(ctx.resource_group, ctx.registry, cr_name)
        assert cr.name == cr_name
    finally:
        ctx.close()
