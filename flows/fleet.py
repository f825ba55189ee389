"""Fleet flows: provision or rotate many sites, bounded and paced.

Sites are EdgeSite block documents chosen by name or tag. Provisioning starts one run of the
``provision-site`` deployment per site (each site's run is then visible, retryable and locked on
its own); rotation runs ``rotate-client-token`` per site as a nested run. At most
``max_concurrency`` sites are in flight, and site starts are paced by a token bucket so the ARM
writes they cause stay under the subscription's write budget.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.futures import PrefectFuture, wait

from flows.inputs import check_block_name
from flows.models import ProvisionSpec
from flows.pacer import WRITES_PER_PROVISION, WRITES_PER_ROTATION, Pacer, TokenBucket
from flows.rotate_client_token import rotate_client_token
from tasks.errors import InputError, PermanentError

PROVISION_DEPLOYMENT = "provision-site/provision-site"
# Subscription write budget: bursts of 10, refilled at 10 writes per second.
ARM_WRITE_BUCKET = TokenBucket(capacity=10, refill_per_second=10)
SITE_RUN_TIMEOUT = 3600.0


def select_sites(sites: list[str] | None, tag: str | None) -> list[str]:
    """Block names of the chosen EdgeSite documents; refuses unknown names and empty picks."""
    from prefect.client.orchestration import get_client

    if (sites is None) == (tag is None):
        raise InputError(
            "choose sites either by name (sites=[...]) or by tag (tag=...), exactly one",
            resource="sites/tag",
        )
    with get_client(sync_client=True) as client:
        docs = client.read_block_documents_by_type("edge-site", include_secrets=False)
    known = {d.name: d for d in docs if d.name}
    if sites is not None:
        for name in sites:
            check_block_name(name, "site block")
        missing = [s for s in sites if s not in known]
        if missing:
            raise InputError(
                f"no edge-site block named {', '.join(missing)}",
                resource="sites",
                fix="create the blocks first (prefect block ls)",
            )
        chosen = list(dict.fromkeys(sites))
    else:
        chosen = sorted(n for n, d in known.items() if tag in (d.data.get("tags") or []))
    if not chosen:
        raise InputError(f"no edge-site block has tag {tag!r}", resource="tag")
    return chosen


@task(name="start-provision-site", cache_policy=NO_CACHE, persist_result=False)
def start_provision_run(site_block: str, parent_block: str, spec: dict[str, Any]) -> str:
    """Run the site's provision-site deployment and wait for it; returns its final state."""
    from prefect.deployments import run_deployment

    run: FlowRun = run_deployment(  # type: ignore[assignment]
        PROVISION_DEPLOYMENT,
        parameters={"site_block": site_block, "parent_block": parent_block, "spec": spec},
        timeout=SITE_RUN_TIMEOUT,
        poll_interval=2,
    )
    state = run.state
    name = str(state.name) if state else "Unknown"
    if state is None or not state.is_completed():
        raise PermanentError(
            f"provision-site run {run.name} ended {name}",
            resource=f"site {site_block}",
            fix="open that flow run for the failing step and its fix",
        )
    return name


@task(name="rotate-site", cache_policy=NO_CACHE, persist_result=False)
def rotate_site(site_block: str, parent_block: str, lifetime_days: int) -> str:
    result = rotate_client_token(site_block, parent_block, lifetime_days=lifetime_days)
    return str(result.get("outcome"))


def _fan_out(
    names: list[str],
    max_concurrency: int,
    writes_per_site: int,
    start: Callable[[str], PrefectFuture[str]],
) -> tuple[list[dict[str, Any]], float]:
    if max_concurrency < 1:
        raise InputError(f"max_concurrency={max_concurrency} must be >= 1", resource="fleet")
    gate = threading.BoundedSemaphore(max_concurrency)
    pacer = Pacer(ARM_WRITE_BUCKET)
    started: list[tuple[str, PrefectFuture[str]]] = []
    for name in names:
        gate.acquire()
        pacer.acquire(writes_per_site)
        future = start(name)
        future.add_done_callback(lambda _f: gate.release())
        started.append((name, future))
    wait([f for _, f in started])
    rows = []
    for name, future in started:
        try:
            outcome, ok = future.result(), True
        except Exception as exc:  # the table reports each site; the run fails below
            outcome, ok = f"failed: {exc}", False
        rows.append({"site": name, "ok": ok, "outcome": outcome})
    return rows, pacer.waited


def _finish(kind: str, rows: list[dict[str, Any]], paced: float) -> dict[str, Any]:
    failed = [r["site"] for r in rows if not r["ok"]]
    create_table_artifact(
        key=f"{kind}-summary",
        table=rows,
        description=f"{kind}: {len(rows) - len(failed)}/{len(rows)} sites ok; "
        f"{paced:.1f}s spent pacing ARM writes",
    )
    summary = {"sites": rows, "failed": failed, "paced_seconds": round(paced, 2)}
    if failed:
        raise PermanentError(
            f"{kind}: {len(failed)} of {len(rows)} site(s) failed: {', '.join(failed)}",
            resource=kind,
            fix="see each site's run; re-running the fleet retries only what is not converged",
        )
    get_run_logger().info("%s: %d site(s) ok", kind, len(rows))
    return summary


@flow(name="provision-fleet")
def provision_fleet(
    parent_block: str,
    spec: ProvisionSpec,
    sites: list[str] | None = None,
    tag: str | None = None,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Provision every chosen site through its own provision-site deployment run."""
    check_block_name(parent_block, "parent_block")
    names = select_sites(sites, tag)
    body = spec.model_dump(mode="json")
    rows, paced = _fan_out(
        names,
        max_concurrency,
        WRITES_PER_PROVISION,
        lambda name: start_provision_run.submit(name, parent_block, body),
    )
    return _finish("provision-fleet", rows, paced)


@flow(name="rotate-fleet-tokens")
def rotate_fleet_tokens(
    parent_block: str,
    sites: list[str] | None = None,
    tag: str | None = None,
    lifetime_days: int = 90,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Rotate every chosen site's client token where due (or finish interrupted rotations)."""
    check_block_name(parent_block, "parent_block")
    names = select_sites(sites, tag)
    rows, paced = _fan_out(
        names,
        max_concurrency,
        WRITES_PER_ROTATION,
        lambda name: rotate_site.submit(name, parent_block, lifetime_days),
    )
    return _finish("rotate-fleet-tokens", rows, paced)
