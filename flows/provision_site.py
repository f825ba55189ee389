"""provision-site: one edge site from nothing (or from any partial state) to pulling images.

Composition only, and one composition for the real run and the dry run: every step is called
with ``dry_run=spec.dry_run`` and reads, plans (a pure decision with its reason) and, unless
dry, applies exactly that plan. The dry run therefore lists the rows the real run performs. In
a dry run the secret steps (sync credential, client password, a Helm release with a new
connection string) are metadata rows only: nothing is generated or written, and a step that
depends on a resource the run would create is planned from the facts available.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner
from pydantic import SecretStr

from flows import checkpoints
from flows.host_keys import fingerprint, pin_site_host_key
from flows.inputs import SiteInputs, load_site_inputs
from flows.locks import site_lock
from flows.models import ProvisionSpec
from flows.plan import MASK, PROVISIONAL, ProvisionPlan, helm_rows
from flows.report import RunReport, artifact_key
from model.azure import ConnectedRegistryInfo, PasswordMeta
from model.azure_context import AzureContext
from model.errors import InputError, PermanentError
from model.plan import Change
from model.result import StepResult
from model.site import NodeAuth, PullSecretMeta, ReleaseFact, SyncCredentialRef
from tasks import rotation
from tasks.azure import steps as az
from tasks.azure.connection_string import build_sync_connection_string
from tasks.azure.desired import plan_password
from tasks.azure.spec import ConnectedRegistrySpec
from tasks.site import helm_values
from tasks.site import steps as st
from tasks.site.connection import SiteConnection
from tasks.site.plans import canary_image

FLOW = "provision-site"
Done = Callable[[StepResult], StepResult]


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
    ``spec.dry_run`` runs the same steps without their applies and reports the plan.

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
    plan = ProvisionPlan(inputs.site.name, report.rows, report.details)
    outcome = "failed"
    try:
        with site_lock(inputs.site.name):
            ctx = inputs.parent.azure_context()
            try:
                _provision(ctx, inputs, spec, cr_spec, report, plan)
            finally:
                ctx.close()
        if spec.dry_run:
            outcome = "planned"
        else:
            outcome = "converged" if report.writes else "already converged"
    finally:
        if spec.dry_run:
            create_markdown_artifact(
                key=artifact_key("provision-plan", inputs.site.name),
                markdown=plan.markdown(),
                description=f"dry run of provision-site for {inputs.site.name}: {outcome}",
            )
        else:
            create_table_artifact(
                key=artifact_key("provision", inputs.site.name),
                table=report.table(),
                description=f"provision-site {inputs.site.name}: {outcome}, "
                f"{report.writes} write(s)",
            )
    if spec.dry_run:
        logger.info("%s: planned %d change(s), wrote nothing", inputs.site.name, plan.writes)
        return plan.summary()
    logger.info("%s: %s with %d write(s)", inputs.site.name, outcome, report.writes)
    return report.summary(outcome=outcome)


def _provisional(step: str, resource: str, action: str, reason: str, waits_for: str) -> Change:
    """A dry run's row for a step whose input a planned change creates (its reason cannot name
    what does not exist yet)."""
    return Change(step, resource, action, reason, shown={PROVISIONAL: waits_for})


def _provision(
    ctx: AzureContext,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    cr_spec: ConnectedRegistrySpec,
    report: RunReport,
    plan: ProvisionPlan,
) -> None:
    site, dry = inputs.site, spec.dry_run

    def done(result: StepResult) -> StepResult:
        if dry and not result.planned:  # converge returns a dry run's no-op as it is
            result = dataclasses.replace(result, planned=True)
        report.step(result.step, result)
        checkpoints.reached(FLOW, site.name, result.step)
        return result

    with ExitStack() as stack:
        # The node side needs nothing from Azure until the connection string exists: connect,
        # plan/create the namespace and read the release while ARM is worked on.
        conn_f = st.open_site_task.submit(stack, site)
        ns_f = st.ensure_namespace_task.submit(conn_f, site.namespace, dry_run=dry)  # type: ignore[call-overload]
        release_f = st.read_helm_release_task.submit(conn_f)  # type: ignore[call-overload]
        try:
            repos, info, sync_passwords = _azure_side(ctx, inputs, spec, cr_spec, report, done)
        except BaseException:
            # Never close the connection under a running node step: let them finish first.
            wait([conn_f, ns_f, release_f])
            key = conn_f.result().recorded_host_key if conn_f.state.is_completed() else None
            if key:  # the key was accepted: pin it even though this run fails
                _host_key(inputs, key, report, dry)
            raise
        conn: SiteConnection = conn_f.result()
        if conn.recorded_host_key:
            _host_key(inputs, conn.recorded_host_key, report, dry)
        done(ns_f.result())
        release: ReleaseFact = release_f.result()
        _sync_side(ctx, conn, inputs, info, sync_passwords, release, dry, plan, done)
        # Before the release exists (dry run of a new site) its service has no address yet.
        host = None if dry and not release.exists else st.registry_host_task(conn)
        _node_side(ctx, conn, inputs, spec, repos, host, report, plan, done)


def _host_key(inputs: SiteInputs, line: str, report: RunReport, dry: bool) -> None:
    if not dry:
        pin_site_host_key(inputs, line, report)
        return
    key_type, fp = fingerprint(line)
    site = inputs.site
    report.note(
        "host-key",
        f"block {inputs.site_block}",
        f"host key {key_type} {fp} of {site.ssh_host}:{site.ssh_port} accepted on first use; "
        f"the real run pins it in block {inputs.site_block} (not saved: dry run)",
        action="write",
        planned=True,
    )


def _azure_side(
    ctx: AzureContext,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    cr_spec: ConnectedRegistrySpec,
    report: RunReport,
    done: Done,
) -> tuple[list[str], ConnectedRegistryInfo | None, list[PasswordMeta]]:
    """Repositories, preflight, then the sync chain (scope map, token, connected registry) beside
    the client scope map and token; the client token attached; then reads."""
    cr, client, dry = inputs.cr_name, inputs.client_token, spec.dry_run
    repos = az.list_repositories(ctx, spec.namespaces, allow_empty=spec.allow_empty_namespaces)
    report.note(
        "list-repositories",
        f"registries/{ctx.registry}",
        f"{len(repos)} repositories under {', '.join(spec.namespaces)}",
    )
    done(
        az.preflight_parent(
            ctx,
            repositories=repos,
            client_token_count=1,
            enable_data_endpoint=spec.enable_data_endpoint,
            dry_run=dry,
        )
    )
    # The client scope map and token need only the repository list: they converge beside the
    # sync chain, and the token is attached once the connected registry exists.
    client_map_f = az.ensure_client_scope_map.submit(ctx, client, repos, dry_run=dry)  # type: ignore[call-overload]
    client_token_f = az.ensure_client_token.submit(  # type: ignore[call-overload]
        ctx, client, client, dry_run=dry, wait_for=[client_map_f]
    )
    try:
        done(az.ensure_sync_scope_map(ctx, cr, repos, spec.mode, dry_run=dry))
        done(az.ensure_sync_token(ctx, cr, dry_run=dry))
        done(az.ensure_connected_registry(ctx, cr_spec, dry_run=dry))
        done(client_map_f.result())
        done(client_token_f.result())
    finally:
        wait([client_map_f, client_token_f])  # never leave a write running behind a failure
    done(az.attach_client_token(ctx, cr, client, dry_run=dry))
    info = az.read_connected_registry(ctx, cr)
    if not dry and (info is None or not info.gateway_endpoint):
        raise PermanentError(
            "connected registry has no parent gateway endpoint after creation",
            resource=f"connectedRegistries/{cr}",
            fix="check that the parent's dedicated data endpoint is enabled",
        )
    # A dry run may plan a sync token that does not exist yet: it has no password.
    return repos, info, az.read_token_passwords(ctx, cr, missing_ok=dry)


def _sync_side(
    ctx: AzureContext,
    conn: SiteConnection,
    inputs: SiteInputs,
    info: ConnectedRegistryInfo | None,
    sync_passwords: list[PasswordMeta],
    release: ReleaseFact,
    dry: bool,
    plan: ProvisionPlan,
    done: Done,
) -> None:
    """The sync credential and the Helm release: keep the recorded credential when it is
    valid (upgrading the chart settings with the release's own connection string), else
    generate a slot that nothing uses and install with a new connection string."""
    site, cr = inputs.site, inputs.cr_name
    recorded = release.sync_ref
    recorded_ref = rotation.ref_from_record(recorded.slot, recorded.created) if recorded else None
    now = datetime.now(UTC)
    active = info is not None and info.activation_status == "Active"
    decision = rotation.decide_sync_credential(recorded_ref, sync_passwords, now, activated=active)
    if decision.keep and recorded_ref is not None:
        wanted = helm_values.desired_digest(site, recorded)  # type: ignore[arg-type]
        current = release.status == "deployed" and release.digest == wanted
        if not current and not release.credential_reusable:
            get_run_logger().warning(
                "%s/%s: chart values changed but the kept connection string cannot be read "
                "back; a fresh sync password is generated for the upgrade",
                site.namespace,
                site.release_name,
            )
            decision = rotation.sync_slot_when_unreadable(recorded_ref, sync_passwords, now)
    change = plan_password(
        "sync-credential", cr, decision.slot, keep=decision.keep, reason=decision.reason
    )
    result, gen = az.ensure_password(ctx, change, dry_run=dry)
    done(result)
    if decision.keep:
        assert recorded is not None
        ref, connection_string = recorded, None
    elif gen is None:  # dry run: the slot is planned, its value and creation time do not exist
        ref, connection_string = SyncCredentialRef(cr, decision.slot, ""), None
    else:
        gateway = (info.gateway_endpoint if info else None) or ""
        connection_string = build_sync_connection_string(
            cr, gen.username, gen.password, gateway, "https"
        )
        ref = SyncCredentialRef(cr, gen.meta.slot, rotation.created_text(gen.meta.creation_time))
        del gen
    helm = done(st.ensure_helm_release_task(conn, ref, connection_string, dry_run=dry))
    del connection_string
    if dry and helm.action != "none":
        desired = helm_values.chart_values(site, SecretStr(MASK), ref).values
        plan.helm = helm_rows(helm_values.plan_diff(release.values, desired))
    if not dry:
        st.wait_deployment_ready_task(conn)
    if not decision.keep:
        _retire_old_sync_slot(ctx, cr, decision.slot, sync_passwords, dry, done)


def _retire_old_sync_slot(
    ctx: AzureContext,
    cr: str,
    new_slot: rotation.Slot,
    before: list[PasswordMeta],
    dry: bool,
    done: Done,
) -> None:
    """Once the runtime is Online with the new sync password, the other slot is dead weight
    (nothing uses it) and a live credential nobody tracks: revoke it."""
    old = rotation.other_slot(new_slot)
    if not any(p.slot == old for p in before):
        return
    resource = f"tokens/{cr}/{old}"
    if dry:
        change = _provisional(
            "sync-old-slot",
            resource,
            "revoke",
            f"revoke {old} once the runtime is Online with {new_slot}",
            "the runtime's state after the new release",
        )
        done(StepResult.of_plan(change))
        return
    info = az.read_connected_registry(ctx, cr)
    if info is None or info.connection_state not in ("Online", "Syncing"):
        state = info and info.connection_state
        reason = f"kept: the runtime is not Online yet ({state})"
        done(StepResult.from_change(Change.none("sync-old-slot", resource, reason), writes=0))
        return
    done(az.revoke_password(ctx, cr, old, step="sync-old-slot"))


def _node_side(
    ctx: AzureContext,
    conn: SiteConnection,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    repos: list[str],
    host: str | None,
    report: RunReport,
    plan: ProvisionPlan,
    done: Done,
) -> None:
    """Client credential, registries.yaml (+ restart), pull secrets, canary."""
    site, dry = inputs.site, spec.dry_run
    username, password, meta = _client_credential(ctx, conn, inputs, spec, host, done)
    node = site.auth_model == "node"
    if host is None:  # dry run of a new site: no service, so no mirror address yet
        waits = "the Helm release's service"
        mirror = done(
            StepResult.of_plan(
                _provisional(
                    "registries-yaml",
                    f"{conn.resource}: {site.registries_path}",
                    "write",
                    "mirror for the connected registry service: add once the release exists",
                    waits,
                )
            )
        )
        done(
            StepResult.of_plan(
                _provisional(
                    "restart",
                    f"{conn.resource}: {site.service_name}",
                    "restart",
                    f"{site.registries_path} changed: restart {site.service_name}",
                    waits,
                )
            )
        )
    else:
        auth = (
            NodeAuth(username, password, meta.slot, meta.created)
            if node and password is not None and meta is not None
            else None
        )
        node_ref = meta if node and dry else None
        mirror = done(st.ensure_registries_yaml_task(conn, host, auth, node_ref, dry_run=dry))
        plan.registries_diff = str(mirror.details.get("diff") or "")
        file_changed = mirror.changed or (mirror.planned and mirror.action != "none")
        done(st.ensure_restart_task(conn, host, file_changed, dry_run=dry))
    if meta is not None:
        done(
            st.ensure_pull_secrets_task(
                conn,
                inputs.app_namespaces,
                site.pull_secret_name,
                host or "(the connected registry service)",
                username,
                password,
                meta,
                patch_default_service_account=site.patch_default_service_account,
                dry_run=dry,
            )
        )
    del password
    namespace = inputs.app_namespaces[0]
    image = canary_image(host or "(the connected registry service)", repos[0]) if repos else None
    canary = st.ensure_canary_task(
        conn, namespace, image, site.pull_secret_name, site.canary_timeout, dry_run=dry
    )
    if host is None and image is not None:
        canary = StepResult.of_plan(
            _provisional("canary", canary.resource, canary.action, canary.message, "its image")
        )
    done(canary)


def _client_credential(
    ctx: AzureContext,
    conn: SiteConnection,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    host: str | None,
    done: Done,
) -> tuple[str, SecretStr | None, PullSecretMeta | None]:
    """The client credential to put in pull secrets: kept when a pull secret holds a live one
    (value read back from it only if some namespace misses it), else newly generated. A dry
    run returns the slot's metadata only (no value is generated or read)."""
    site, token, dry = inputs.site, inputs.client_token, spec.dry_run
    consumers: dict[str, PullSecretMeta | None] = dict(
        st.read_pull_secrets_task(conn, inputs.app_namespaces, site.pull_secret_name)
    )
    if site.auth_model == "node" and host is not None:
        consumers[rotation.NODE_CONSUMER] = st.read_node_credential_task(conn, host)
    refs = rotation.refs_of(consumers, token)
    passwords = az.read_token_passwords(ctx, token, missing_ok=dry)
    now = datetime.now(UTC)
    decision = rotation.decide_client_password(refs, passwords, now)
    change = plan_password(
        "client-password", token, decision.slot, keep=decision.keep, reason=decision.reason
    )
    expiry = rotation.expiry_for(now, spec.client_password_days)
    result, gen = az.ensure_password(ctx, change, expiry=expiry, dry_run=dry)
    done(result)
    if not decision.keep:
        if gen is None:  # dry run
            return token, None, PullSecretMeta(token, decision.slot, "")
        created = rotation.created_text(gen.meta.creation_time)
        return gen.username, gen.password, PullSecretMeta(token, gen.meta.slot, created)
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
    holder_meta = consumers[source]
    assert holder_meta is not None
    if dry or host is None:
        return token, None, holder_meta
    username, password = st.read_consumer_password_task(conn, source, host, decision.slot, FLOW)
    return username, password, holder_meta
