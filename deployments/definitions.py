"""What acr-edge deploys: one pure description per deployment, shared by `acr-edge deploy`,
`deployments/prefect.yaml` (a test keeps the two in step) and the tests.

Every deployment is named after its flow, because the fleet flows start runs of the per-site
deployments (`provision-site/provision-site`, `rotate-client-token/rotate-client-token`,
`rotate-sync-credential/rotate-sync-credential`, `site-status/site-status`,
`teardown-site/teardown-site`) by that name. Per-site deployments carry no schedule (a run
needs its site); the fleet deployments do. A fleet run starts `fleet-shard/fleet-shard` runs,
each running a shard of sites as per-site subflows; the per-site deployments serve runs started
by hand (or by an automation) for one site.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from model.cron import validate_cron
from model.errors import InputError
from model.names import validate_block_name

DEFAULT_WORK_POOL = "acr-edge"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_ROTATE_CRON = "0 3 * * 1"  # Mondays 03:00: a quiet hour, weekly is well inside 90 days
DEFAULT_STATUS_MINUTES = 15
# Daily at 02:00, before the weekly rotation's hour: new repositories under a site's namespaces
# reach it within a day.
DEFAULT_RECONCILE_CRON = "0 2 * * *"
DEFAULT_PARENT_BLOCK = "parent-registry"
# Per-site deployments: bounds ARM pressure from a fleet fan-out (and from hand-started runs).
SITE_RUN_CONCURRENCY = 10
PROVISION_SITE_CONCURRENCY = SITE_RUN_CONCURRENCY
# Interval schedules count from a fixed midnight UTC, so 15-minute checks land on :00/:15/:30/:45
# (every timezone's offset is a multiple of 15 minutes) rather than at whatever minute
# `acr-edge deploy` happened to run.
INTERVAL_ANCHOR = "2024-01-01T00:00:00+00:00"


@dataclass(frozen=True)
class ScheduleDefinition:
    """A cron or an interval schedule; `parameters` override the deployment's for this slug."""

    slug: str
    cron: str | None = None
    interval_seconds: int | None = None
    timezone: str = DEFAULT_TIMEZONE
    parameters: dict[str, Any] = field(default_factory=dict)
    anchor: str | None = None  # interval schedules: ISO time with its UTC offset


@dataclass(frozen=True)
class DeploymentDefinition:
    flow_name: str
    entrypoint: str  # module style, so a worker resolves it from any working directory
    description: str
    tags: tuple[str, ...]
    parameters: dict[str, Any] = field(default_factory=dict)
    schedules: tuple[ScheduleDefinition, ...] = ()
    concurrency_limit: int | None = None
    collision_strategy: str | None = None  # None: Prefect's ENQUEUE; CANCEL_NEW drops overlaps

    @property
    def name(self) -> str:
        return self.flow_name

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"


def validate_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InputError(
            f"unknown timezone {value!r}.",
            resource="--timezone",
            fix="use an IANA name such as UTC or Europe/Berlin.",
        ) from exc
    return value


def definitions(
    *,
    timezone: str = DEFAULT_TIMEZONE,
    rotate_cron: str = DEFAULT_ROTATE_CRON,
    status_minutes: int = DEFAULT_STATUS_MINUTES,
    status_sites: tuple[str, ...] = (),
    status_tag: str | None = None,
    parent_block: str = DEFAULT_PARENT_BLOCK,
) -> list[DeploymentDefinition]:
    """The twelve deployments; raises InputError on bad input (before anything is written).

    Status checks: the `fleet-status` schedule starts a `site-status` run per site every
    `status_minutes`, for every EdgeSite block unless narrowed to `status_sites` or `status_tag`,
    so a site saved later is checked without redeploying.
    """
    validate_timezone(timezone)
    rotate_cron = validate_cron(rotate_cron, what="--rotate-cron")
    validate_block_name(parent_block, "parent block")
    for site in status_sites:
        validate_block_name(site, "site block")
    if len(set(status_sites)) != len(status_sites):
        raise InputError(
            "a site is listed twice.", resource="--site-status-sites", fix="list each site once."
        )
    if status_tag is not None:
        if status_sites:
            raise InputError(
                "choose status sites by name or by tag, not both.",
                resource="--status-tag",
                fix="drop --site-status-sites or --status-tag.",
            )
        validate_block_name(status_tag, "status tag")
    if not 1 <= status_minutes <= 24 * 60:
        raise InputError(
            f"status interval {status_minutes} min is out of range.",
            resource="--status-minutes",
            fix="choose 1..1440 minutes.",
        )
    parent = {"parent_block": parent_block}
    status_pick: dict[str, Any] = {}
    if status_sites:
        status_pick = {"sites": list(status_sites)}
    elif status_tag is not None:
        status_pick = {"tag": status_tag}
    return [
        DeploymentDefinition(
            flow_name="provision-site",
            entrypoint="flows.provision_site:provision_site",
            description=(
                "Provision one edge site: ARM scope maps, tokens and the connected registry, "
                "then Helm, registries.yaml and pull secrets on the K3s node. Idempotent: a "
                "re-run writes nothing when the site already matches."
            ),
            tags=("acr-edge", "provision"),
            parameters=dict(parent),
            concurrency_limit=SITE_RUN_CONCURRENCY,
        ),
        DeploymentDefinition(
            flow_name="rotate-client-token",
            entrypoint="flows.rotate_client_token:rotate_client_token",
            description=(
                "Rotate one site's client-token password when it is due: new password in the "
                "idle slot, prove a pull with it, switch the pull secrets, prove again, then "
                "revoke the old slot. Finishes a rotation an earlier run left half done. "
                "rotate-fleet-tokens starts one run of this per site."
            ),
            tags=("acr-edge", "rotation"),
            parameters=dict(parent),
            concurrency_limit=SITE_RUN_CONCURRENCY,
        ),
        DeploymentDefinition(
            flow_name="site-status",
            entrypoint="flows.site_status:site_status",
            description=(
                "Report one site's connection state, activation, last sync, client-token "
                "password slots and a canary pull; fails when the site is unhealthy. Read-only. "
                "fleet-status starts one run of this per site on its schedule."
            ),
            tags=("acr-edge", "status"),
            parameters=dict(parent),
            concurrency_limit=SITE_RUN_CONCURRENCY,
        ),
        DeploymentDefinition(
            flow_name="rotate-sync-credential",
            entrypoint="flows.rotate_sync_credential:rotate_sync_credential",
            description=(
                "Rotate one site's sync-token password when it is due (or forced): new password "
                "in the unused slot, upgrade the release with the new connection string, wait "
                "for Online with a sync, then revoke the old slot. Finishes a rotation an "
                "earlier run left half done. rotate-fleet-sync starts one run of this per site."
            ),
            tags=("acr-edge", "rotation"),
            parameters=dict(parent),
            concurrency_limit=SITE_RUN_CONCURRENCY,
        ),
        DeploymentDefinition(
            flow_name="teardown-site",
            entrypoint="flows.teardown_site:teardown_site",
            description=(
                "Retire one site: remove what acr-edge owns (node mirror entries and CA files, "
                "pull secrets, Helm release, TLS secrets; in ARM the connected registry, "
                "deactivated then deleted, its tokens and scope maps) and leave the rest, "
                "saying so. dry_run lists every deletion. Re-running converges."
            ),
            tags=("acr-edge", "teardown"),
            parameters=dict(parent),
            concurrency_limit=SITE_RUN_CONCURRENCY,
        ),
        DeploymentDefinition(
            flow_name="re-home-site",
            entrypoint="flows.rehome_site:rehome_site",
            description=(
                "Move one site to the hardware its block now names: revoke the old runtime's "
                "sync passwords, deactivate the connected registry, then provision-site on the "
                "new hardware with a fresh sync password. spec.dry_run lists the plan."
            ),
            tags=("acr-edge", "provision"),
            parameters=dict(parent),
            concurrency_limit=SITE_RUN_CONCURRENCY,
        ),
        DeploymentDefinition(
            flow_name="fleet-shard",
            entrypoint="flows.fleet_shard:fleet_shard",
            description=(
                "Started by the fleet flows, one run per shard of a wave: runs the shard's "
                "sites in this process as named per-site subflows (provision-<site>, "
                "rotate-<site>, ...), at most max_concurrency at a time, and records one row "
                "per site for the fleet run. Fails when any of its sites fails."
            ),
            tags=("acr-edge", "fleet"),
        ),
        DeploymentDefinition(
            flow_name="provision-fleet",
            entrypoint="flows.fleet:provision_fleet",
            description=(
                "Provision many sites (by name or tag) in waves: a canary wave, then waves of "
                "wave_size, the next only within max_failures; each wave runs as fleet-shard "
                "runs of shard_size sites. Fails naming the failed and not-started sites (the "
                "summary artifact links each run)."
            ),
            tags=("acr-edge", "provision", "fleet"),
            parameters=dict(parent),
            concurrency_limit=1,
        ),
        DeploymentDefinition(
            flow_name="rotate-fleet-tokens",
            entrypoint="flows.fleet:rotate_fleet_tokens",
            description=(
                "Weekly client-token rotation: one rotate-client-token run per site (every "
                "EdgeSite block, or the chosen sites/tag), rotating only where due; fails when "
                "any site's run fails (the summary artifact links each run)."
            ),
            tags=("acr-edge", "rotation", "fleet"),
            parameters=dict(parent),
            schedules=(
                ScheduleDefinition(slug="weekly-rotation", cron=rotate_cron, timezone=timezone),
            ),
            concurrency_limit=1,
        ),
        DeploymentDefinition(
            flow_name="fleet-status",
            entrypoint="flows.fleet:fleet_status",
            description=(
                f"Every {status_minutes} minutes: one site-status run per site (every EdgeSite "
                "block unless the schedule names sites or a tag; new blocks are picked up "
                "without redeploying). Fails, naming the sites and linking their runs, when "
                "any site is unhealthy. A run still going when the next is due makes the next "
                "one cancel rather than queue."
            ),
            tags=("acr-edge", "status", "fleet"),
            parameters=dict(parent),
            schedules=(
                ScheduleDefinition(
                    slug=f"every-{status_minutes}-minutes",
                    interval_seconds=status_minutes * 60,
                    timezone=timezone,
                    parameters=status_pick,
                    anchor=INTERVAL_ANCHOR,
                ),
            ),
            concurrency_limit=1,
            collision_strategy="CANCEL_NEW",
        ),
        DeploymentDefinition(
            flow_name="teardown-fleet",
            entrypoint="flows.fleet:teardown_fleet",
            description=(
                "Tear down many sites (by name or tag, never all by default) in waves of "
                "fleet-shard runs (canary first, failure budget max_failures); dry_run lists "
                "each site's deletions. Fails when any site's run fails."
            ),
            tags=("acr-edge", "teardown", "fleet"),
            parameters=dict(parent),
            concurrency_limit=1,
        ),
        DeploymentDefinition(
            flow_name="reconcile-fleet",
            entrypoint="flows.reconcile:reconcile_fleet",
            description=(
                "Daily: one provision-site run, with no spec parameter, per site that a stored "
                "spec (edge-site-spec block, by site or tag) applies to, so repositories added "
                "under its namespaces reach it. A site whose spec would remove repositories "
                "waits for approval in its own run. Fails when any site's run fails."
            ),
            tags=("acr-edge", "provision", "fleet"),
            parameters=dict(parent),
            schedules=(
                ScheduleDefinition(
                    slug="daily-reconcile", cron=DEFAULT_RECONCILE_CRON, timezone=timezone
                ),
            ),
            concurrency_limit=1,
            collision_strategy="CANCEL_NEW",
        ),
        DeploymentDefinition(
            flow_name="rotate-fleet-sync",
            entrypoint="flows.fleet:rotate_fleet_sync",
            description=(
                "Weekly sync-password rotation, on the client-token rotation's schedule: one "
                "rotate-sync-credential run per site (every EdgeSite block, or the chosen "
                "sites/tag), rotating only where due; fails when any site's run fails."
            ),
            tags=("acr-edge", "rotation", "fleet"),
            parameters=dict(parent),
            schedules=(
                ScheduleDefinition(
                    slug="weekly-sync-rotation", cron=rotate_cron, timezone=timezone
                ),
            ),
            concurrency_limit=1,
        ),
    ]
