"""provision-site: one edge site from nothing (or from any partial state) to pulling images.

Composition only: every decision is in a pure module (tasks.rotation, flows.plan, the steps'
own desired-state diffs); every side effect is a task from tasks/*/steps.py.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows import checkpoints
from flows.host_keys import pin_site_host_key
from flows.inputs import SiteInputs, load_site_inputs
from flows.locks import site_lock
from flows.models import ProvisionSpec
from flows.report import RunReport, artifact_key
from model.azure_context import AzureContext
from model.errors import InputError, PermanentError
from model.result import StepResult
from tasks import rotation
from tasks.azure import steps as az
from tasks.azure.connection_string import build_sync_connection_string
from tasks.azure.desired import ConnectedRegistrySpec
from tasks.azure.ops import ConnectedRegistryInfo, PasswordMeta
from tasks.site import helm_values
from tasks.site import steps as st
from tasks.site.canary import canary_image
from tasks.site.connection import SiteConnection
from tasks.site.credentials import ReleaseRecord
from tasks.site.helm_values import SyncCredentialRef
from tasks.site.ops import PullSecretMeta
from tasks.site.registries_yaml import NodeAuth

if TYPE_CHECKING:
    from blocks.edge_site import EdgeSite

FLOW = "provision-site"


def _cr_spec(inputs: SiteInputs, spec: ProvisionSpec) -> ConnectedRegistrySpec:
    try:
        return ConnectedRegistrySpec(
            name=inputs.cr_name,
            mode=spec.mode,
            sync_schedule=spec.sync_schedule,
            sync_window=spec.sync_window,
            message_ttl=spec.message_ttl,
        )
    except ValueError as exc:  # pragma: no cover - InputError is raised for every known case
        raise InputError(str(exc), resource="spec") from None


@flow(
    name=FLOW,
    flow_run_name="provision-{site_block}",
    task_runner=ThreadPoolTaskRunner(max_workers=6),  # type: ignore[arg-type]
    validate_parameters=True,
)
def provision_site(site_block: str, parent_block: str, spec: ProvisionSpec) -> dict[str, Any]:
    """Provision one site: in ARM the sync scope map, token and connected registry, beside
    them the client scope map and token (attached to the connected registry); on the node the
    Helm release, registries.yaml mirror and pull secrets; then a canary pull.

    Parameters are block names, never secrets. A re-run on a converged site writes nothing.
    ``spec.dry_run`` writes nothing and reports the plan instead.

    Args:
        site_block: EdgeSite block name of the site (its SSH, node paths and app namespaces).
        parent_block: ParentRegistry block name (the parent registry and its credentials).
        spec: What to provision: namespaces, sync mode and schedule, client token, dry run.
    """
    logger = get_run_logger()
    # Everything below is refused before the first side effect.
    inputs = load_site_inputs(
        site_block,
        parent_block,
        client_token_name=spec.client_token_name,
        app_namespaces=spec.app_namespaces,
    )
    cr_spec = _cr_spec(inputs, spec)
    report = RunReport(FLOW, inputs.site.name)
    outcome = "failed"
    try:
        with site_lock(inputs.parent, inputs.site.name):
            ctx = inputs.parent.azure_context()
            try:
                if spec.dry_run:
                    from flows.plan_run import plan_provision

                    plan = plan_provision(ctx, inputs, spec, cr_spec)
                    create_markdown_artifact(
                        key=artifact_key("provision-plan", inputs.site.name),
                        markdown=plan.markdown(),
                        description=f"dry run of provision-site for {inputs.site.name}",
                    )
                    outcome = "planned"
                    return plan.summary()
                _converge(ctx, inputs, spec, cr_spec, report)
                outcome = "converged" if report.writes else "already converged"
            finally:
                ctx.close()
    finally:
        if not spec.dry_run:
            create_table_artifact(
                key=artifact_key("provision", inputs.site.name),
                table=report.table(),
                description=f"provision-site {inputs.site.name}: {outcome}, "
                f"{report.writes} write(s)",
            )
    logger.info("%s: %s with %d write(s)", inputs.site.name, outcome, report.writes)
    return report.summary(outcome=outcome)


def _converge(
    ctx: AzureContext,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    cr_spec: ConnectedRegistrySpec,
    report: RunReport,
) -> None:
    site, cr = inputs.site, inputs.cr_name

    def done(step: str, result: StepResult) -> None:
        report.step(step, result)
        checkpoints.reached(FLOW, site.name, step)

    with ExitStack() as stack:
        # The node side needs nothing from Azure until the connection string exists: connect,
        # create the namespace and read what the release records while ARM is worked on.
        conn_f = st.open_site_task.submit(stack, site)
        ns_f = st.ensure_namespace_task.submit(conn_f, site.namespace)  # type: ignore[call-overload]
        release_f = st.read_release_record_task.submit(conn_f)  # type: ignore[call-overload]

        try:
            repos, info, sync_passwords = _azure_side(ctx, inputs, spec, cr_spec, report, done)
        except BaseException:
            # Never close the connection under a running node step: let them finish first.
            wait([conn_f, ns_f, release_f])
            key = conn_f.result().recorded_host_key if conn_f.state.is_completed() else None
            if key:  # the key was accepted: pin it even though this run fails
                pin_site_host_key(inputs, key, report)
            raise
        gateway = info.gateway_endpoint or ""

        conn: SiteConnection = conn_f.result()
        if conn.recorded_host_key:
            pin_site_host_key(inputs, conn.recorded_host_key, report)
        done("namespace", ns_f.result())
        release: ReleaseRecord | None = release_f.result()
        recorded = release.sync_ref if release else None
        recorded_ref = (
            rotation.ref_from_record(recorded.slot, recorded.created) if recorded else None
        )
        now = datetime.now(UTC)
        decision = rotation.decide_sync_credential(
            recorded_ref,
            sync_passwords,
            now,
            activated=info.activation_status == "Active",
        )
        if decision.keep:
            assert release is not None and recorded is not None and recorded_ref is not None
            if _apply_chart_settings(conn, site, release, recorded, report, done):
                report.note("sync-credential", f"tokens/{cr}/{decision.slot}", decision.reason)
            else:
                decision = rotation.sync_slot_when_unreadable(recorded_ref, sync_passwords, now)
        if not decision.keep:
            gen = az.generate_password(ctx, cr, decision.slot)
            report.note(
                "sync-credential",
                f"tokens/{cr}/{decision.slot}",
                decision.reason,
                changed=True,
                writes=1,
            )
            checkpoints.reached(FLOW, site.name, "sync-credential")
            connection_string = build_sync_connection_string(
                cr, gen.username, gen.password, gateway, "https"
            )
            ref = SyncCredentialRef(
                token=cr, slot=gen.meta.slot, created=rotation.created_text(gen.meta.creation_time)
            )
            done("helm-release", st.helm_install_task(conn, site, connection_string, sync_ref=ref))
            del connection_string, gen
        st.wait_deployment_ready_task(conn, site.namespace, site.release_name, site.ready_timeout)
        if not decision.keep:
            _retire_old_sync_slot(ctx, cr, decision.slot, sync_passwords, report)
        host = st.registry_host_task(conn, site)

        username, password, meta = _client_credential(ctx, conn, inputs, spec, host, report)
        node_auth = (
            NodeAuth(username, password, meta.slot, meta.created)
            if site.auth_model == "node" and password is not None and meta is not None
            else None
        )
        mirror = st.ensure_registries_yaml_task(conn, site, host, node_auth)
        done("registries-yaml", mirror)
        if mirror.changed or mirror.details.get("restart_pending"):
            st.restart_distribution_task(conn, site)
            st.verify_hosts_toml_task(conn, site, host)
            report.note(
                "restart",
                site.service_name,
                f"{site.service_name} restarted; hosts.toml routes to http://{host}",
                changed=True,
                writes=1,
            )
        if password is not None and meta is not None:
            done(
                "pull-secrets",
                st.ensure_pull_secrets_task(
                    conn,
                    inputs.app_namespaces,
                    site.pull_secret_name,
                    host,
                    username,
                    password,
                    meta,
                    patch_default_service_account=site.patch_default_service_account,
                ),
            )
        del password
        if not repos:
            report.note("canary", site.name, "no repository synced yet; canary skipped")
            return
        image = canary_image(host, repos[0])
        result = st.canary_until_ok_task(
            conn, inputs.app_namespaces[0], image, site.pull_secret_name, site.canary_timeout
        )
        report.note("canary", f"{inputs.app_namespaces[0]}/{image}", result.reason)
        checkpoints.reached(FLOW, site.name, "canary")


def _apply_chart_settings(
    conn: SiteConnection,
    site: EdgeSite,
    release: ReleaseRecord,
    recorded: SyncCredentialRef,
    report: RunReport,
    done: Callable[[str, StepResult], None],
) -> bool:
    """The release keeps its sync credential: Helm runs only when the chart settings changed
    (then once, with the connection string the release already has). False when that string
    cannot be read back, so the caller generates a fresh sync password instead."""
    wanted = helm_values.desired_digest(site, recorded)
    rel = f"{site.namespace}/{site.release_name}"
    if release.digest == wanted:
        report.note(
            "helm-release",
            rel,
            f"values unchanged ({wanted[:19]}) and the recorded sync credential is kept; "
            "not re-installed",
        )
        return True
    upgraded = st.helm_upgrade_kept_credential_task(conn, site, recorded)
    if upgraded is None:
        get_run_logger().warning(
            "%s: chart values changed but the kept connection string cannot be read back; "
            "a fresh sync password is generated for the upgrade",
            rel,
        )
        return False
    done("helm-release", upgraded)
    return True


def _retire_old_sync_slot(
    ctx: AzureContext,
    cr: str,
    new_slot: rotation.Slot,
    before: list[PasswordMeta],
    report: RunReport,
) -> None:
    """Once the runtime is Online with the new sync password, the other slot is dead weight
    (nothing uses it) and a live credential nobody tracks: revoke it."""
    old = rotation.other_slot(new_slot)
    if not any(p.slot == old for p in before):
        return
    info = az.read_connected_registry(ctx, cr)
    if info is None or info.connection_state not in ("Online", "Syncing"):
        report.note(
            "sync-old-slot",
            f"tokens/{cr}/{old}",
            f"kept: the runtime is not Online yet ({info and info.connection_state})",
        )
        return
    report.step("sync-old-slot", az.revoke_password(ctx, cr, old))


def _azure_side(
    ctx: AzureContext,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    cr_spec: ConnectedRegistrySpec,
    report: RunReport,
    done: Callable[[str, StepResult], None],
) -> tuple[list[str], ConnectedRegistryInfo, list[PasswordMeta]]:
    """Repositories, preflight, then the sync chain (scope map, token, connected registry) beside
    the client scope map and token; the client token attached; then reads."""
    cr = inputs.cr_name
    repos = az.list_repositories(ctx, spec.namespaces, allow_empty=spec.allow_empty_namespaces)
    report.note(
        "list-repositories",
        f"registries/{ctx.registry}",
        f"{len(repos)} repositories under {', '.join(spec.namespaces)}",
    )
    parent = az.preflight_parent(
        ctx,
        repositories=repos,
        client_token_count=1,
        enable_data_endpoint=spec.enable_data_endpoint,
    )
    report.note(
        "preflight-parent",
        f"registries/{ctx.registry}",
        parent.message,
        changed=parent.changed,
        writes=int(parent.changed),
    )
    # The client scope map and token need only the repository list: they converge beside the
    # sync chain, and the token is attached once the connected registry exists.
    client = inputs.client_token
    client_map_f = az.ensure_client_scope_map.submit(ctx, client, repos)  # type: ignore[call-overload]
    client_token_f = az.ensure_client_token.submit(  # type: ignore[call-overload]
        ctx, client, client, wait_for=[client_map_f]
    )
    try:
        done("sync-scope-map", az.ensure_sync_scope_map(ctx, cr, repos, spec.mode))
        done("sync-token", az.ensure_sync_token(ctx, cr))
        done("connected-registry", az.ensure_connected_registry(ctx, cr_spec))
        done("client-scope-map", client_map_f.result())
        done("client-token", client_token_f.result())
    finally:
        wait([client_map_f, client_token_f])  # never leave a write running behind a failure
    done("attach-client-token", az.attach_client_token(ctx, cr, client))
    info = az.read_connected_registry(ctx, cr)
    if info is None or not info.gateway_endpoint:
        raise PermanentError(
            "connected registry has no parent gateway endpoint after creation",
            resource=f"connectedRegistries/{cr}",
            fix="check that the parent's dedicated data endpoint is enabled",
        )
    sync_passwords = az.read_token_passwords(ctx, cr)
    return repos, info, sync_passwords


def _client_credential(
    ctx: AzureContext,
    conn: SiteConnection,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    host: str,
    report: RunReport,
) -> tuple[str, Any, PullSecretMeta | None]:
    """The client credential to put in pull secrets: kept when a pull secret holds a live one
    (value read back from it only if some namespace misses it), else newly generated."""
    site, token = inputs.site, inputs.client_token
    consumers: dict[str, PullSecretMeta | None] = dict(
        st.read_pull_secrets_task(conn, inputs.app_namespaces, site.pull_secret_name)
    )
    if site.auth_model == "node":
        consumers[rotation.NODE_CONSUMER] = st.read_node_credential_task(conn, site, host)
    refs = rotation.refs_of(consumers, token)
    passwords = az.read_token_passwords(ctx, token)
    now = datetime.now(UTC)
    decision = rotation.decide_client_password(refs, passwords, now)
    if not decision.keep:
        gen = az.generate_password(
            ctx,
            token,
            decision.slot,
            expiry=rotation.expiry_for(now, spec.client_password_days),
        )
        report.note(
            "client-password",
            f"tokens/{token}/{decision.slot}",
            decision.reason,
            changed=True,
            writes=1,
        )
        checkpoints.reached(FLOW, site.name, "client-password")
        meta = PullSecretMeta(
            token=token, slot=gen.meta.slot, created=rotation.created_text(gen.meta.creation_time)
        )
        return gen.username, gen.password, meta
    report.note("client-password", f"tokens/{token}/{decision.slot}", decision.reason)
    holders = sorted(
        ns
        for ns, r in refs.items()
        if r is not None
        and r.slot == decision.slot
        and rotation.ref_is_valid(r, rotation.normalise_passwords(passwords), now)
    )
    in_namespaces = [h for h in holders if h != rotation.NODE_CONSUMER]
    if len(in_namespaces) == len(inputs.app_namespaces) and site.auth_model != "node":
        return token, None, None  # every namespace already holds it: nothing to write
    source = rotation.preferred_source(holders)
    username, password = st.read_consumer_password_task(conn, source, host, decision.slot, FLOW)
    holder_meta = consumers[source]
    assert holder_meta is not None
    return username, password, holder_meta
