"""Benchmark the Azure half of provisioning against the sandbox; prints JSON.

Figures: sandbox start time, listing 1,000+ repositories through the catalog (all pages), and
the Azure half for one site (ARM reads, writes, LRO polls, wall time) on a first run and on a
second, converged run (which must write nothing).

    .venv/bin/python -m bench.azure_half [--repos 1000] [--namespace samples]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from acr_edge.sandbox_blocks import parent_block
from model import names
from model.azure_context import AzureContext
from tasks.azure import connected_registry as crs
from tasks.azure import passwords, registry, scope_maps, tokens
from tasks.azure.repositories import list_repositories
from tasks.azure.spec import ConnectedRegistrySpec


def azure_half(
    ctx: AzureContext, cr: str, namespaces: list[str], *, generate: bool
) -> dict[str, Any]:
    """The provisioning order a flow uses, as plain calls (no Prefect overhead in the figure)."""
    repos = list_repositories(ctx, namespaces)
    client = names.client_token_name(cr)
    registry.preflight_parent(
        ctx, repositories=repos, client_token_count=1, enable_data_endpoint=True
    )
    results = [
        scope_maps.ensure_sync_scope_map(ctx, cr, repos, "ReadOnly"),
        tokens.ensure_sync_token(ctx, cr),
        crs.ensure_connected_registry(ctx, ConnectedRegistrySpec(name=cr)),
        scope_maps.ensure_client_scope_map(ctx, client, repos),
        tokens.ensure_client_token(ctx, client, client),
        crs.attach_client_token(ctx, cr, client),
    ]
    if generate:
        passwords.generate_password(ctx, cr, "password1")
    return {
        "repositories": len(repos),
        "changed_steps": sum(r.changed for r in results),
        "messages": [r.message for r in results],
    }


def run(repo_count: int, namespace: str) -> dict[str, Any]:
    from sandbox.azure import SeedConfig
    from sandbox.runner import start_sandbox

    with tempfile.TemporaryDirectory(prefix="acr-edge-bench-") as state:
        start = time.perf_counter()
        sandbox = start_sandbox(Path(state), seed=SeedConfig(repo_count=repo_count))
        started = time.perf_counter() - start
        try:
            ctx = parent_block(sandbox.info).azure_context(polling_interval=0)
            azure = sandbox.azure
            every = sorted({r.split("/")[0] for r in azure.primary_registry().repositories})
            azure.clear_requests()
            start = time.perf_counter()
            listed = list_repositories(ctx, every)
            listing = {
                "repositories": len(listed),
                "seconds": round(time.perf_counter() - start, 4),
                "catalog_requests": sum(1 for r in azure.requests() if "/_catalog" in r["path"]),
            }
            runs = []
            for generate in (True, False):
                azure.clear_requests()
                start = time.perf_counter()
                outcome = azure_half(ctx, "site01", [namespace], generate=generate)
                wall = time.perf_counter() - start
                runs.append(
                    {
                        "wall_seconds": round(wall, 4),
                        **azure.arm_counts(),
                        "repositories": outcome["repositories"],
                        "changed_steps": outcome["changed_steps"],
                    }
                )
            ctx.close()
        finally:
            sandbox.stop()
    return {
        "sandbox_start_seconds": round(started, 4),
        "list_repositories": listing,
        "azure_half_first_run": runs[0],
        "azure_half_converged_run": runs[1],
        "note": "second run generates no password (rotation is a separate flow); sandbox "
        "latency 0, so these are client+protocol costs, not Azure's",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.azure_half", description=__doc__)
    # 1,000 seeded (+3 single-level) puts 250 in each namespace: the site syncs 250 of them.
    parser.add_argument("--repos", type=int, default=1000, help="repositories to seed")
    parser.add_argument("--namespace", default="samples", help="namespace the site syncs")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.repos, args.namespace), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
