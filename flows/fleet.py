"""Fleet flows: provision, rotate, check or tear down many sites, bounded and paced.

Sites are EdgeSite block documents chosen by name or tag. Every fleet flow starts one run of the
per-site deployment for each chosen site (``provision-site``, ``rotate-client-token``,
``rotate-sync-credential``, ``site-status``, ``teardown-site``), so the runs spread over the
work pool's workers and each site's run is visible, retryable and locked on its own. At most
``max_concurrency`` sites are in flight; every site run draws its ARM requests from the
subscription's shared budget (flows/arm_budget.py). A fleet run fails when any site's
run does not complete; its summary artifact names each site, its run and the run's URL.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun
from prefect.futures import PrefectFuture, wait

from flows.models import ProvisionSpec
from model.errors import InputError, PermanentError
from model.names import validate_block_name
from tasks import sync_rotation

SITE_RUN_TIMEOUT = 3600.0


@dataclass(frozen=True)
class SiteJob:
    """The per-site deployment a fleet flow fans out to (deployment name = flow name)."""

    flow_name: str
    run_prefix: str  # the per-site flow's own run name is f"{run_prefix}-{site_block}"

    @property
    def deployment(self) -> str:
        return f"{self.flow_name}/{self.flow_name}"

    def run_name(self, site_block: str) -> str:
        return f"{self.run_prefix}-{site_block}"


PROVISION = SiteJob("provision-site", "provision")
ROTATE = SiteJob("rotate-client-token", "rotate")
STATUS = SiteJob("site-status", "status")
TEARDOWN = SiteJob("teardown-site", "teardown")
ROTATE_SYNC = SiteJob("rotate-sync-credential", "rotate-sync")
PROVISION_DEPLOYMENT = PROVISION.deployment
ROTATE_DEPLOYMENT = ROTATE.deployment
STATUS_DEPLOYMENT = STATUS.deployment


def select_sites(
    sites: list[str] | None, tag: str | None, *, default_all: bool = False
) -> list[str]:
    """Block names of the chosen EdgeSite documents; refuses unknown names and empty picks.

    With ``default_all`` (rotation, status) choosing neither means every edge-site block;
    provisioning always needs an explicit choice.
    """
    from prefect.client.orchestration import get_client

    if sites is not None and tag is not None:
        raise InputError(
            "choose sites either by name (sites=[...]) or by tag (tag=...), exactly one",
            resource="sites/tag",
        )
    if sites is None and tag is None and not default_all:
        raise InputError(
            "choose sites either by name (sites=[...]) or by tag (tag=...), exactly one",
            resource="sites/tag",
        )
    with get_client(sync_client=True) as client:
        docs = client.read_block_documents_by_type("edge-site", include_secrets=False)
    known = {d.name: d for d in docs if d.name}
    if sites is not None:
        for name in sites:
            validate_block_name(name, "site block")
        missing = [s for s in sites if s not in known]
        if missing:
            raise InputError(
                f"no edge-site block named {', '.join(missing)}",
                resource="sites",
                fix="create the blocks first (prefect block ls)",
            )
        chosen = list(dict.fromkeys(sites))
    elif tag is not None:
        validate_block_name(tag, "tag")  # the same rule deploy's --status-tag follows
        chosen = sorted(n for n, d in known.items() if tag in (d.data.get("tags") or []))
        if not chosen:
            raise InputError(f"no edge-site block has tag {tag!r}", resource="tag")
    else:
        chosen = sorted(known)
    if not chosen:
        raise InputError(
            "no edge-site blocks exist", resource="sites", fix="save an EdgeSite block per site"
        )
    return chosen


def _run_url(run: FlowRun) -> str:
    from prefect.utilities.urls import url_for

    return url_for(run) or f"flow-run/{run.id}"


def _artifact_text(flow_run_id: Any) -> str:
    """The site run's own artifact descriptions: its one-line outcome, in the site's words."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return "; ".join(a.description for a in arts if a.description)


@task(
    name="run-site-deployment",
    task_run_name="{deployment}:{site_block}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def run_site_deployment(
    deployment: str, run_name: str, site_block: str, parameters: dict[str, Any]
) -> dict[str, Any]:
    """Start the site's run of ``deployment``, wait for it, and describe how it ended.

    A site run that fails is reported (not raised) so the summary can name its run and URL;
    the fleet flow fails afterwards.
    """
    from prefect.deployments import run_deployment

    run: FlowRun = run_deployment(  # type: ignore[assignment]
        deployment,
        parameters=parameters,
        flow_run_name=run_name,  # shown until the flow applies its own (identical) name
        timeout=SITE_RUN_TIMEOUT,
        poll_interval=2,
    )
    state = run.state
    ok = state is not None and state.is_completed()
    state_name = str(state.name) if state else "Unknown"
    detail = _artifact_text(run.id)
    if not ok and state is not None and state.message:
        detail = f"{detail}; {state.message}" if detail else state.message
    return {
        "site": site_block,
        "ok": ok,
        "state": state_name,
        "run": run.name,
        "url": _run_url(run),
        "outcome": detail,
    }


def fan_out(
    fleet: str,
    job: SiteJob,
    names: list[str],
    parameters: Callable[[str], dict[str, Any]],
    max_concurrency: int,
) -> dict[str, Any]:
    """One run of ``job``'s deployment per site, at most ``max_concurrency`` in flight; writes
    the ``<fleet>-summary`` table artifact and raises PermanentError naming the failed sites
    and their runs when any did not complete."""
    if max_concurrency < 1:
        raise InputError(f"max_concurrency={max_concurrency} must be >= 1", resource="fleet")
    gate = threading.BoundedSemaphore(max_concurrency)
    started: list[tuple[str, PrefectFuture[dict[str, Any]]]] = []
    for name in names:
        gate.acquire()
        future = run_site_deployment.submit(
            job.deployment, job.run_name(name), name, parameters(name)
        )
        future.add_done_callback(lambda _f: gate.release())
        started.append((name, future))
    wait([f for _, f in started])
    rows = []
    for name, future in started:
        try:
            rows.append(future.result())
        except Exception as exc:  # the run could not be started or watched at all
            rows.append(
                {
                    "site": name,
                    "ok": False,
                    "state": "NotStarted",
                    "run": job.run_name(name),
                    "url": "",
                    "outcome": str(exc),
                }
            )
    return _finish(fleet, rows)


def _finish(kind: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    failed = [r for r in rows if not r["ok"]]
    headline = f"{kind}: {len(rows) - len(failed)}/{len(rows)} sites ok"
    if failed:
        headline += "; failed: " + ", ".join(f"{r['site']} ({r['url']})" for r in failed)
    create_table_artifact(
        key=f"{kind}-summary",
        table=rows,
        description=headline,
    )
    summary = {
        "sites": rows,
        "failed": [r["site"] for r in failed],
    }
    if failed:
        listing = "; ".join(f"{r['site']}: {r['run']} {r['state']} {r['url']}" for r in failed)
        raise PermanentError(
            f"{kind}: {len(failed)} of {len(rows)} site(s) failed: {listing}",
            resource=kind,
            fix="open each failed site's run for the failing step and its fix; re-running the "
            "fleet retries only what is not converged",
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
    """Provision every chosen site through its own provision-site deployment run.

    Args:
        parent_block: ParentRegistry block name (the parent registry and its credentials).
        spec: What to provision on every chosen site.
        sites: EdgeSite block names to provision (or use tag).
        tag: Provision every EdgeSite block carrying this tag (or use sites).
        max_concurrency: Sites provisioned at the same time.
    """
    validate_block_name(parent_block, "parent_block")
    names = select_sites(sites, tag)
    body = spec.model_dump(mode="json")
    return fan_out(
        "provision-fleet",
        PROVISION,
        names,
        lambda name: {"site_block": name, "parent_block": parent_block, "spec": body},
        max_concurrency,
    )


@flow(name="rotate-fleet-tokens")
def rotate_fleet_tokens(
    parent_block: str,
    sites: list[str] | None = None,
    tag: str | None = None,
    lifetime_days: int = 90,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Rotate each chosen site's client token where due (or finish an interrupted rotation)
    through its own rotate-client-token deployment run.

    Args:
        parent_block: ParentRegistry block name (the parent registry and its credentials).
        sites: EdgeSite block names (leave empty with no tag for every site).
        tag: Only EdgeSite blocks carrying this tag.
        lifetime_days: Lifetime of each new client password, in days.
        max_concurrency: Sites rotated at the same time.
    """
    validate_block_name(parent_block, "parent_block")
    names = select_sites(sites, tag, default_all=True)
    return fan_out(
        "rotate-fleet-tokens",
        ROTATE,
        names,
        lambda name: {
            "site_block": name,
            "parent_block": parent_block,
            "lifetime_days": lifetime_days,
        },
        max_concurrency,
    )


@flow(name="fleet-status")
def fleet_status(
    parent_block: str,
    sites: list[str] | None = None,
    tag: str | None = None,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Check every chosen site through its own site-status deployment run; fails when any
    site is unhealthy or unreachable, naming those sites and their runs.

    Args:
        parent_block: ParentRegistry block name (the parent registry and its credentials).
        sites: EdgeSite block names (leave empty with no tag for every site).
        tag: Only EdgeSite blocks carrying this tag.
        max_concurrency: Sites checked at the same time.
    """
    validate_block_name(parent_block, "parent_block")
    names = select_sites(sites, tag, default_all=True)
    return fan_out(
        "fleet-status",
        STATUS,
        names,
        lambda name: {"site_block": name, "parent_block": parent_block},
        max_concurrency,
    )


@flow(name="teardown-fleet")
def teardown_fleet(
    parent_block: str,
    sites: list[str] | None = None,
    tag: str | None = None,
    dry_run: bool = False,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Tear down every chosen site through its own teardown-site deployment run (only what
    acr-edge owns; each site's run says what it left). Sites must be chosen explicitly.

    Args:
        parent_block: ParentRegistry block name (the parent registry and its credentials).
        sites: EdgeSite block names to tear down (or use tag).
        tag: Tear down every EdgeSite block carrying this tag (or use sites).
        dry_run: Every site's run lists its deletions and writes nothing.
        max_concurrency: Sites torn down at the same time.
    """
    validate_block_name(parent_block, "parent_block")
    names = select_sites(sites, tag)  # never "every site" by default: this deletes
    return fan_out(
        "teardown-fleet",
        TEARDOWN,
        names,
        lambda name: {"site_block": name, "parent_block": parent_block, "dry_run": dry_run},
        max_concurrency,
    )


@flow(name="rotate-fleet-sync")
def rotate_fleet_sync(
    parent_block: str,
    sites: list[str] | None = None,
    tag: str | None = None,
    lifetime_days: int = sync_rotation.SYNC_PASSWORD_DAYS,
    lead_days: int = sync_rotation.SYNC_LEAD_DAYS,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Rotate each chosen site's sync password where due (or finish an interrupted rotation)
    through its own rotate-sync-credential deployment run.

    Args:
        parent_block: ParentRegistry block name (the parent registry and its credentials).
        sites: EdgeSite block names (leave empty with no tag for every site).
        tag: Only EdgeSite blocks carrying this tag.
        lifetime_days: Lifetime of each new sync password, in days.
        lead_days: Rotate when the password in use expires within this many days.
        max_concurrency: Sites rotated at the same time.
    """
    validate_block_name(parent_block, "parent_block")
    names = select_sites(sites, tag, default_all=True)
    return fan_out(
        "rotate-fleet-sync",
        ROTATE_SYNC,
        names,
        lambda name: {
            "site_block": name,
            "parent_block": parent_block,
            "lifetime_days": lifetime_days,
            "lead_days": lead_days,
        },
        max_concurrency,
    )
