"""rotate-sync-credential: move a site's connected-registry runtime to a fresh sync password.

The state machine is :func:`tasks.sync_rotation.plan_sync_rotation`, re-derived from ARM and the
Helm release (which records the sync slot it carries) on every run, so a crash at any step is
finished by the next run. Order: generate the unused slot → upgrade the release with the new
connection string → the runtime Online in ARM with a sync after the change (else the release is
rolled back and the old slot stays) → revoke the old slot. The slot the release carries is never
regenerated nor revoked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows import checkpoints
from flows.host_keys import pin_site_host_key
from flows.inputs import SiteInputs, load_site_inputs
from flows.locks import locked_site
from flows.report import RunReport, artifact_key
from model.azure_context import AzureContext
from model.errors import PermanentError
from model.site import SiteCheck, SyncCredentialRef
from tasks import rotation, sync_rotation
from tasks.azure import steps as az
from tasks.azure.connection_string import build_sync_connection_string
from tasks.site import steps as st
from tasks.site.connection import SiteConnection, open_site
from tasks.site.plans import release_resource

FLOW = "rotate-sync-credential"


@flow(name=FLOW, flow_run_name="rotate-sync-{site_block}")
def rotate_sync_credential(
    site_block: str,
    parent_block: str,
    lifetime_days: int = sync_rotation.SYNC_PASSWORD_DAYS,
    lead_days: int = sync_rotation.SYNC_LEAD_DAYS,
    force: bool = False,
) -> dict[str, Any]:
    """Rotate the site's sync-token password when the one the Helm release carries is due
    (expires within ``lead_days``), or finish a rotation an earlier run left half done.
    Parameters are names and numbers only.

    Args:
        site_block: EdgeSite block name of the site.
        parent_block: ParentRegistry block name (the parent registry and its credentials).
        lifetime_days: Days the new sync password stays valid.
        lead_days: Rotate when the password in use expires within this many days.
        force: Rotate now even if not due (a leaked or suspect password); same steps, the old
            password is revoked only after the runtime synced with the new one.
    """
    inputs = load_site_inputs(site_block, parent_block)
    # The propagation allowance of a sync password is the release's readiness wait.
    life = rotation.validate_lifetime(lifetime_days, lead_days, inputs.site.ready_timeout)
    report = RunReport(FLOW, inputs.site.name)
    outcome = "failed"
    try:
        with locked_site(inputs) as ctx, open_site(inputs.site) as conn:
            if conn.recorded_host_key:
                pin_site_host_key(inputs, conn.recorded_host_key, report)
            outcome = _rotate(ctx, conn, inputs, life, lifetime_days, report, force)
    finally:
        create_table_artifact(
            key=artifact_key("rotate-sync", inputs.site.name),
            table=report.table(),
            description=f"rotate-sync-credential {inputs.site.name}: {outcome}",
        )
    get_run_logger().info("%s: %s (%d write(s))", inputs.site.name, outcome, report.writes)
    return report.summary(outcome=outcome)


def _rotate(
    ctx: AzureContext,
    conn: SiteConnection,
    inputs: SiteInputs,
    life: rotation.Lifetime,
    lifetime_days: int,
    report: RunReport,
    force: bool,
) -> str:
    site, cr = inputs.site, inputs.cr_name
    resource = release_resource(site)

    def reached(step: str) -> None:
        checkpoints.reached(FLOW, site.name, step)

    release = st.read_helm_release_task(conn)
    if not release.exists:
        raise PermanentError(
            f"no Helm release {site.release_name} to rotate the sync credential of",
            resource=resource,
            fix="run provision-site first",
        )
    recorded = release.sync_ref
    carried = (
        rotation.ref_from_record(recorded.slot, recorded.created)
        if recorded is not None and recorded.token == cr
        else None
    )
    passwords = az.read_token_passwords(ctx, cr)
    now = datetime.now(UTC)
    plan = sync_rotation.plan_sync_rotation(
        passwords, carried, now, life.lead, force=force, resource=resource
    )
    report.note("plan", f"tokens/{cr}", f"{plan.action}: {plan.reason}")
    reached("planned")
    if plan.action == "noop":
        return "not due"

    def synced(since: datetime) -> SiteCheck:
        info = az.read_connected_registry(ctx, cr)
        if info is None:
            return SiteCheck(False, "connected registry not found")
        check = sync_rotation.synced_since(
            info.connection_state, info.last_sync_time, info.last_successful_sync_time, since
        )
        return SiteCheck(check.ok, check.reason)

    if plan.generate:
        info = az.read_connected_registry(ctx, cr)
        gateway = (info.gateway_endpoint if info else None) or ""
        gen = az.generate_password(
            ctx, cr, plan.target, expiry=rotation.expiry_for(now, lifetime_days)
        )
        ref = SyncCredentialRef(cr, gen.meta.slot, rotation.created_text(gen.meta.creation_time))
        connection_string = build_sync_connection_string(
            cr, gen.username, gen.password, gateway, "https"
        )
        report.note(
            "generate",
            f"tokens/{cr}/{plan.target}",
            f"generated {plan.target} (expires {gen.meta.expiry}); {plan.carried} stays valid "
            "until the runtime syncs with it",
            changed=True,
            writes=1,
        )
        del gen
        reached("generated")
        # Strictly after this instant: a sync the old runtime did before the upgrade is no proof.
        since = datetime.now(UTC)
        # Proven Ready and Online with a sync since the change, else rolled back to the release
        # carrying the old slot (still valid) and the run fails naming it.
        report.step(
            "helm-release",
            st.ensure_helm_release_proven_task(conn, ref, connection_string, lambda: synced(since)),
        )
        del connection_string
        reached("upgraded")
    else:
        # finish: the release already carries the new slot (a crash after the upgrade). The
        # upgrade came after that slot was generated; a sync newer than its creation is the
        # closest bound ARM gives (UNCONFIRMED whether a real runtime syncs again on its own).
        created = next((p.creation_time for p in passwords if p.slot == plan.target), None)
        since = created or now
    check = synced(since)
    report.note("synced", f"connectedRegistries/{cr}", check.value)
    if not check.ok:
        raise PermanentError(
            f"connected registry {cr} is not Online with a sync after the change "
            f"({check.value}); {plan.revoke} is kept",
            resource=f"connectedRegistries/{cr}",
            fix="check site-status and the runtime's logs, then re-run rotate-sync-credential",
        )
    reached("synced")
    if plan.revoke is not None:
        report.step("revoke", az.revoke_password(ctx, cr, plan.revoke, step="sync-old-slot"))
        reached("revoke")
    if force and plan.action == "rotate":
        return "rotated (forced)"
    return {"rotate": "rotated", "resume": "rotated (resumed)", "finish": "old slot revoked"}[
        plan.action
    ]
