"""`acr-edge bench`: provision N simulated sites through the real flows and print JSON figures.

It drives the `provision-site` flow (real Prefect runs, tasks, API round trips, per-site
locks) for every site, at most --max-concurrency at a time, against the sandbox (in a child
process: `bench.sandbox_proc`) with a latency model applied through its knobs; then runs the
same again to prove a converged fleet costs no writes. Figures: wall time vs the critical-path
lower bound from the same model (`bench.model`), ARM reads/writes per site (sandbox request
log), SSH commands per site (node command logs), second-run writes, peak RSS, the private
Prefect server's 503s by handler, and per pass the site run durations and task time by kind
read back from the Prefect API.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import os
import re
import resource
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from acr_edge.local_prefect import isolate_prefect_home
from bench.model import LatencyModel, fleet_lower_bound, site_critical_path

BENCH_NAMESPACES = ["samples", "edge/apps"]


class Internal:
    """The sandbox's `/_sandbox` endpoints over verified HTTPS (its own CA)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.base = info["internal_endpoint"].rstrip("/")
        self.key = info["internal_key"]
        self.ctx = ssl.create_default_context(cafile=info["ca_bundle"])

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base}{path}",
            data=data,
            method=method,
            headers={"X-Sandbox-Key": self.key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as resp:
            return json.loads(resp.read() or b"null")


def apply_azure_model(internal: Internal, model: LatencyModel) -> None:
    internal.call(
        "POST",
        "/latency",
        {"latency": model.arm_latency_ms / 1000.0, "lro_seconds": model.lro_ms / 1000.0},
    )


def apply_model(running: Any, internal: Internal, model: LatencyModel) -> None:
    """Azure knobs over the internal endpoint; site knobs live on each in-process node."""
    apply_azure_model(internal, model)
    for site in running.sites:
        site.knobs.ssh.latency = model.ssh_rtt_ms / 1000.0
        site.knobs.pod_ready_time = model.pod_ready_ms / 1000.0
        site.knobs.restart_time = model.k3s_restart_ms / 1000.0


def arm_counts(internal: Internal) -> dict[str, int]:
    entries = internal.call("GET", "/requests")["requests"]
    arm = [e for e in entries if str(e["path"]).startswith("/subscriptions")]
    return {
        "arm_reads": sum(1 for e in arm if not e["write"]),
        "arm_writes": sum(1 for e in arm if e["write"]),
        "other_requests": len(entries) - len(arm),
    }


def ssh_command_count(info: dict[str, Any]) -> int:
    total = 0
    for site in info["sites"]:
        logs = {site["command_log"], *(n["command_log"] for n in site.get("nodes") or [])}
        for name in logs:
            log = Path(name)
            if log.exists():
                total += sum(1 for line in log.read_text().splitlines() if line.strip())
    return total


def import_flows() -> float:
    """Import the flow and everything it loads (Prefect, Azure SDKs, kubernetes, paramiko)
    before the clock starts: a one-off cost of the process, reported as `import_s`, not a
    cost of provisioning N sites."""
    t0 = time.monotonic()
    import flows.provision_site  # noqa: F401

    return time.monotonic() - t0


def _provision_all(blocks: list[str], parent: str, concurrency: int) -> list[str]:
    """One provision-site run per block, at most ``concurrency`` executing at once.

    Runs are created one at a time, then executed by the flow engine in worker threads, as a
    fleet flow creates them and workers execute them. Creating them concurrently instead makes
    SQLite refuse all but one of each burst ("database is locked", 503), and Prefect's client
    retries each refusal after 2, 4, 8 ... s: a cost of this driver, not of provisioning.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import State
    from prefect.flow_engine import run_flow
    from prefect.states import Pending

    from flows.models import ProvisionSpec
    from flows.provision_site import provision_site

    # The sandbox registry starts like a fresh Premium one: dedicated data endpoint off.
    spec = ProvisionSpec(namespaces=BENCH_NAMESPACES, enable_data_endpoint=True)
    create_lock = threading.Lock()

    def one(block: str) -> str | None:
        params = {"site_block": block, "parent_block": parent, "spec": spec}
        try:
            with create_lock, get_client(sync_client=True) as client:
                flow_run = client.create_flow_run(
                    provision_site,
                    parameters=provision_site.serialize_parameters(params),
                    state=Pending(),
                )
            # Parameters come back from the run (validated into ProvisionSpec), as on a worker.
            state = run_flow(provision_site, flow_run=flow_run, return_type="state")
        except Exception as exc:  # e.g. the API refusing to create the run: count, go on
            return f"{block}: {type(exc).__name__}: {exc}"
        assert isinstance(state, State)
        return None if state.is_completed() else f"{block}: {state.name}: {state.message}"

    # Prefect settings (the API URL) live in context variables, which threads do not inherit.
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, b) for b in blocks]
        return [e for e in (f.result() for f in futures) if e]


# The private server's task-run recorder writes task runs at most a second after their events.
RECORDER_LAG_S = 1.5

_RUN_SUFFIX = re.compile(r"-[0-9a-f]{3}$")


def _task_kind(name: str, cr_name: str) -> str:
    """Task-run name without what differs per site/run (CR name, Prefect's random suffix)."""
    return _RUN_SUFFIX.sub("", name.replace(cr_name, "{site}"))


def _seconds(a: Any, b: Any) -> float | None:
    return (b - a).total_seconds() if a is not None and b is not None else None


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def run_breakdown(exclude: set[Any]) -> dict[str, Any]:
    """Where a pass's time went, read back from the Prefect API: per-site run durations, the
    wait between a run's creation and its start, and total task time by task kind."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = []
        offset = 0
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["provision-site"])),
                limit=200,
                offset=offset,
            )
            runs += page
            offset += len(page)
            if len(page) < 200:
                break
        runs = [r for r in runs if r.id not in exclude]
        ids = {r.id for r in runs}
        site_of = {r.id: str(r.parameters.get("site_block", "")) for r in runs}
        tasks = []
        offset = 0
        while True:
            tpage = client.read_task_runs(limit=200, offset=offset)
            tasks += [t for t in tpage if t.flow_run_id in ids]
            offset += len(tpage)
            if len(tpage) < 200:
                break
    durations = [d for r in runs if (d := _seconds(r.start_time, r.end_time)) is not None]
    waits = [d for r in runs if (d := _seconds(r.created, r.start_time)) is not None]
    by_kind: dict[str, float] = defaultdict(float)
    for t in tasks:
        d = _seconds(t.start_time, t.end_time)
        if d is not None:
            # CR names are the site names ("site7"); block names end in the same index.
            index = site_of.get(t.flow_run_id, "") if t.flow_run_id else ""
            index = index.rsplit("-", 1)[-1]
            by_kind[_task_kind(t.name, f"site{index}")] += d
    n = max(len(runs), 1)
    top = sorted(by_kind.items(), key=lambda kv: -kv[1])[:12]
    return {
        "flow_runs": len(runs),
        "task_runs": len(tasks),
        "site_run_s": _stats(durations),
        "created_to_start_s": _stats(waits),
        "task_s_per_site": {k: round(v / n, 2) for k, v in top},
        "_ids": ids,
    }


def _minus(total: dict[str, int] | None, first: dict[str, int] | None) -> dict[str, int] | None:
    if total is None or first is None:
        return None
    return {k: v - first.get(k, 0) for k, v in total.items() if v - first.get(k, 0)}


def run_bench(
    sites: int,
    model: LatencyModel,
    concurrency: int,
    state_dir: Path,
    *,
    sandbox_in_process: bool = False,
    nodes_per_site: int = 1,
) -> dict[str, Any]:
    from acr_edge.local_prefect import prefect_api, quiet_runs
    from acr_edge.sandbox_blocks import PARENT_BLOCK, register
    from bench.sandbox_proc import SandboxProcess

    with prefect_api() as api, quiet_runs():
        import_s = import_flows()
        t0 = time.monotonic()
        running: Any
        if sandbox_in_process:
            from sandbox.runner import start_sandbox

            running = start_sandbox(
                state_dir,
                sites=sites,
                nodes_per_site=nodes_per_site,
                propagation_delay=model.propagation_ms / 1000.0,
            )
        else:
            running = SandboxProcess(state_dir, sites, model, nodes_per_site=nodes_per_site)
        sandbox_start = time.monotonic() - t0
        try:
            info = running.info
            internal = Internal(info)
            blocks = register(info)[1:]
            if sandbox_in_process:
                apply_model(running, internal, model)
            else:
                apply_azure_model(internal, model)  # site knobs were set in the child
            internal.call("DELETE", "/requests")
            ssh_before = ssh_command_count(info)
            t1 = time.monotonic()
            errors = _provision_all(blocks, PARENT_BLOCK, concurrency)
            wall = time.monotonic() - t1
            first = arm_counts(internal)
            ssh_first = ssh_command_count(info) - ssh_before
            api_503_first = api.retryable_errors()
            time.sleep(RECORDER_LAG_S)
            breakdown = run_breakdown(exclude=set())
            internal.call("DELETE", "/requests")
            t2 = time.monotonic()
            errors += _provision_all(blocks, PARENT_BLOCK, concurrency)
            wall2 = time.monotonic() - t2
            second = arm_counts(internal)
            ssh_second = ssh_command_count(info) - ssh_before - ssh_first
            api_503_total = api.retryable_errors()
            time.sleep(RECORDER_LAG_S)
            breakdown2 = run_breakdown(exclude=breakdown["_ids"])
        finally:
            running.stop()
    bound = fleet_lower_bound(model, sites, concurrency)
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "sites": sites,
        "nodes_per_site": nodes_per_site,
        "max_concurrency": concurrency,
        "driver": "provision-site flow runs in-process (threads), Prefect API "
        + ("private server" if api.own else api.url),
        "sandbox": "in-process" if sandbox_in_process else "child process",
        "model_ms": vars(model),
        "ok": not errors,
        "errors": errors[:10],
        "import_s": round(import_s, 2),
        "sandbox_start_s": round(sandbox_start, 2),
        "wall_s": round(wall, 2),
        "site_critical_path_s": round(site_critical_path(model), 3),
        "lower_bound_s": round(bound, 3),
        "wall_over_bound": round(wall / bound, 2) if bound > 0 else None,
        "arm_reads_per_site": round(first["arm_reads"] / sites, 1),
        "arm_writes_per_site": round(first["arm_writes"] / sites, 1),
        "ssh_commands_per_site": round(ssh_first / sites, 1),
        "second_run_wall_s": round(wall2, 2),
        "second_run_arm_writes": second["arm_writes"],
        "second_run_arm_reads_per_site": round(second["arm_reads"] / sites, 1),
        "second_run_ssh_commands_per_site": round(ssh_second / sites, 1),
        "prefect_api_503s": api_503_first,
        "second_run_prefect_api_503s": _minus(api_503_total, api_503_first),
        "first_run": {k: v for k, v in breakdown.items() if k != "_ids"},
        "second_run": {k: v for k, v in breakdown2.items() if k != "_ids"},
        "peak_rss_mb": round(peak_self / 1024, 1),
        "peak_rss_children_mb": round(peak_children / 1024, 1),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acr-edge bench", description=__doc__)
    p.add_argument("--sites", type=int, default=1, help="number of simulated sites")
    p.add_argument("--nodes-per-site", type=int, default=1, help="nodes per site (node 1 a server)")
    p.add_argument("--max-concurrency", type=int, default=10, help="sites provisioned at once")
    p.add_argument("--arm-latency-ms", type=float, default=0.0)
    p.add_argument("--lro-ms", type=float, default=0.0)
    p.add_argument("--ssh-rtt-ms", type=float, default=0.0)
    p.add_argument("--pod-ready-ms", type=float, default=0.0)
    p.add_argument("--k3s-restart-ms", type=float, default=0.0)
    p.add_argument(
        "--propagation-ms",
        type=float,
        default=0.0,
        help="time a new password takes to reach the connected registry (sandbox default 3000)",
    )
    p.add_argument("--state-dir", type=Path, help="keep the sandbox files here")
    p.add_argument(
        "--sandbox-in-process",
        action="store_true",
        help="run the sandbox in the bench process (it then competes with the flows for the GIL)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.sites < 1 or args.max_concurrency < 1 or args.nodes_per_site < 1:
        print(
            "acr-edge bench: --sites, --nodes-per-site and --max-concurrency must be >= 1",
            file=sys.stderr,
        )
        return 2
    try:
        model = LatencyModel(
            arm_latency_ms=args.arm_latency_ms,
            lro_ms=args.lro_ms,
            ssh_rtt_ms=args.ssh_rtt_ms,
            pod_ready_ms=args.pod_ready_ms,
            k3s_restart_ms=args.k3s_restart_ms,
            propagation_ms=args.propagation_ms,
        )
    except ValueError as exc:
        print(f"acr-edge bench: {exc}", file=sys.stderr)
        return 2
    isolate_prefect_home()
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="acr-edge-bench-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    result = run_bench(
        args.sites,
        model,
        args.max_concurrency,
        state_dir.resolve(),
        sandbox_in_process=args.sandbox_in_process,
        nodes_per_site=args.nodes_per_site,
    )
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
