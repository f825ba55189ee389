"""The bench's fleet path: what an operator runs, measured.

`acr-edge deploy` on the bench's Prefect server, W process workers on its pool, and one
`provision-fleet` deployment run over every site (one wave, no canary, so the figure is the
fleet's throughput): the fleet run starts `fleet-shard` runs of ``shard_size`` sites on the
workers, each running its sites as `provision-site` subflows. The bench process only creates
the run and waits. CPU is counted over every process under the bench (server, workers, their
flow-run processes, the sandbox), and Prefect API calls from the server's access log.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from acr_edge.local_prefect import stop_process

POOL = "acr-edge-bench"
WORKER_START_TIMEOUT_S = 300.0  # a busy two-core host starting W Python processes
FLEET_TIMEOUT_S = 6 * 3600.0
_ACCESS = re.compile(rb' - "(?:GET|POST|PATCH|PUT|DELETE) /api/')
_TICKS = os.sysconf("SC_CLK_TCK")


def api_calls(server_log: Path | None) -> int | None:
    """Requests the server logged so far (uvicorn's access log, at INFO); None without it."""
    if server_log is None or not server_log.exists():
        return None
    return len(_ACCESS.findall(server_log.read_bytes()))


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its waited-for children)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rpartition(")")[2].split()
    # After the command: state ppid ... utime(12) stime(13) cutime(14) cstime(15), 1-based 4+
    ppid = int(fields[1])
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ppid, ticks / _TICKS


def cpu_tree_seconds() -> float:
    """CPU seconds of this process, its finished children, and every live descendant (with
    the children each of those has finished): the bench's whole footprint so far."""
    import resource

    me = os.getpid()
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (got := _stat(int(entry))) is not None:
            table[int(entry)] = got
    total = 0.0
    for pid, (_, cpu) in table.items():
        seen, p = 0, pid
        while p in table and p != me and seen < 64:
            p, seen = table[p][0], seen + 1
        if p == me and pid != me:
            total += cpu
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        use = resource.getrusage(who)
        total += use.ru_utime + use.ru_stime
    return total


@contextmanager
def workers(count: int, api_url: str, limit: int, log_dir: Path) -> Iterator[list[Any]]:
    """``count`` `prefect worker start` processes on the bench pool, online before it yields."""
    from prefect.client.orchestration import get_client

    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "0",
    }
    procs: list[subprocess.Popen[bytes]] = []
    names = {f"bench-worker-{i}" for i in range(1, count + 1)}
    try:
        for name in sorted(names):
            with open(log_dir / f"{name}.log", "wb") as out:
                procs.append(
                    subprocess.Popen(
                        [
                            sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                            "--name", name, "--limit", str(limit),
                        ],
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        cwd=log_dir,
                    )
                )  # fmt: skip
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        while True:
            with get_client(sync_client=True) as client:
                online = {w.name for w in client.read_workers_for_work_pool(POOL)}
            if names <= online:
                break
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                raise RuntimeError(f"bench workers did not come online: {sorted(online)}")
            time.sleep(1)
        yield procs
    finally:
        for proc in procs:
            stop_process(proc, timeout=30)


@dataclass(frozen=True)
class FleetPass:
    wall_s: float
    errors: list[str]
    site_runs: int


def deploy_pool() -> None:
    from deployments.register import deploy

    deploy(work_pool=POOL, warn=lambda _text: None)


def fleet_pass(
    blocks: list[str],
    parent: str,
    spec: dict[str, Any],
    *,
    shard_size: int,
    max_concurrency: int,
) -> FleetPass:
    """One provision-fleet deployment run over ``blocks``; waits for it to end."""
    from prefect.client.orchestration import get_client

    ref = {"$ref": {"block_document_slug": f"parent-registry/{parent}"}}
    sites = [{"$ref": {"block_document_slug": f"edge-site/{b}"}} for b in blocks]
    params = {
        "parent_block": ref,
        "sites": sites,
        "spec": spec,
        "canary": 0,
        "wave_size": len(blocks),
        "max_failures": None,
        "shard_size": shard_size,
        "max_concurrency": max_concurrency,
    }
    t0 = time.monotonic()
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("provision-fleet/provision-fleet")
        run = client.create_flow_run_from_deployment(dep.id, parameters=params)
        while True:
            state = client.read_flow_run(run.id).state
            if state is not None and state.is_final():
                break
            if time.monotonic() - t0 > FLEET_TIMEOUT_S:
                break
            time.sleep(1)
        wall = time.monotonic() - t0
        site_runs = _site_runs(client, run.id)
    failed = [f"{name}: {st}" for name, st in site_runs.items() if st != "COMPLETED"]
    missing = [b for b in blocks if f"provision-{b}" not in site_runs]
    errors = failed + [f"{b}: no provision-site run" for b in missing]
    if state is None or not state.is_completed():
        errors.insert(0, f"provision-fleet: {state.name if state else 'no state'}")
    return FleetPass(wall_s=wall, errors=errors, site_runs=len(site_runs))


def _site_runs(client: Any, fleet_run_id: Any) -> dict[str, str]:
    """provision-<site> run name -> final state type, for the runs under this fleet run's
    shards (newest per name)."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )

    fleet = client.read_flow_run(fleet_run_id)
    out: dict[str, str] = {}
    offset = 0
    while True:
        page = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["provision-site"])),
            flow_run_filter=FlowRunFilter(
                start_time=FlowRunFilterStartTime(after_=fleet.start_time)
            ),
            limit=200,
            offset=offset,
        )
        for r in page:
            out.setdefault(r.name, str(r.state.type.value) if r.state else "NONE")
        offset += len(page)
        if len(page) < 200:
            return out
