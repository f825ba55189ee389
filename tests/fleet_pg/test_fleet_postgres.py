"""A fleet provision through the README's fleet setup: the deployments applied by `acr-edge
deploy` to a Prefect server on PostgreSQL, runs taken by two process workers, three sandbox
sites. Written against deployment names and what the sites show (connected registry Online, a
Helm release, a healthy site-status), not against how the fleet flow splits its work.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploykit import ARGS, POOL, parent_ref, wait_final, worker_argv, worker_env
from flowkit import FlowSandbox, spec, start
from pgkit import ROOT, PrefectServer
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from flows.site_status import site_status

pytestmark = [pytest.mark.prefect, pytest.mark.postgres, pytest.mark.timeout(1800)]

SITES = 3
WORKERS = ("fleet-worker-a", "fleet-worker-b")
# One run at a time per worker: a fleet run that waits on runs of other deployments then
# cannot share its worker with them, so both workers take runs whatever the fleet's fan-out.
WORKER_LIMIT = 1
FLEET_TIMEOUT = 1200.0
RELEASE = ("connected-registry", "connected-registry")  # (namespace, name) of the Helm release


@pytest.fixture(scope="module")
def fsb(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Three one-node sites, their blocks saved on the PostgreSQL-backed server."""
    box = start(tmp_path_factory.mktemp("fleet-pg"), sites=SITES, propagation_delay=0)
    try:
        yield box
    finally:
        box.running.stop()


@pytest.fixture(scope="module")
def workers(
    prefect_server: PrefectServer, fsb: FlowSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    """`acr-edge deploy` (the console script), then two workers on its pool; their logs by name."""
    cli = Path(sys.executable).with_name("acr-edge")
    deployed = subprocess.run(
        [str(cli), "deploy", *ARGS],
        cwd=ROOT,
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert deployed.returncode == 0, deployed.stderr
    assert "provision-fleet/provision-fleet" in deployed.stdout, deployed.stdout
    logs = tmp_path_factory.mktemp("workers")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name in WORKERS:
            with open(logs / f"{name}.log", "wb") as out:
                procs.append(
                    subprocess.Popen(
                        worker_argv("--name", name, "--limit", str(WORKER_LIMIT)),
                        cwd=ROOT,
                        env=worker_env(),
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        _wait_workers_online(set(WORKERS), procs)
        yield {name: logs / f"{name}.log" for name in WORKERS}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


def _wait_workers_online(names: set[str], procs: list[subprocess.Popen[bytes]]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import WorkerStatus

    deadline = time.monotonic() + 240
    with get_client(sync_client=True) as client:
        while True:
            online = {
                w.name
                for w in client.read_workers_for_work_pool(POOL)
                if w.status == WorkerStatus.ONLINE
            }
            if names <= online:
                return
            assert all(p.poll() is None for p in procs), "a worker exited while starting"
            assert time.monotonic() < deadline, f"workers online: {online}, wanted {names}"
            time.sleep(1)


def _run_deployment(name: str, parameters: dict[str, Any]) -> Any:
    """Starts a run of the deployment `name` (flow/deployment) and returns its final state."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name(name)
        run = client.create_flow_run_from_deployment(dep.id, parameters=parameters)
    state = wait_final(run.id, timeout=FLEET_TIMEOUT)
    assert state is not None and state.is_completed(), f"{name}: {state}"
    return run


def _deployment_runs() -> list[Any]:
    """Every deployment run on this test's own server (only this module creates any)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId

    with get_client(sync_client=True) as client:
        return list(
            client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    deployment_id=FlowRunFilterDeploymentId(is_null_=False)
                ),
                limit=200,
            )
        )


def _provision(fsb: FlowSandbox) -> Any:
    return _run_deployment(
        "provision-fleet/provision-fleet",
        {
            "parent_block": parent_ref(fsb.parent_block),
            "spec": spec(enable_data_endpoint=True),
            "tag": fsb.tag,
            "max_concurrency": SITES,
        },
    )


def _workers_of(runs: list[Any]) -> dict[str, str]:
    """Run name -> the worker that took it (workers label the runs they submit)."""
    return {r.name: r.labels.get("prefect.worker.name", "") for r in runs}


def test_fleet_provision_on_postgres_through_two_workers(
    prefect_server: PrefectServer, fsb: FlowSandbox, workers: dict[str, Path]
) -> None:
    fleet_run = _provision(fsb)

    runs = _deployment_runs()
    by_worker = _workers_of(runs)
    assert fleet_run.id in {r.id for r in runs}
    # The fleet run and the runs it started: all completed, each taken by one of our workers.
    assert len(runs) > 1, [r.name for r in runs]
    for run in runs:
        assert run.state is not None and run.state.is_completed(), (run.name, run.state)
    assert set(by_worker.values()) == set(WORKERS), by_worker

    for i, site in enumerate(fsb.info["sites"]):
        cr = fsb.azure.resource("connectedRegistries", site["name"])
        assert cr is not None and cr["properties"]["connectionState"] == "Online", site["name"]
        assert fsb.site(i).helm_revision(*RELEASE) >= 1, site["name"]
    # Read back as site-status sees each site, through the real SDKs and the site's Kubernetes
    # API over SSH (here in the test process: three more worker runs would add minutes).
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        for block, site in zip(fsb.site_blocks, fsb.info["sites"], strict=True):
            status = site_status(block, fsb.parent_block)
            assert status["healthy"] is True, status
            assert (status["connection_state"], status["activation"]) == ("Online", "Active")
            checks = {c["check"]: c["status"] for c in status["checks"]}
            assert checks["canary pull"] == "ok" and checks[f"mirror on {site['name']}"] == "ok"

    # A second fleet provision on converged sites writes nothing, in ARM or on the sites.
    fsb.azure.clear_requests()
    helm = [fsb.site(i).helm_revision(*RELEASE) for i in range(SITES)]
    restarts = [fsb.site(i).restart_count for i in range(SITES)]
    _provision(fsb)
    assert fsb.arm_writes() == []
    assert [fsb.site(i).helm_revision(*RELEASE) for i in range(SITES)] == helm
    assert [fsb.site(i).restart_count for i in range(SITES)] == restarts
    again = [r for r in _deployment_runs() if r.id not in {x.id for x in runs}]
    assert again and all(r.state is not None and r.state.is_completed() for r in again)
    # Every one of those runs is a row in PostgreSQL (not in some SQLite file).
    stored = prefect_server.postgres.query(
        "SELECT count(*) FROM flow_run WHERE deployment_id IS NOT NULL"
    )
    assert int(stored) == len(runs) + len(again)
    # The database password was only ever in the environment: no log of the server or of a
    # worker (which carries its runs' output) shows it.
    for log in (prefect_server.log, *workers.values()):
        assert prefect_server.postgres.password not in log.read_text(errors="replace"), log
