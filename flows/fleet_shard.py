"""fleet-shard: one process runs a shard of a fleet's sites as named per-site subflows.

A fleet run starts one ``fleet-shard`` deployment run per shard (spread over the work pool's
workers), so process start-up and imports are paid per shard, not per site. The shard runs
each site's flow (provision-site, rotate-client-token, ...) as a subflow under its own name
(``provision-<site>``, the name a hand-started run has), with its own artifacts, at most
``max_concurrency`` at a time. Each subflow is called from a task, the route Prefect 3.9 gives
concurrent sync subflows (threads; the subflow's tracking task then gets a unique key). The
shard records one row per site in a table artifact, which the fleet run reads back (results
are not persisted), and fails when any site failed.
"""

from __future__ import annotations

import importlib
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.futures import PrefectFuture, wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows.report import artifact_key
from model.errors import InputError, PermanentError
from model.names import validate_block_name

SHARD_FLOW = "fleet-shard"
SHARD_DEPLOYMENT = f"{SHARD_FLOW}/{SHARD_FLOW}"
SHARD_ARTIFACT = "shard"  # key prefix: <kind>-shard-<label>, one per shard (not overwritten)


def shard_artifact_key(kind: str, label: str) -> str:
    return artifact_key(f"{kind}-{SHARD_ARTIFACT}", label)


SHARD_RUN_TIMEOUT = 3 * 3600.0


@dataclass(frozen=True)
class SiteJob:
    """A per-site flow a fleet runs (its deployment, deployment name = flow name, still serves
    hand-started runs)."""

    kind: str
    flow_name: str
    run_prefix: str  # the per-site flow's own run name is f"{run_prefix}-{site_block}"
    entrypoint: str  # module:function
    locks: bool  # the per-site flow takes the site lock

    @property
    def deployment(self) -> str:
        return f"{self.flow_name}/{self.flow_name}"

    def run_name(self, site_block: str) -> str:
        return f"{self.run_prefix}-{site_block}"

    def load(self) -> Any:
        module, attr = self.entrypoint.split(":")
        return getattr(importlib.import_module(module), attr)


PROVISION = SiteJob(
    "provision", "provision-site", "provision", "flows.provision_site:provision_site", True
)
ROTATE = SiteJob(
    "rotate", "rotate-client-token", "rotate", "flows.rotate_client_token:rotate_client_token", True
)
ROTATE_SYNC = SiteJob(
    "rotate-sync",
    "rotate-sync-credential",
    "rotate-sync",
    "flows.rotate_sync_credential:rotate_sync_credential",
    True,
)
STATUS = SiteJob("status", "site-status", "status", "flows.site_status:site_status", False)
TEARDOWN = SiteJob(
    "teardown", "teardown-site", "teardown", "flows.teardown_site:teardown_site", True
)
JOBS = {j.kind: j for j in (PROVISION, ROTATE, ROTATE_SYNC, STATUS, TEARDOWN)}


def failed_row(job: SiteJob, site: str, state: str, outcome: str) -> dict[str, Any]:
    return {
        "site": site,
        "ok": False,
        "state": state,
        "run": job.run_name(site),
        "url": "",
        "outcome": outcome,
    }


@task(
    name="run-site",
    task_run_name="{kind}:{site_block}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_site(kind: str, site_block: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """Run the site's flow as a subflow and describe how it ended (a failed site is reported,
    not raised: the summary names it and the shard fails afterwards)."""
    from flows import plan_runs

    job = JOBS[kind]
    state = job.load()(site_block=site_block, **parameters, return_state=True)
    ok = state.is_completed()
    # A dry run (spec.dry_run of a stored spec included: its state says so) is a plan run; a
    # Blocked one is where the real run would stop, reported as such, not as a crash.
    dry = plan_runs.is_dry(parameters) or state.name in plan_runs.PLAN_STATES
    outcome = "" if ok else (state.message or "")
    if state.name == plan_runs.BLOCKED_STATE:
        outcome = f"blocked: {outcome}"
    return {
        "site": site_block,
        "ok": ok,
        "state": str(state.name),
        "run": plan_runs.plan_name(job.run_name(site_block), dry),
        "flow_run_id": str(state.state_details.flow_run_id or ""),
        "url": "",
        "outcome": outcome,
    } | _figures(state)


def _figures(state: Any) -> dict[str, Any]:
    """The site run's ``fleet_figures`` (site-status: the numbers the fleet picture plots),
    from its value or, for an unhealthy site, its exception; both are in this process's
    memory, nothing is persisted. Other flows have none: no keys."""
    try:
        value = state.result(raise_on_failure=False)
    except Exception:  # no value in memory (e.g. crashed): the picture shows it as unknown
        return {}
    got = value.get("fleet_figures") if isinstance(value, dict) else None
    got = getattr(value, "fleet_figures", None) if got is None else got
    return dict(got) if isinstance(got, dict) else {}


def _describe(rows: list[dict[str, Any]]) -> None:
    """Each site run's URL and its own one-line outcome (its artifact descriptions), read in
    one call for the whole shard."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.utilities.urls import url_for

    from flows.locks import run_client

    ids = [r["flow_run_id"] for r in rows if r.get("flow_run_id")]
    texts: dict[str, list[str]] = {}
    if ids:
        arts: list[Any] = []
        with run_client() as client:
            while True:  # the API answers at most 200 a page
                page = client.read_artifacts(
                    artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)),
                    limit=200,
                    offset=len(arts),
                )
                arts += page
                if len(page) < 200:
                    break
        for art in arts:
            if art.description and art.flow_run_id is not None:
                texts.setdefault(str(art.flow_run_id), []).append(art.description)
    for row in rows:
        run_id = row.pop("flow_run_id", "")
        if not run_id:
            continue
        row["url"] = url_for("flow-run", obj_id=run_id) or f"flow-run/{run_id}"
        detail = "; ".join(texts.get(run_id, []))
        if row["outcome"]:
            detail = f"{detail}; {row['outcome']}" if detail else row["outcome"]
        row["outcome"] = detail


@flow(
    name=SHARD_FLOW,
    flow_run_name="{kind}-shard-{label}",
    validate_parameters=True,
    # The gate below bounds the sites at max_concurrency; the default pool (cpu+4 threads)
    # would cap them lower on a small worker.
    task_runner=ThreadPoolTaskRunner(max_workers=64),  # type: ignore[arg-type]
)
def fleet_shard(
    kind: str,
    site_blocks: list[str],
    parameters: dict[str, Any],
    lock_names: dict[str, str] | None = None,
    max_concurrency: int = 10,
    label: str = "1",
    arm_facts: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Run one shard of a fleet's sites in this process, each as its own named subflow run.

    Started by the fleet flows (provision-fleet, rotate-fleet-tokens, ...); parameters are block
    names and options, never secrets.

    Args:
        kind: provision, rotate, rotate-sync, status or teardown. Required. Example: `provision`.
        site_blocks: EdgeSite block names of this shard. Required. Example: `["plant01",
            "plant02"]`.
        parameters: The per-site flow's parameters other than site_block (e.g. parent_block).
            Required. Example: `{"parent_block": "parent-registry"}`.
        lock_names: Connected-registry name of each site block: its lock is checked in bulk for the
            shard, so each site run takes its lock with one call. Default: empty. Example:
            `{"plant01": "plant01edge"}`.
        max_concurrency: Sites of this shard running at the same time. Default: `10`. Example: `5`.
        label: Which wave and shard this is (in the run name). Default: `1`. Example: `w1-1of2`.
        arm_facts: Filled in by fleet-status; leave empty. Each site's slice of the fleet's one
            bulk ARM read (no secrets), passed to its site-status run. Default: empty. Example:
            `{}`.
    """
    job = JOBS.get(kind)
    if job is None:
        raise InputError(f"unknown fleet job {kind!r}; one of {', '.join(JOBS)}", resource="kind")
    if max_concurrency < 1:
        raise InputError(f"max_concurrency={max_concurrency} must be >= 1", resource="fleet")
    for name in site_blocks:
        validate_block_name(name, "site block")
    if "site_block" in parameters:
        raise InputError("parameters must not name a site_block", resource="parameters")
    if arm_facts and job is not STATUS:
        raise InputError("arm_facts is for status shards only", resource="arm_facts")
    rows = _run_sites(job, site_blocks, parameters, lock_names or {}, max_concurrency, arm_facts)
    _describe(rows)
    failed = [r for r in rows if not r["ok"]]
    create_table_artifact(
        key=shard_artifact_key(kind, label),
        table=rows,
        description=f"{kind} shard {label}: {len(rows) - len(failed)}/{len(rows)} sites ok",
    )
    if failed:
        raise PermanentError(
            f"{kind} shard {label}: {len(failed)} of {len(rows)} site(s) failed: "
            + ", ".join(f"{r['site']} ({r['state']})" for r in failed),
            resource=SHARD_FLOW,
            fix="open each failed site's run for the failing step and its fix",
        )
    get_run_logger().info("%s shard %s: %d site(s) ok", kind, label, len(rows))
    return rows


def _run_sites(
    job: SiteJob,
    site_blocks: list[str],
    parameters: dict[str, Any],
    lock_names: dict[str, str],
    max_concurrency: int,
    arm_facts: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    facts = arm_facts or {}
    with ExitStack() as stack:
        if job.locks and lock_names and "parent_block" in parameters:
            from blocks.parent_registry import ParentRegistry
            from flows.locks import checked_site_limits

            parent: Any = ParentRegistry.load(parameters["parent_block"])
            names = [lock_names[s] for s in site_blocks if s in lock_names]
            stack.enter_context(checked_site_limits(parent, names))
        gate = threading.BoundedSemaphore(max_concurrency)
        started: list[tuple[str, PrefectFuture[dict[str, Any]]]] = []
        for name in site_blocks:
            gate.acquire()
            site_params = parameters | ({"arm_facts": facts[name]} if name in facts else {})
            future = run_site.submit(job.kind, name, site_params)
            future.add_done_callback(lambda _f: gate.release())
            started.append((name, future))
        wait([f for _, f in started])
    rows = []
    for name, future in started:
        try:
            rows.append(future.result())
        except Exception as exc:  # the subflow could not be started at all
            rows.append(failed_row(job, name, "NotStarted", str(exc)))
    return rows


# The fleet run's side of a shard: start it, wait, read its rows back.


def _shard_rows(run: FlowRun, job: SiteJob, shard: list[str]) -> list[dict[str, Any]]:
    """The shard's per-site rows from its artifact; a site the shard did not report (it
    crashed or never started) is a failed row carrying the shard's state and message."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.locks import run_client

    with run_client() as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    reported: dict[str, dict[str, Any]] = {}
    for art in arts:
        if (art.key or "").startswith(f"{job.kind}-{SHARD_ARTIFACT}-") and art.data:
            for row in _table(art.data):
                reported[row["site"]] = row
    state = run.state
    why = (state.message if state else None) or f"shard run {run.name} reported no result"
    name = str(state.name) if state else "Unknown"
    return [reported.get(s) or failed_row(job, s, name, why) for s in shard]


def _table(data: Any) -> list[dict[str, Any]]:
    import json

    rows = json.loads(data) if isinstance(data, str) else data
    return [dict(r) for r in rows]


@task(
    name="run-shard",
    task_run_name="{label}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_shard(
    job: SiteJob, label: str, shard: list[str], parameters: dict[str, Any]
) -> dict[str, Any]:
    """Start the shard's fleet-shard run, wait for it, and return its per-site rows."""
    from prefect.deployments import run_deployment

    run: FlowRun = run_deployment(  # type: ignore[assignment]
        SHARD_DEPLOYMENT,
        parameters=parameters,
        flow_run_name=f"{job.kind}-shard-{label}",
        timeout=SHARD_RUN_TIMEOUT,
        poll_interval=2,
    )
    return {"rows": _shard_rows(run, job, shard)}
