"""rotate-sync-credential: move a site's connected-registry runtime to a fresh sync password.

The state machine is :func:`tasks.sync_rotation.plan_sync_rotation`, re-derived from ARM and the
Helm release (which records the sync slot it carries) on every run, so a crash at any step is
finished by the next run. Order: generate the unused slot → upgrade the release with the new
connection string → the runtime Online in ARM with a sync after the change (else the release is
rolled back and the old slot stays) → revoke the old slot. The slot the release carries is never
regenerated nor revoked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows import checkpoints, plan_runs, site_tls
from flows.block_refs import ParentBlock, SiteBlock, block_name
from flows.host_keys import pin_site_host_key
from flows.inputs import SiteInputs, load_site_inputs
from flows.locks import locked_site
from flows.report import RunReport, artifact_key
from model.azure_context import AzureContext
from model.errors import PermanentError, TransientError
from model.site import SiteCheck, SyncCredentialRef
from tasks import rotation, sync_rotation
from tasks.azure import steps as az
from tasks.azure.connection_string import build_sync_connection_string
from tasks.site import helm_values
from tasks.site import steps as st
from tasks.site.connection import SiteConnection, open_site
from tasks.site.plans import canary_image, release_resource

FLOW = "rotate-sync-credential"


@flow(name=FLOW, flow_run_name=plan_runs.run_name("rotate-sync-{site_block}"))
def rotate_sync_credential(
    site_block: SiteBlock,
    parent_block: ParentBlock,
    lifetime_days: int = sync_rotation.SYNC_PASSWORD_DAYS,
    lead_days: int = sync_rotation.SYNC_LEAD_DAYS,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Rotate the site's sync-token password when the one the Helm release carries is due
    (expires within ``lead_days``), or finish a rotation an earlier run left half done.
    Parameters are names and numbers only.

    Args:
        site_block: The EdgeSite block of the site (lowercase letters, digits, `-`).
            Required. Example: `plant01`.
        parent_block: The ParentRegistry block: the parent registry and its
            credentials. Required. Example: `contoso`.
        lifetime_days: Days the new sync password stays valid. Default: `365`. Example:
            `180`.
        lead_days: Rotate when the password in use expires within this many days. Default:
            `30`. Example: `60`.
        force: Rotate now even if not due (a leaked or suspect password); same steps, the old
            password is revoked only after the runtime synced with the new one. Default: off.
            Example: on after a leak.
        dry_run: List the plan (every step this run would take, with its reason) and write
            nothing. Default: off. Example: on, to see whether a rotation is due.
    """
    site_block = block_name(site_block, "site_block")
    parent_block = block_name(parent_block, "parent_block")
    if dry_run:
        plan_runs.mark_plan()
    inputs = load_site_inputs(site_block, parent_block)
    # The propagation allowance of a sync password is the release's readiness wait.
    life = rotation.validate_lifetime(lifetime_days, lead_days, inputs.site.ready_timeout)
    report = RunReport(FLOW, inputs.site.name, dry_run=dry_run)
    outcome = "failed"
    blocked: plan_runs.PlanBlocked | None = None
    try:
        with locked_site(inputs) as ctx, open_site(inputs.site) as conn:
            if conn.recorded_host_key:
                pin_site_host_key(inputs, conn.recorded_host_key, report)
            outcome = _rotate(ctx, conn, inputs, life, lifetime_days, report, force, dry_run)
            # The same schedule renews the server certificate (https) at two thirds of its
            # lifetime: it is the other credential a Helm upgrade carries to the runtime.
            renewed = _renew_certificate(ctx, conn, inputs, report, dry_run)
            if renewed:
                outcome = f"{outcome}; {renewed}"
    except PermanentError as exc:
        if not dry_run:
            raise
        blocked = plan_runs.stop(report, exc)  # where the real run would stop: the first row
        outcome = f"blocked: {blocked}"
    finally:
        create_table_artifact(
            key=artifact_key("rotate-sync", site_block),
            table=report.table(),
            description=f"{'dry run of ' if dry_run else ''}rotate-sync-credential "
            f"{site_block}: {outcome}",
        )
    get_run_logger().info("%s: %s (%d write(s))", inputs.site.name, outcome, report.writes)
    if dry_run:
        return plan_runs.finish(report.summary(outcome=outcome), blocked, outcome)
    return report.summary(outcome=outcome)


def _rotate(
    ctx: AzureContext,
    conn: SiteConnection,
    inputs: SiteInputs,
    life: rotation.Lifetime,
    lifetime_days: int,
    report: RunReport,
    force: bool,
    dry_run: bool = False,
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
    if dry_run:
        _list_plan(report, plan, cr)
        return "planned"

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
        try:
            report.step(
                "helm-release",
                st.ensure_helm_release_proven_task(
                    conn, ref, connection_string, lambda: synced(since)
                ),
            )
        except (PermanentError, TransientError) as exc:
            del connection_string
            if not _drop_unused_slot(ctx, conn, cr, plan, report):
                raise
            raise _kept_old_slot(exc, plan) from exc
        del connection_string
        reached("upgraded")
    else:
        # finish: the release already carries the new slot (a crash after the upgrade). The
        # upgrade came after that slot was generated; a sync newer than its creation is the
        # closest bound ARM gives (UNCONFIRMED whether a real runtime syncs again on its own).
        created = next((p.creation_time for p in passwords if p.slot == plan.target), None)
        since = created or now
    # After a proven upgrade this holds at once; after a crash it may still be coming.
    check = _wait(lambda: synced(since), site.ready_timeout)
    report.note("synced", f"connectedRegistries/{cr}", check.value)
    if not check.ok:
        raise PermanentError(
            f"connected registry {cr} is not Online with a successful sync after "
            f"{since.isoformat()} within {site.ready_timeout:.0f}s ({check.value}); "
            f"{plan.revoke} is kept",
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


def _renew_certificate(
    ctx: AzureContext,
    conn: SiteConnection,
    inputs: SiteInputs,
    report: RunReport,
    dry_run: bool,
) -> str | None:
    """Renew the served certificate into the idle slot when due: upgrade the release to it
    (the kept connection string; proven Ready and Online, else rolled back to the old slot),
    prove a pull through it, then delete the old slot. None for a site served over http."""
    site, cr = inputs.site, inputs.cr_name
    release = st.read_helm_release_task(conn)
    serving = helm_values.recorded_tls_secret(release.values)
    if site_tls.serving_transport(release) != "https" or release.sync_ref is None:
        return None

    done = report.done

    host = st.registry_host_task(conn)
    info = az.read_connected_registry(ctx, cr)
    state = site_tls.prepare(
        conn, cr, release, info, site_tls.service_ip(site, host), dry_run, done
    )
    if state.tls_secret == serving:
        return None
    if dry_run:
        return "certificate renewal planned"

    def online() -> SiteCheck:
        now_info = az.read_connected_registry(ctx, cr)
        current = now_info.connection_state if now_info else None
        return SiteCheck(current in ("Online", "Syncing"), f"connectionState {current}")

    done(
        st.ensure_helm_release_proven_task(
            conn, release.sync_ref, None, online, tls_secret=state.tls_secret
        )
    )
    repos = az.client_repositories(ctx, inputs.client_token)
    if repos:
        image = canary_image(host, repos[0])
        pulled = st.run_canary_task(
            conn, inputs.app_namespaces[0], image, site.pull_secret_name, site.canary_timeout
        )
        report.note("canary", image, pulled.reason)
        if not pulled.ok:
            raise PermanentError(
                f"pulls through the renewed certificate {state.tls_secret} fail: "
                f"{pulled.reason}; the old certificate's Secret is kept",
                resource=release_resource(site),
                fix="check site-status; `helm rollback` restores the old certificate",
            )
    site_tls.retire_idle_slot(conn, state.tls_secret, dry_run, done)
    return f"certificate renewed ({state.tls_secret})"


def _wait(check: Callable[[], SiteCheck], timeout: float) -> SiteCheck:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except TransientError as exc:
            result = SiteCheck(False, str(exc))
        if result.ok or time.monotonic() >= deadline:
            return result
        time.sleep(min(1.0, timeout / 20))


def _list_plan(report: RunReport, plan: sync_rotation.SyncRotationPlan, cr: str) -> None:
    """The dry run: the steps the real run takes, in its order, each with why; no write."""
    if plan.generate:
        report.note(
            "generate",
            f"tokens/{cr}/{plan.target}",
            f"would generate {plan.target} ({plan.carried} stays valid meanwhile)",
        )
    if plan.upgrade:
        report.note(
            "helm-release",
            f"tokens/{cr}/{plan.target}",
            f"would upgrade the release to the connection string of {plan.target}, then wait "
            "for the runtime Ready and the connected registry Online with a sync after the "
            f"upgrade (else roll back to {plan.carried})",
        )
    if plan.revoke is not None:
        report.note(
            "revoke",
            f"tokens/{cr}/{plan.revoke}",
            f"would revoke {plan.revoke} once the runtime synced with {plan.target}",
        )


def _drop_unused_slot(
    ctx: AzureContext,
    conn: SiteConnection,
    cr: str,
    plan: sync_rotation.SyncRotationPlan,
    report: RunReport,
) -> bool:
    """The upgrade failed (and was rolled back): when the release carries the old slot again,
    the freshly generated one is held by nobody, so it is revoked rather than left live (its
    value is gone with this run; the next rotation generates it anew). When the release does
    not carry the old slot (a rollback that failed too) nothing is revoked, since the runtime
    may hold the new one; False then."""
    try:
        recorded = st.read_helm_release_task(conn).sync_ref
    except (PermanentError, TransientError):
        return False
    if recorded is None or recorded.token != cr or recorded.slot != plan.carried:
        return False
    report.step("revoke-unused", az.revoke_password(ctx, cr, plan.target, step="sync-unused-slot"))
    return True


def _kept_old_slot(exc: Exception, plan: sync_rotation.SyncRotationPlan) -> PermanentError:
    text, resource, fix = str(exc), getattr(exc, "resource", ""), getattr(exc, "fix", "")
    if fix and text.endswith(f" Fix: {fix}"):
        text = text[: -len(f" Fix: {fix}")]
    return PermanentError(
        f"{text}; the runtime keeps the old connection string ({plan.carried}, still valid, "
        f"not revoked) and the unused {plan.target} was revoked",
        resource=resource,
        # The rollback's own fix speaks of provision-site; here the chart was not the change.
        fix="check site-status and the connected registry's logs (can it reach and sync with "
        "its parent?), then re-run rotate-sync-credential",
    )
