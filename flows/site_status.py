"""site-status: is the site's connected registry healthy, and if not, what to do about it.

Read-only apart from a short-lived canary pod. The verdict comes from flows.health (pure); the
run fails when the site is unhealthy, so schedules and automations see it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows import health
from flows.inputs import load_site_inputs
from flows.report import artifact_key
from model.errors import AcrEdgeError, PermanentError
from tasks import rotation
from tasks.azure import steps as az
from tasks.azure.schedule import parse_duration
from tasks.site import steps as st
from tasks.site.connection import open_site
from tasks.site.plans import canary_image

FLOW = "site-status"
LEAD = timedelta(days=14)


class SiteUnhealthy(PermanentError):
    """The site answered, and what it said is wrong; the message lists each problem + fix."""


@flow(name=FLOW, flow_run_name="status-{site_block}")
def site_status(
    site_block: str, parent_block: str, client_token_name: str | None = None
) -> dict[str, Any]:
    """Connection state, activation, last sync vs schedule, statusDetails with fixes, client
    password expiry, Helm release, pods, mirror and hosts.toml, and a canary pull.

    Args:
        site_block: EdgeSite block name of the site to check.
        parent_block: ParentRegistry block name (the parent registry and its credentials).
        client_token_name: Client token whose passwords to check; default `<site>-client`.
    """
    inputs = load_site_inputs(site_block, parent_block, client_token_name=client_token_name)
    site, cr, token = inputs.site, inputs.cr_name, inputs.client_token
    verdict = health.Health()
    now = datetime.now(UTC)
    facts: dict[str, Any] = {"site": site.name}
    ctx = inputs.parent.azure_context()
    try:
        info = az.read_connected_registry(ctx, cr)
        if info is None:
            verdict.add("connected registry", False, "not found", "run provision-site.")
        else:
            health.check_connection(verdict, info.connection_state, info.activation_status)
            window = parse_duration(info.sync_window) if info.sync_window else None
            sync = health.check_sync_age(
                info.last_sync_time,
                info.sync_schedule or health.CONTINUOUS,
                window,
                now,
                activated=info.activation_status == "Active",
            )
            verdict.add(
                "last sync",
                sync.ok,
                sync.message,
                "check the runtime pod logs and the node's link to the parent.",
            )
            health.check_status_details(verdict, info.status_details)
            facts.update(
                connection_state=info.connection_state,
                activation=info.activation_status,
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
            release = st.release_status_task(conn)
            verdict.add("helm release", release.ok, release.value, "re-run provision-site.")
            pods = st.deployment_ready_task(conn)
            verdict.add(
                "runtime pods",
                pods.ok,
                pods.value,
                f"kubectl -n {site.namespace} describe deploy {site.release_name}",
            )
            if release.ok:
                host = st.registry_host_task(conn)
                for name, fact in (
                    ("mirror", st.mirror_configured_task(conn, host)),
                    ("hosts.toml", st.hosts_toml_task(conn, host)),
                ):
                    verdict.add(name, fact.ok, fact.value, "re-run provision-site.")
                repos = az.client_repositories(ctx, token)
                if repos and in_use:
                    pulled = st.run_canary_task(
                        conn,
                        inputs.app_namespaces[0],
                        canary_image(host, repos[0]),
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
    finally:
        ctx.close()
    create_table_artifact(
        key=artifact_key("site-status", site.name),
        table=verdict.table(),
        description=f"site-status {site.name}: "
        + ("healthy" if verdict.healthy else f"{len(verdict.problems)} problem(s)"),
    )
    facts["healthy"] = verdict.healthy
    facts["checks"] = verdict.table()
    if not verdict.healthy:
        raise SiteUnhealthy(
            f"site {site.name} is unhealthy: " + " | ".join(verdict.problems),
            resource=f"site {site.name}",
        )
    get_run_logger().info("site %s is healthy", site.name)
    return facts
