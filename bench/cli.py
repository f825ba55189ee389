"""`acr-edge bench`: provision N simulated sites through the real flows and print JSON figures.

With --workers W it drives the fleet path (bench.fleet_driver: a provision-fleet deployment
run whose shards run on W process workers) and adds CPU seconds over every process and Prefect
API calls per site. Without it, it drives the `provision-site` flow (real Prefect runs, tasks,
API round trips, per-site locks) for every site in threads of this process, at most
--max-concurrency at a time. Either way against the sandbox (in a child
process: `bench.sandbox_proc`) with a latency model applied through its knobs; then runs the
same again to prove a converged fleet costs no writes. Figures: wall time vs the critical-path
lower bound from the same model (`bench.model`), ARM reads/writes per site (sandbox request
log), SSH commands per site (node command logs), second-run writes, peak RSS, the private
Prefect server's 503s by handler, and per pass the site run durations and task time by kind
read back from the Prefect API.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acr_edge.local_prefect import isolate_prefect_home
from bench.model import (
    ARM_READ_CAPACITY,
    ARM_READ_REFILL,
    ARM_WRITE_CAPACITY,
    ARM_WRITE_REFILL,
    LatencyModel,
    arm_read_floor_s,
    arm_write_floor_s,
    bound_s,
    fleet_lower_bound,
    site_critical_path,
)
from bench.prefect_figures import RECORDER_LAG_S, run_breakdown, tally_difference
from bench.sandbox_figures import (
    Internal,
    apply_azure_model,
    apply_model,
    apply_throttle,
    arm_counts,
    cpu_seconds,
    ssh_command_count,
    throttled,
)
from bench.thread_driver import provision_all

BENCH_NAMESPACES = ["samples", "edge/apps"]


def import_flows() -> float:
    """Import the flow and everything it loads (Prefect, Azure SDKs, kubernetes, paramiko)
    before the clock starts: a one-off cost of the process, reported as `import_s`, not a
    cost of provisioning N sites."""
    t0 = time.monotonic()
    import flows.provision_site  # noqa: F401

    return time.monotonic() - t0


def run_bench(
    sites: int,
    model: LatencyModel,
    concurrency: int,
    state_dir: Path,
    *,
    sandbox_in_process: bool = False,
    nodes_per_site: int = 1,
    rates: dict[str, tuple[float, float]] | None = None,
    fleet_workers: int = 0,
    shard_size: int = 20,
) -> dict[str, Any]:
    """``fleet_workers`` > 0: the fleet path (bench.fleet_driver) on that many workers;
    0: provision-site runs in threads of this process."""
    rates = rates or {
        "reads": (ARM_READ_CAPACITY, ARM_READ_REFILL),
        "writes": (ARM_WRITE_CAPACITY, ARM_WRITE_REFILL),
    }
    # The flows' shared budget (Prefect rate limits) paces at the rates the sandbox enforces;
    # put back afterwards, so a caller in the same process (a test) keeps its own.
    before = os.environ.get("ACR_EDGE_ARM_RATES")
    os.environ["ACR_EDGE_ARM_RATES"] = json.dumps(
        {k: {"capacity": int(c), "refill_per_second": r} for k, (c, r) in rates.items()}
    )
    if fleet_workers:
        # The server logs each request (uvicorn's access log): Prefect API calls per site.
        os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "INFO")
    try:
        return _run_bench(
            sites,
            model,
            concurrency,
            state_dir,
            sandbox_in_process,
            nodes_per_site,
            rates,
            fleet_workers,
            shard_size,
        )
    finally:
        if before is None:
            os.environ.pop("ACR_EDGE_ARM_RATES", None)
        else:
            os.environ["ACR_EDGE_ARM_RATES"] = before


def _run_bench(
    sites: int,
    model: LatencyModel,
    concurrency: int,
    state_dir: Path,
    sandbox_in_process: bool,
    nodes_per_site: int,
    rates: dict[str, tuple[float, float]],
    fleet_workers: int,
    shard_size: int,
) -> dict[str, Any]:
    from contextlib import ExitStack

    from acr_edge.local_prefect import prefect_api, quiet_runs
    from acr_edge.sandbox_blocks import PARENT_BLOCK, register
    from bench import fleet_driver
    from bench.sandbox_proc import SandboxProcess

    with prefect_api() as api, quiet_runs(), ExitStack() as stack:
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
            apply_throttle(internal, rates)

            def drive() -> list[str]:
                if not fleet_workers:
                    return provision_all(blocks, PARENT_BLOCK, concurrency, BENCH_NAMESPACES)
                done = fleet_driver.fleet_pass(
                    blocks,
                    PARENT_BLOCK,
                    {"namespaces": BENCH_NAMESPACES, "enable_data_endpoint": True},
                    shard_size=shard_size,
                    max_concurrency=concurrency,
                )
                return done.errors

            if fleet_workers:
                fleet_driver.deploy_pool()
                shards = -(-sites // shard_size)
                stack.enter_context(
                    fleet_driver.workers(
                        fleet_workers, api.url, -(-(shards + 1) // fleet_workers) + 1, state_dir
                    )
                )
            internal.call("DELETE", "/requests")
            ssh_before = ssh_command_count(info)
            cpu0 = cpu_seconds()
            tree0 = fleet_driver.cpu_tree_seconds()
            calls0 = fleet_driver.api_calls(api.server_log)
            t1 = time.monotonic()
            errors = drive()
            wall = time.monotonic() - t1
            cpu_first = cpu_seconds() - cpu0
            time.sleep(2)  # let workers reap their finished flow-run processes
            tree_first = fleet_driver.cpu_tree_seconds() - tree0
            calls1 = fleet_driver.api_calls(api.server_log)
            first = arm_counts(internal)
            throttled_first = throttled(internal)
            ssh_first = ssh_command_count(info) - ssh_before
            api_503_first = api.retryable_errors()
            time.sleep(RECORDER_LAG_S)
            breakdown = run_breakdown(exclude=set())
            internal.call("DELETE", "/requests")
            t2 = time.monotonic()
            failed_first = len(errors)
            errors += drive()
            wall2 = time.monotonic() - t2
            time.sleep(2)
            tree_second = fleet_driver.cpu_tree_seconds() - tree0 - tree_first
            calls2 = fleet_driver.api_calls(api.server_log)
            second = arm_counts(internal)
            throttled_total = throttled(internal)
            ssh_second = ssh_command_count(info) - ssh_before - ssh_first
            api_503_total = api.retryable_errors()
            time.sleep(RECORDER_LAG_S)
            breakdown2 = run_breakdown(exclude=breakdown["_ids"])
        finally:
            running.stop()
    bound = fleet_lower_bound(model, sites, concurrency)
    write_floor = arm_write_floor_s(first["arm_writes"], *rates["writes"])
    read_floor = arm_read_floor_s(first["arm_reads"], *rates["reads"])
    full_bound = bound_s(bound, write_floor, read_floor)
    # A converged pass writes nothing; its bound is its reads' floor (its own critical path is
    # not modelled, so a bound of 0 reports no ratio).
    second_bound = bound_s(0.0, arm_read_floor_s(second["arm_reads"], *rates["reads"]))
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "sites": sites,
        "nodes_per_site": nodes_per_site,
        "max_concurrency": concurrency,
        "driver": (
            f"provision-fleet deployment run, {fleet_workers} process worker(s), shards of "
            f"{shard_size}"
            if fleet_workers
            else "provision-site flow runs in-process (threads)"
        )
        + ", Prefect API "
        + ("private server (SQLite)" if api.own else api.url),
        "sandbox": "in-process" if sandbox_in_process else "child process",
        "model_ms": vars(model),
        "ok": not errors,
        "errors": errors[:10],
        "import_s": round(import_s, 2),
        "sandbox_start_s": round(sandbox_start, 2),
        "wall_s": round(wall, 2),
        "site_critical_path_s": round(site_critical_path(model), 3),
        "lower_bound_s": round(bound, 3),
        "arm_rates": {k: {"capacity": c, "refill_per_second": r} for k, (c, r) in rates.items()},
        "arm_write_floor_s": round(write_floor, 2),
        "arm_read_floor_s": round(read_floor, 2),
        "bound_s": round(full_bound, 3),
        "wall_over_bound": round(wall / full_bound, 2) if full_bound > 0 else None,
        "wall_over_critical_path_bound": round(wall / bound, 2) if bound > 0 else None,
        "arm_429s": throttled_first,
        "second_run_arm_429s": throttled_total,
        "failed_sites": failed_first,
        "cpu_s_per_site_bench_process": round(cpu_first / sites, 2),
        # Every process under the bench: server, workers, flow runs, sandbox.
        "cpu_s_per_site": round(tree_first / sites, 2),
        "second_run_cpu_s_per_site": round(tree_second / sites, 2),
        "prefect_api_calls_per_site": _per_site(calls0, calls1, sites),
        "second_run_prefect_api_calls_per_site": _per_site(calls1, calls2, sites),
        "arm_reads_per_site": round(first["arm_reads"] / sites, 1),
        "arm_writes_per_site": round(first["arm_writes"] / sites, 1),
        "ssh_commands_per_site": round(ssh_first / sites, 1),
        "second_run_wall_s": round(wall2, 2),
        "second_run_arm_writes": second["arm_writes"],
        "second_run_bound_s": round(second_bound, 3),
        "second_run_wall_over_bound": round(wall2 / second_bound, 2) if second_bound > 0 else None,
        "second_run_arm_reads_per_site": round(second["arm_reads"] / sites, 1),
        "second_run_ssh_commands_per_site": round(ssh_second / sites, 1),
        "prefect_api_503s": api_503_first,
        "second_run_prefect_api_503s": tally_difference(api_503_total, api_503_first),
        "first_run": {k: v for k, v in breakdown.items() if k != "_ids"},
        "second_run": {k: v for k, v in breakdown2.items() if k != "_ids"},
        "peak_rss_mb": round(peak_self / 1024, 1),
        "peak_rss_children_mb": round(peak_children / 1024, 1),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def _per_site(before: int | None, after: int | None, sites: int) -> float | None:
    return None if before is None or after is None else round((after - before) / sites, 1)


def _rate(text: str) -> tuple[float, float]:
    capacity, sep, refill = text.partition("/")
    try:
        pair = (float(capacity), float(refill))
    except ValueError:
        pair = (-1.0, -1.0)
    if not sep or pair[0] < 1 or pair[1] <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: use CAPACITY/REFILL, e.g. 200/10")
    return pair


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
    p.add_argument(
        "--lro-retry-after-ms",
        type=float,
        default=0.0,
        help="Retry-After the sandbox's long-running operations answer (ACR: 10000)",
    )
    p.add_argument(
        "--arm-reads",
        type=_rate,
        default=(ARM_READ_CAPACITY, ARM_READ_REFILL),
        metavar="CAPACITY/REFILL",
        help="ARM read bucket the sandbox enforces and the flows pace at (default ARM's 250/25)",
    )
    p.add_argument(
        "--arm-writes",
        type=_rate,
        default=(ARM_WRITE_CAPACITY, ARM_WRITE_REFILL),
        metavar="CAPACITY/REFILL",
        help="ARM write bucket (default ARM's 200/10); scale both down for a short run",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        help="the fleet path: a provision-fleet deployment run on this many process workers "
        "(0: provision-site runs in threads of the bench process)",
    )
    p.add_argument("--shard-size", type=int, default=20, help="sites per fleet-shard run")
    p.add_argument("--state-dir", type=Path, help="keep the sandbox files here")
    p.add_argument(
        "--sandbox-in-process",
        action="store_true",
        help="run the sandbox in the bench process (it then competes with the flows for the GIL)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.workers < 0 or args.shard_size < 1:
        print("acr-edge bench: --workers must be >= 0 and --shard-size >= 1", file=sys.stderr)
        return 2
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
            lro_retry_after_ms=args.lro_retry_after_ms,
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
        rates={"reads": args.arm_reads, "writes": args.arm_writes},
        fleet_workers=args.workers,
        shard_size=args.shard_size,
    )
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
