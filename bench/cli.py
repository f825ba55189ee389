"""`acr-edge bench`: provision N simulated sites through the real flows and print JSON figures.

It drives the `provision-site` flow (real Prefect runs, tasks, API round trips, per-site
locks) for every site, at most --max-concurrency at a time, against the sandbox with a latency
model applied through its knobs; then runs the same again to prove a converged fleet costs no
writes. Figures: wall time vs the critical-path lower bound from the same model
(`bench.model`), ARM reads/writes per site (sandbox request log), SSH commands per site (node
command logs), second-run writes, peak RSS.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import resource
import ssl
import sys
import tempfile
import time
import urllib.request
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


def apply_model(running: Any, internal: Internal, model: LatencyModel) -> None:
    internal.call(
        "POST",
        "/latency",
        {"latency": model.arm_latency_ms / 1000.0, "lro_seconds": model.lro_ms / 1000.0},
    )
    # Site knobs live on each simulated node (sandbox.sites.site.SiteKnobs).
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
        log = Path(site["command_log"])
        if log.exists():
            total += sum(1 for line in log.read_text().splitlines() if line.strip())
    return total


def _provision_all(blocks: list[str], parent: str, concurrency: int) -> list[str]:
    from flows.models import ProvisionSpec
    from flows.provision_site import provision_site

    # The sandbox registry starts like a fresh Premium one: dedicated data endpoint off.
    spec = ProvisionSpec(namespaces=BENCH_NAMESPACES, enable_data_endpoint=True)

    def one(block: str) -> str | None:
        state = provision_site(site_block=block, parent_block=parent, spec=spec, return_state=True)
        return None if state.is_completed() else f"{block}: {state.name}: {state.message}"

    # Prefect settings (the API URL) live in context variables, which threads do not inherit.
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, b) for b in blocks]
        return [e for e in (f.result() for f in futures) if e]


def run_bench(sites: int, model: LatencyModel, concurrency: int, state_dir: Path) -> dict[str, Any]:
    from acr_edge.local_prefect import prefect_api, quiet_runs
    from sandbox.blocks_registration import PARENT_BLOCK, register
    from sandbox.runner import start_sandbox

    with prefect_api() as api, quiet_runs():
        t0 = time.monotonic()
        running = start_sandbox(state_dir, sites=sites)
        sandbox_start = time.monotonic() - t0
        try:
            info = running.info
            internal = Internal(info)
            blocks = register(info)[1:]
            apply_model(running, internal, model)
            internal.call("DELETE", "/requests")
            ssh_before = ssh_command_count(info)
            t1 = time.monotonic()
            errors = _provision_all(blocks, PARENT_BLOCK, concurrency)
            wall = time.monotonic() - t1
            first = arm_counts(internal)
            ssh_first = ssh_command_count(info) - ssh_before
            internal.call("DELETE", "/requests")
            t2 = time.monotonic()
            errors += _provision_all(blocks, PARENT_BLOCK, concurrency)
            wall2 = time.monotonic() - t2
            second = arm_counts(internal)
            ssh_second = ssh_command_count(info) - ssh_before - ssh_first
        finally:
            running.stop()
    bound = fleet_lower_bound(model, sites, concurrency)
    peak_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "sites": sites,
        "max_concurrency": concurrency,
        "driver": "provision-site flow runs in-process (threads), Prefect API "
        + ("private server" if api.own else api.url),
        "model_ms": vars(model),
        "ok": not errors,
        "errors": errors[:10],
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
        "peak_rss_mb": round(peak_self / 1024, 1),
        "peak_rss_children_mb": round(peak_children / 1024, 1),
    }


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acr-edge bench", description=__doc__)
    p.add_argument("--sites", type=int, default=1, help="number of simulated sites")
    p.add_argument("--max-concurrency", type=int, default=10, help="sites provisioned at once")
    p.add_argument("--arm-latency-ms", type=float, default=0.0)
    p.add_argument("--lro-ms", type=float, default=0.0)
    p.add_argument("--ssh-rtt-ms", type=float, default=0.0)
    p.add_argument("--pod-ready-ms", type=float, default=0.0)
    p.add_argument("--k3s-restart-ms", type=float, default=0.0)
    p.add_argument("--state-dir", type=Path, help="keep the sandbox files here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.sites < 1 or args.max_concurrency < 1:
        print("acr-edge bench: --sites and --max-concurrency must be >= 1", file=sys.stderr)
        return 2
    try:
        model = LatencyModel(
            arm_latency_ms=args.arm_latency_ms,
            lro_ms=args.lro_ms,
            ssh_rtt_ms=args.ssh_rtt_ms,
            pod_ready_ms=args.pod_ready_ms,
            k3s_restart_ms=args.k3s_restart_ms,
        )
    except ValueError as exc:
        print(f"acr-edge bench: {exc}", file=sys.stderr)
        return 2
    isolate_prefect_home()
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="acr-edge-bench-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    result = run_bench(args.sites, model, args.max_concurrency, state_dir.resolve())
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
