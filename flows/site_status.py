"""site-status: is the site's connected registry healthy, and if not, what to do about it.

Read-only apart from a short-lived canary pod. The verdict comes from flows.health (pure); the
run fails when the site is unhealthy, so schedules and automations see it.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows import fleet_facts, health, node_rollout, plan_runs, site_tls, status_events
from flows.block_refs import ParentBlock, SiteBlock, block_name
from flows.inputs import load_site_inputs
from flows.report import artifact_key
from model.azure import ConnectedRegistryInfo, PasswordMeta
from model.errors import AcrEdgeError, InputError, PermanentError
from model.site import MirrorRoute
from tasks import rotation, sync_rotation
from tasks.azure import steps as az
from tasks.azure.schedule import parse_duration
from tasks.site import steps as st
from tasks.site.connection import SiteConnection, open_site
from tasks.site.plans import canary_image

FLOW = "site-status"
LEAD = timedelta(days=14)
EXPIRY_WARNING_DAYS = 14


class SiteUnhealthy(PermanentError):
    """The site answered, and what it said is wrong; the message lists each problem + fix."""

    # What the fleet picture plots (see fleet_figures): a failed run returns no value, and the
    # fleet-shard running this flow in-process reads it off the exception instead.
    fleet_figures: dict[str, Any] | None = None


@flow(name=FLOW, flow_run_name=plan_runs.run_name("status-{site_block}"))
def site_status(
    site_block: SiteBlock,
    parent_block: ParentBlock,
    client_token_name: str | None = None,
    expiry_warning_days: int = EXPIRY_WARNING_DAYS,
    arm_facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Connection state, activation, last sync vs schedule, statusDetails with the documented
    fixes, sync result, runtime and chart versions, client and sync password ages and expiry,
    Helm release, pods, mirror and hosts.toml, and a canary pull. Emits
    `acr-edge.site.unhealthy` / `acr-edge.site.healthy` when the health changes and
    `acr-edge.credential.expiring` for each used password near its expiry.

    Args:
        site_block: EdgeSite block of the site to check. Required. Example: `plant01`.
        parent_block: ParentRegistry block (the parent registry and its credentials). Required.
            Example: `parent-registry`.
        client_token_name: Client token whose passwords to check. Default: empty (the site's
            `{site}-client`). Example: `plant01-reader`.
        expiry_warning_days: Warn (event `acr-edge.credential.expiring`) when a password the site
            uses expires within this many days. Default: `14`. Example: `30`.
        arm_facts: Filled in by fleet-status; leave empty. The fleet's bulk ARM read of this
            site's resources (no secrets); empty or stale: read live. Default: empty. Example:
            `{}`.
    """
    site_block = block_name(site_block, "site_block")
    parent_block = block_name(parent_block, "parent_block")
    if not 0 <= expiry_warning_days <= 3650:
        raise InputError(
            f"expiry_warning_days must be 0..3650, got {expiry_warning_days}",
            resource="parameter expiry_warning_days",
            fix="give a number of days such as 14.",
        )
    inputs = load_site_inputs(site_block, parent_block, client_token_name=client_token_name)
    site, cr, token = inputs.site, inputs.cr_name, inputs.client_token
    verdict = health.Health()
    now = datetime.now(UTC)
    facts: dict[str, Any] = {"site": site.name}
    credentials: list[status_events.Credential] = []
    ctx = inputs.parent.azure_context()
    ctx.facts, facts["arm_facts"] = fleet_facts.for_site(arm_facts, ctx.registry_id, now)
    verdict.note("ARM facts", facts["arm_facts"])
    try:
        info = az.read_connected_registry(ctx, cr)
        if info is None:
            verdict.add("connected registry", False, "not found", "run provision-site.")
        else:
            health.check_connection(verdict, info.connection_state, info.activation_status)
            window = parse_duration(info.sync_window) if info.sync_window else None
            # A Syncing registry is healthy until its window passes: the age rule judges it.
            last, label = health.sync_reference(info.last_sync_time, info.last_successful_sync_time)
            sync = health.check_sync_age(
                last,
                info.sync_schedule or health.CONTINUOUS,
                window,
                now,
                activated=info.activation_status == "Active",
            )
            verdict.add(
                label,
                sync.ok,
                sync.message,
                "check the runtime pod logs and the node's link to the parent.",
            )
            health.check_sync_result(verdict, info.sync_state, info.last_successful_sync_time)
            health.check_status_details(verdict, info.status_details)
            _service_facts(verdict, facts, info)
            facts.update(
                connection_state=info.connection_state,
                activation=info.activation_status,
                syncing=info.connection_state == "Syncing" or info.sync_state == "Syncing",
                sync_state=info.sync_state,
                last_successful_sync=None
                if info.last_successful_sync_time is None
                else info.last_successful_sync_time.isoformat(),
                last_sync_age_seconds=None if sync.age is None else int(sync.age.total_seconds()),
            )
        passwords = az.read_token_passwords(ctx, token)
        with open_site(site) as conn:
            consumers = st.read_pull_secrets_task(
                conn, inputs.app_namespaces, site.pull_secret_name
            )
            in_use = sorted({m.slot for m in consumers.values() if m and m.token == token})
            health.check_password_expiry(
                verdict, token, {p.slot: p.expiry for p in passwords}, in_use, now, LEAD
            )
            facts["client_password_days"] = {
                p.slot: rotation.days_until(p.expiry, now) for p in passwords
            }
            facts["client_password_in_use"] = in_use
            facts["client_passwords"] = _password_rows(passwords, in_use, now)
            credentials += _credentials("client", token, facts["client_passwords"], passwords)
            release = st.release_status_task(conn)
            verdict.add("helm release", release.ok, release.value, "re-run provision-site.")
            chart = st.release_chart_task(conn) if release.ok else None
            facts["chart"] = None if chart is None else asdict(chart)
            verdict.note("chart version", chart.version if chart else None)
            sync_rows, sync_metas = _sync_password_checks(verdict, ctx, conn, cr, now)
            facts["sync_passwords"] = sync_rows
            credentials += _credentials("sync", cr, sync_rows, sync_metas)
            pods = st.deployment_ready_task(conn)
            verdict.add(
                "runtime pods",
                pods.ok,
                pods.value,
                f"kubectl -n {site.namespace} describe deploy {site.release_name}",
            )
            if release.ok:
                host = st.registry_host_task(conn)
                route, fact = site_tls.current_route(conn, host)
                facts["transport"] = site_tls.serving_transport(fact) or site.transport
                if route.https:
                    cert, cert_facts = site_tls.server_cert_check(conn, fact)
                    verdict.add(
                        "server certificate",
                        cert.ok,
                        cert.value,
                        "run provision-site (or let the rotation schedule renew it).",
                    )
                    facts["server_certificate"] = cert_facts
                repos = az.client_repositories(ctx, token)
                image = canary_image(host, repos[0]) if repos and in_use else None
                facts["nodes"] = _node_checks(verdict, conn, inputs.app_namespaces[0], route, image)
                if image is not None:
                    pulled = st.run_canary_task(
                        conn,
                        inputs.app_namespaces[0],
                        image,
                        site.pull_secret_name,
                        site.canary_timeout,
                    )
                    verdict.add(
                        "canary pull",
                        pulled.ok,
                        pulled.reason,
                        "run rotate-client-token or provision-site.",
                    )
    except AcrEdgeError as exc:
        verdict.add("reachability", False, str(exc), "see the error; the site could not be read.")
        service = st.service_state_task(site)
        if not service.ok:
            verdict.add(
                "k3s service",
                False,
                service.value,
                "fix or restore the node's registries.yaml, then restart the service.",
            )
    finally:
        ctx.close()
    facts["events"] = _emit_events(
        site_block, site.name, verdict, facts, credentials, expiry_warning_days, now
    )
    create_table_artifact(
        key=artifact_key("site-status", site_block),
        table=verdict.table(),
        description=f"site-status {site_block}: "
        + ("healthy" if verdict.healthy else f"{len(verdict.problems)} problem(s)"),
    )
    facts["healthy"] = verdict.healthy
    facts["checks"] = verdict.table()
    facts["fleet_figures"] = fleet_figures(facts)
    if not verdict.healthy:
        unhealthy = SiteUnhealthy(
            f"site {site.name} is unhealthy: " + " | ".join(verdict.problems),
            resource=f"site {site.name}",
        )
        unhealthy.fleet_figures = facts["fleet_figures"]
        raise unhealthy
    get_run_logger().info("site %s is healthy", site.name)
    return facts


def fleet_figures(facts: dict[str, Any]) -> dict[str, Any]:
    """The two numbers the fleet-status picture plots for this site: the last sync's age
    (seconds) and the days until the soonest password the site uses expires, client or sync
    (None: unknown, or nothing in use expires). Numbers only: no secret, no name."""
    days = [
        float(row["days_to_expiry"])
        for key in ("client_passwords", "sync_passwords")
        for row in facts.get(key) or []
        if row.get("in_use") and row.get("days_to_expiry") is not None
    ]
    return {
        "sync_age_s": facts.get("last_sync_age_seconds"),
        "expiry_days": min(days) if days else None,
    }


def _node_checks(
    verdict: health.Health,
    conn: SiteConnection,
    namespace: str,
    host: MirrorRoute,
    image: str | None,
) -> list[dict[str, Any]]:
    """Each node's mirror, hosts.toml and a canary pinned to it; one row per node."""
    site = conn.site
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        nodes = node_rollout.preflight(stack, conn, "all")
        for target, node in zip(nodes.targets, nodes.conns, strict=True):
            mirror = st.mirror_configured_task(node, host)
            hosts = st.hosts_toml_task(node, host)
            verdict.add(
                f"mirror on {target.name}", mirror.ok, mirror.value, "re-run provision-site."
            )
            verdict.add(
                f"hosts.toml on {target.name}", hosts.ok, hosts.value, "re-run provision-site."
            )
            trust = st.ca_file_task(node, host)
            if host.https:
                verdict.add(
                    f"tls on {target.name}", trust.ok, trust.value, "re-run provision-site."
                )
            row: dict[str, Any] = {
                "name": target.name,
                "role": target.role,
                "mirror": "ok" if mirror.ok else mirror.value,
                "hosts_toml": "ok" if hosts.ok else hosts.value,
                "tls": ("ok" if trust.ok else trust.value) if host.https else "http",
                "canary_pull": "skipped: nothing to pull yet",
            }
            if image is not None:
                pulled = st.run_canary_task(
                    node, namespace, image, site.pull_secret_name, site.canary_timeout
                )
                verdict.add(
                    f"canary pull on {target.name}",
                    pulled.ok,
                    pulled.reason,
                    "re-run provision-site; check the node's registries.yaml and hosts.toml.",
                )
                row["canary_pull"] = "ok" if pulled.ok else pulled.reason
            rows.append(row)
    return rows


def _sync_password_checks(
    verdict: health.Health, ctx: Any, conn: SiteConnection, cr: str, now: datetime
) -> tuple[list[dict[str, Any]], list[PasswordMeta]]:
    """Each sync password's age and days to expiry; the one the release carries must not be
    within the renewal lead of its expiry (rotate-sync-credential renews it)."""
    carried = st.read_helm_release_task(conn).sync_ref
    metas = az.read_token_passwords(ctx, cr)
    rows = sync_rotation.sync_password_facts(metas, carried.slot if carried else None, now)
    for row in rows:
        if not row.in_use:
            continue
        days = row.days_to_expiry
        ok = days is not None and days > sync_rotation.SYNC_LEAD_DAYS
        value = "never expires" if days is None else f"{row.slot} expires in {days:.0f} day(s)"
        verdict.add("sync password expiry", ok, value, "run rotate-sync-credential for this site.")
    expiries = {m.slot: m.expiry for m in metas}
    out = [{**asdict(r), "expires": _iso(expiries.get(r.slot))} for r in rows]
    return out, metas


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _service_facts(
    verdict: health.Health, facts: dict[str, Any], info: ConnectedRegistryInfo
) -> None:
    """What the service says beyond the health rows: runtime version, login server, last
    activity, the sync result's times, the reported codes and any disk metrics."""
    disk = health.disk_capacity(info.status_details)
    facts.update(
        runtime_version=info.version,
        login_server=info.login_host,
        last_activity=_iso(info.last_activity_time),
        last_sync=_iso(info.last_sync_time),
        last_sync_end=_iso(info.last_sync_end_time),
        status_codes=health.status_codes(info.status_details),
        disk=disk,
    )
    verdict.note("runtime version", info.version)
    # sync state and last successful sync have their own check rows ("sync result", the age)
    verdict.note("last activity", _iso(info.last_activity_time))
    verdict.note("login server", info.login_host)
    if disk is not None:
        verdict.note("disk", f"{disk['available_gib']:g} GiB free of {disk['total_gib']:g} GiB")


def _password_rows(
    passwords: list[PasswordMeta], in_use: list[str], now: datetime
) -> list[dict[str, Any]]:
    """Each client password slot: in use, age and days to expiry (None: never expires)."""
    rows = []
    for p in passwords:
        age = None if p.creation_time is None else (now - p.creation_time).total_seconds()
        rows.append(
            {
                "slot": p.slot,
                "in_use": p.slot in in_use,
                "age_days": None if age is None else round(age / 86400, 2),
                "days_to_expiry": rotation.days_until(p.expiry, now),
                "expires": _iso(p.expiry),
            }
        )
    return rows


def _credentials(
    kind: str, token: str, rows: list[dict[str, Any]], metas: list[PasswordMeta]
) -> list[status_events.Credential]:
    expiries = {m.slot: m.expiry for m in metas}
    return [
        status_events.Credential(
            kind, token, r["slot"], r["days_to_expiry"], expiries.get(r["slot"]), r["in_use"]
        )
        for r in rows
    ]


def _emit_events(
    site_block: str,
    site: str,
    verdict: health.Health,
    facts: dict[str, Any],
    credentials: list[status_events.Credential],
    warning_days: int,
    now: datetime,
) -> list[str]:
    """Health-change and expiring-credential events; the verdict is stored for the next run
    only after the events went out, so a crash in between re-emits rather than loses one."""
    codes = list(facts.get("status_codes") or [])
    previous = status_events.read_previous(site_block)
    change = status_events.health_change(
        previous,
        verdict.healthy,
        site_block,
        site=site,
        reasons=verdict.problems,
        codes=codes,
    )
    events = ([change] if change else []) + status_events.expiring(
        credentials, site_block, site, warning_days
    )
    status_events.emit(events)
    if previous is not verdict.healthy:
        status_events.store_health(site_block, verdict.healthy, codes, now)
    return [e.event for e in events]
