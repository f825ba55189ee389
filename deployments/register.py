"""`acr-edge deploy`: register block types, ensure the work pool, apply the deployments.

Runs against whatever Prefect API is configured (`PREFECT_API_URL`); it never starts one, so a
missing setting fails fast instead of deploying into a throwaway ephemeral database.
Idempotent: re-running updates each deployment in place and says so.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlparse

from deployments import automations, block_pickers, parameter_titles, scheduled_runs
from deployments.definitions import (
    DEFAULT_PARENT_BLOCK,
    DEFAULT_ROTATE_CRON,
    DEFAULT_STATUS_MINUTES,
    DEFAULT_TIMEZONE,
    DEFAULT_WORK_POOL,
    DeploymentDefinition,
    ScheduleDefinition,
    definitions,
)
from deployments.prefect_yaml import prefect_yaml
from model.errors import AcrEdgeError, InputError, PermanentError
from model.names import validate_block_name


@dataclass(frozen=True)
class Outcome:
    kind: Literal["block-type", "work-pool", "deployment", "automation", "arm-budget"]
    name: str
    action: Literal["created", "updated", "exists", "registered", "unchanged", "deleted", "left"]
    detail: str = ""

    def line(self) -> str:
        tail = f" ({self.detail})" if self.detail else ""
        return f"{self.kind:<10} {self.name:<40} {self.action}{tail}"


def insecure_api_warning(url: str) -> str | None:
    """Pure: why this API URL is unsafe to deploy through, or None. Plain http is fine on
    loopback only: elsewhere the API's auth string and every block secret read back cross the
    network in clear."""
    parsed = urlparse(url)
    if parsed.scheme != "http":
        return None
    host = (parsed.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass
    return (
        f"the Prefect API {url} is plain http to {host or 'an unnamed host'}: the API auth "
        "string and the block secrets workers read cross the network unencrypted. Put TLS in "
        "front of the API (https://) and set PREFECT_API_AUTH_STRING (README: Production)."
    )


def _warn(text: str) -> None:
    print(f"acr-edge deploy: warning: {text}", file=sys.stderr)


def _require_api() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise InputError(
            "no Prefect API configured.",
            resource="PREFECT_API_URL",
            fix="set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api) or `prefect profile use`.",
        )
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise PermanentError(
            f"Prefect API at {url} is not reachable: {type(problem).__name__}",
            resource="PREFECT_API_URL",
            fix="start it with `prefect server start` or correct the URL.",
        )
    return str(url)


def register_block_types() -> list[Outcome]:
    from blocks.edge_site import EdgeSite
    from blocks.parent_registry import ParentRegistry
    from blocks.site_spec import EdgeSiteSpec

    out = []
    for block in (ParentRegistry, EdgeSite, EdgeSiteSpec):
        block.register_type_and_schema()
        out.append(Outcome("block-type", block.get_block_type_slug(), "registered"))
    return out


def ensure_work_pool(name: str) -> Outcome:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(name)
        except ObjectNotFound:
            client.create_work_pool(
                WorkPoolCreate(
                    name=name,
                    type="process",
                    description="acr-edge flows (process worker on a host with the package)",
                    base_job_template=ProcessWorker.get_default_base_job_template(),
                )
            )
            return Outcome("work-pool", name, "created", "type process")
    return Outcome("work-pool", name, "exists", f"type {pool.type}; left unchanged")


def _schedule(defn: ScheduleDefinition) -> Any:
    from prefect.schedules import Cron, Interval

    if defn.cron is not None:
        return Cron(
            defn.cron, timezone=defn.timezone, slug=defn.slug, parameters=dict(defn.parameters)
        )
    assert defn.interval_seconds is not None
    anchor = None
    if defn.anchor is not None:
        anchor = datetime.fromisoformat(defn.anchor)
    return Interval(
        timedelta(seconds=defn.interval_seconds),
        anchor_date=anchor,
        timezone=defn.timezone,
        slug=defn.slug,
        parameters=dict(defn.parameters),
    )


def _concurrency(defn: DeploymentDefinition) -> Any:
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    if defn.concurrency_limit is None or defn.collision_strategy is None:
        return defn.concurrency_limit
    return ConcurrencyLimitConfig(
        limit=defn.concurrency_limit,
        collision_strategy=ConcurrencyLimitStrategy(defn.collision_strategy),
    )


def apply_deployment(
    defn: DeploymentDefinition,
    work_pool: str,
    lookup: block_pickers.Lookup | None = None,
    unsaved: set[str] | None = None,
) -> Outcome:
    """Create or update one deployment. Its site and parent parameters become block pickers;
    block names in its defaults and schedules become references (``unsaved`` collects the
    blocks not saved yet)."""
    from prefect.client.orchestration import get_client
    from prefect.deployments.runner import RunnerDeployment
    from prefect.exceptions import ObjectNotFound

    old_slugs: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        try:
            old_slugs = scheduled_runs.schedule_slugs(
                client.read_deployment_by_name(defn.full_name)
            )
            existed = True
        except ObjectNotFound:
            existed = False
    deployment = RunnerDeployment.from_entrypoint(
        entrypoint=defn.entrypoint,
        name=defn.name,
        schedules=[_schedule(s) for s in defn.schedules],
        concurrency_limit=_concurrency(defn),
        parameters=dict(defn.parameters),
        description=defn.description,
        tags=list(defn.tags),
        work_pool_name=work_pool,
    )
    if deployment.flow_name != defn.flow_name:
        raise PermanentError(
            f"entrypoint {defn.entrypoint} defines flow {deployment.flow_name!r}, "
            f"expected {defn.flow_name!r}.",
            resource=defn.full_name,
            fix="keep the flow's name equal to its deployment name.",
        )
    parameter_titles.apply(deployment._parameter_openapi_schema)
    pickers = block_pickers.apply(deployment._parameter_openapi_schema)
    if pickers:
        lookup = lookup or block_pickers.saved_blocks_lookup()
        missing: list[str] = []
        deployment.parameters, m = block_pickers.as_references(
            deployment.parameters, pickers, lookup
        )
        missing += m
        for schedule in deployment.schedules or []:
            schedule.parameters, m = block_pickers.as_references(
                schedule.parameters or {}, pickers, lookup
            )
            missing += m
        if unsaved is not None:
            unsaved.update(missing)
    # Module entrypoints resolve on any worker with the package installed; a path stored here
    # would pin runs to this machine's checkout.
    deployment._path = None  # type: ignore[assignment]
    deployment.apply()
    what = f"{len(defn.schedules)} schedule(s), pool {work_pool}"
    if existed and (
        refreshed := scheduled_runs.refresh(
            defn.full_name, old_slugs, {s.slug for s in defn.schedules}
        )
    ):
        what += f"; {refreshed}"
    return Outcome("deployment", defn.full_name, "updated" if existed else "created", what)


def deploy(
    *,
    work_pool: str = DEFAULT_WORK_POOL,
    timezone: str = DEFAULT_TIMEZONE,
    rotate_cron: str = DEFAULT_ROTATE_CRON,
    status_minutes: int = DEFAULT_STATUS_MINUTES,
    status_sites: Sequence[str] = (),
    status_tag: str | None = None,
    parent_block: str = DEFAULT_PARENT_BLOCK,
    notify: str | None = None,
    warn: Callable[[str], None] = _warn,
) -> list[Outcome]:
    """Everything `acr-edge deploy` does; returns one outcome per object it touched. With
    `notify` (a saved notification block) it also converges the `acr-edge: ...` alert
    Automations. `warn` hears of an API reached over plain http off this host, before the
    first request to it."""
    validate_block_name(work_pool, "work pool")
    defs = definitions(
        timezone=timezone,
        rotate_cron=rotate_cron,
        status_minutes=status_minutes,
        status_sites=tuple(status_sites),
        status_tag=status_tag,
        parent_block=parent_block,
    )
    from prefect.settings import PREFECT_API_URL

    warning = insecure_api_warning(str(PREFECT_API_URL.value() or ""))
    if warning:
        warn(warning)
    _require_api()
    # Read-only, before the first write: a bad --notify leaves the server as it was.
    block = automations.resolve_notification_block(notify) if notify is not None else None
    outcomes = register_block_types()
    outcomes.append(ensure_work_pool(work_pool))
    lookup, unsaved = block_pickers.saved_blocks_lookup(), set[str]()
    outcomes.extend(apply_deployment(d, work_pool, lookup, unsaved) for d in defs)
    if unsaved:
        warn(
            f"not saved yet: {', '.join(sorted(unsaved))}. The deployments refer to them by "
            "name and runs find them when they start; save them and deploy again so the run "
            "forms show them chosen."
        )
    changes = automations.converge(block[0]) if block else automations.existing_note()
    outcomes.extend(_automation_outcome(c, block[1] if block else None) for c in changes)
    from deployments.arm_limits import arm_budget_outcomes

    outcomes.extend(arm_budget_outcomes(parent_block))
    return outcomes


_ALERT_ACTIONS: dict[str, Any] = {
    "create": "created",
    "update": "updated",
    "unchanged": "unchanged",
    "delete-duplicate": "deleted",
    "left": "left",
}


def _automation_outcome(change: automations.AutomationChange, block: str | None) -> Outcome:
    detail = change.reason
    if block is not None and change.action in ("create", "update", "unchanged"):
        detail = f"notifies {block}" + (f"; {detail}" if detail else "")
    return Outcome("automation", change.name, _ALERT_ACTIONS[change.action], detail)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acr-edge deploy", description=__doc__)
    p.add_argument("--work-pool", default=DEFAULT_WORK_POOL, help="process work pool to use")
    p.add_argument("--timezone", default=DEFAULT_TIMEZONE, help="IANA timezone for schedules")
    p.add_argument("--rotate-cron", default=DEFAULT_ROTATE_CRON, help="token rotation cron")
    p.add_argument(
        "--status-minutes", type=int, default=DEFAULT_STATUS_MINUTES, help="site-status interval"
    )
    p.add_argument(
        "--site-status-sites",
        nargs="*",
        default=[],
        metavar="SITE_BLOCK",
        help="narrow the fleet-status schedule to these EdgeSite blocks (default: every site)",
    )
    p.add_argument(
        "--status-tag",
        default=None,
        help="narrow the fleet-status schedule to EdgeSite blocks with this tag",
    )
    p.add_argument(
        "--parent-block",
        default=DEFAULT_PARENT_BLOCK,
        help="ParentRegistry block name used as the deployments' default",
    )
    p.add_argument(
        "--notify",
        metavar="BLOCK",
        default=None,
        help="saved notification block (NAME or TYPE/NAME, e.g. slack-webhook/ops): create or "
        "update the `acr-edge: ...` Automations (site unhealthy, rotation failed, credential "
        "expiring, fleet wave halted) that notify through it; without it none are written",
    )
    p.add_argument(
        "--write-prefect-yaml",
        metavar="PATH",
        default=None,
        help="write the default definitions as a prefect.yaml to PATH and exit (no API needed)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.write_prefect_yaml:
        with open(args.write_prefect_yaml, "w", encoding="utf-8") as out:
            out.write(prefect_yaml())
        print(f"wrote {args.write_prefect_yaml}")
        return 0
    try:
        outcomes = deploy(
            work_pool=args.work_pool,
            timezone=args.timezone,
            rotate_cron=args.rotate_cron,
            status_minutes=args.status_minutes,
            status_sites=args.site_status_sites,
            status_tag=args.status_tag,
            parent_block=args.parent_block,
            notify=args.notify,
        )
    except AcrEdgeError as exc:
        print(f"acr-edge deploy: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, InputError) else 1
    for outcome in outcomes:
        print(outcome.line())
    if args.notify is None and any(o.kind == "automation" for o in outcomes):
        print("automations left as they are: deploy with --notify BLOCK to converge them")
    print(f"start a worker: prefect worker start --pool {args.work_pool}")
    print("fleet runs wait on their per-site runs: leave workers room for both (--limit)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
