"""Benchmark the Azure sandbox itself; prints JSON.

Figures: sandbox start time (median of 5 starts, CA generation included) and the time to list
1,000+ repositories through azure-containerregistry's ContainerRegistryClient (challenge,
exchange and token per page, as the SDK does, pages capped at 100).

Run: .venv/bin/python -m bench.sandbox_start
"""

from __future__ import annotations

import json
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


def main() -> int:
    print(json.dumps(measure(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
