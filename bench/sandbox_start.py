"""Benchmark the Azure sandbox itself; prints JSON.

Figures: sandbox start time (median of 5 starts, CA generation included), the time to list
1,000+ repositories through azure-containerregistry's ContainerRegistryClient (challenge,
exchange and token per page, as the SDK does, pages capped at 100), and the start time of the
whole sandbox with 1, 10 and 100 simulated K3s sites (SSH server, Kubernetes API, node files and
keys per site), with the process's peak RSS after each.

Run: .venv/bin/python -m bench.sandbox_start [--sites 1 10 100]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

from sandbox.azure import SeedConfig
from sandbox.runner import start_sandbox
from sandbox.testing import registry_client


def measure(starts: int = 5, repos: int = 1000) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="acr-edge-bench-") as tmp:
        start_times = []
        for i in range(starts):
            t0 = time.perf_counter()
            running = start_sandbox(Path(tmp) / f"s{i}", seed=SeedConfig(repo_count=repos))
            start_times.append(time.perf_counter() - t0)
            running.stop()
        with start_sandbox(Path(tmp) / "list", seed=SeedConfig(repo_count=repos)) as running:
            client = registry_client(running.info)
            t0 = time.perf_counter()
            names = list(client.list_repository_names())
            list_seconds = time.perf_counter() - t0
            calls = len(running.azure.requests())
    return {
        "sandbox_start_seconds_median": round(statistics.median(start_times), 4),
        "sandbox_start_seconds_all": [round(t, 4) for t in start_times],
        "repositories_listed": len(names),
        "list_repositories_seconds": round(list_seconds, 4),
        "list_repositories_http_calls": calls,
    }


def measure_sites(counts: list[int]) -> list[dict[str, object]]:
    figures: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="acr-edge-bench-sites-") as tmp:
        for count in counts:
            t0 = time.perf_counter()
            running = start_sandbox(Path(tmp) / f"sites{count}", sites=count)
            seconds = time.perf_counter() - t0
            try:
                assert len(running.info["sites"]) == count
            finally:
                running.stop()
            figures.append(
                {
                    "sites": count,
                    "start_seconds": round(seconds, 3),
                    "peak_rss_mb": round(
                        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                    ),
                }
            )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sandbox_start")
    parser.add_argument("--sites", type=int, nargs="*", default=[1, 10, 100])
    args = parser.parse_args(argv)
    figures = measure()
    figures["sandbox_with_sites"] = measure_sites(args.sites)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
