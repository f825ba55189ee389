"""provision-site's node half: the sync credential and Helm release, then the client
credential, pull secrets, every node's mirror (one node at a time, proven) and the canary.

The same code for the real run and the dry run (``dry``): every step is called with
``dry_run``; in a dry run the secret steps are metadata rows only (no value is generated or
read back) and a step that depends on a resource the run would create is planned from the
facts available (:func:`provisional`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from prefect import get_run_logger
from pydantic import SecretStr

from flows import node_rollout
from flows.inputs import SiteInputs
from flows.models import ProvisionSpec
from flows.node_rollout import SiteNodes
from flows.plan import MASK, PROVISIONAL, ProvisionPlan, helm_rows
from model.azure import ConnectedRegistryInfo, PasswordMeta
from model.azure_context import AzureContext
from model.plan import Change
from model.result import StepResult
from model.site import (
    MirrorRoute,
    NodeAuth,
    PullSecretMeta,
    ReleaseFact,
    SiteCheck,
    SyncCredentialRef,
)
from tasks import rotation, rotation_plan, sync_rotation
from tasks.azure import steps as az
from tasks.azure.connection_string import build_sync_connection_string
from tasks.azure.password_plans import plan_password
from tasks.site import helm_values
from tasks.site import steps as st
from tasks.site.connection import SiteConnection
from tasks.site.node_mirror_plan import Proof
from tasks.site.plans import canary_image

FLOW = "provision-site"
Done = Callable[[StepResult], StepResult]
UNKNOWN_HOST = "(the connected registry service)"


def provisional(step: str, resource: str, action: str, reason: str, waits_for: str) -> Change:
    """A dry run's row for a step whose input a planned change creates (its reason cannot name
    what does not exist yet)."""
    return Change(step, resource, action, reason, shown={PROVISIONAL: waits_for})


def sync_side(
    ctx: AzureContext,
    conn: SiteConnection,
    inputs: SiteInputs,
    info: ConnectedRegistryInfo | None,
    sync_passwords: list[PasswordMeta],
    release: ReleaseFact,
    dry: bool,
    plan: ProvisionPlan,
    done: Done,
    tls_secret: str | None = None,
) -> None:
    """The sync credential and the Helm release: keep the recorded credential when it is
    valid (upgrading the chart settings with the release's own connection string), else
    generate a slot that nothing uses and install with a new connection string. Over https
    the release serves ``tls_secret``."""
    site, cr = inputs.site, inputs.cr_name
    recorded = release.sync_ref
    recorded_ref = rotation.ref_from_record(recorded.slot, recorded.created) if recorded else None
    now = datetime.now(UTC)
    active = info is not None and info.activation_status == "Active"
    decision = rotation.decide_sync_credential(recorded_ref, sync_passwords, now, activated=active)
    if decision.keep and recorded is not None and recorded_ref is not None:
        serving = helm_values.serving_for(
            site, release.values, tls_secret, transport=site.transport
        )
        wanted = helm_values.desired_digest(site, recorded, serving)
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
    # Sync passwords expire too: rotate-sync-credential renews them before they do.
    expiry = rotation.expiry_for(now, sync_rotation.SYNC_PASSWORD_DAYS)
    result, gen = az.ensure_password(ctx, change, expiry=expiry, dry_run=dry)
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

    def online() -> SiteCheck:
        """The upgrade's proof in ARM: the connected registry back Online (or syncing)."""
        now_info = az.read_connected_registry(ctx, cr)
        state = now_info.connection_state if now_info else None
        return SiteCheck(state in ("Online", "Syncing"), f"connectionState {state}")

    # A changed release is proven Ready and Online, else rolled back (or, installed by this
    # run, uninstalled) and the run fails naming what was undone.
    helm = done(
        st.ensure_helm_release_proven_task(
            conn,
            ref,
            connection_string,
            online,
            tls_secret=tls_secret,
            transport=site.transport,
            dry_run=dry,
        )
    )
    del connection_string
    if dry and helm.action != "none":
        serving = helm_values.serving_for(
            site, release.values, tls_secret, transport=site.transport
        )
        desired = helm_values.chart_values(site, SecretStr(MASK), ref, serving).values
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
        change = provisional(
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


def node_side(
    ctx: AzureContext,
    conn: SiteConnection,
    nodes: SiteNodes,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    repos: list[str],
    host: str | None,
    plan: ProvisionPlan,
    done: Done,
    route: MirrorRoute | None = None,
) -> None:
    """Client credential, pull secrets, then every node (one at a time, proven: ``route``,
    else the plain-http mirror of ``host``), then the site's canary."""
    site, dry = inputs.site, spec.dry_run
    username, password, meta = _client_credential(ctx, conn, nodes, inputs, spec, host, done)
    node = site.auth_model == "node"
    if meta is not None:
        done(
            st.ensure_pull_secrets_task(
                conn,
                inputs.app_namespaces,
                site.pull_secret_name,
                host or UNKNOWN_HOST,
                username,
                password,
                meta,
                patch_default_service_account=site.patch_default_service_account,
                dry_run=dry,
            )
        )
    namespace = inputs.app_namespaces[0]
    image = canary_image(host or UNKNOWN_HOST, repos[0]) if repos else None
    pull_secret = site.pull_secret_name
    if host is None:  # dry run of a new site: no service, so no mirror address yet
        for target in nodes.targets:
            done(
                StepResult.of_plan(
                    provisional(
                        "node-mirror",
                        f"node {target.name}: {site.registries_path}",
                        "write",
                        "mirror for the connected registry service: add once the release "
                        "exists, with hosts.toml (no restart), then a canary pinned to the node",
                        "the Helm release's service",
                    )
                )
            )
    else:
        auth = (
            NodeAuth(username, password, meta.slot, meta.created)
            if node and password is not None and meta is not None
            else None
        )
        proof = Proof(namespace, image, pull_secret, site.canary_timeout)
        results = node_rollout.roll_out(
            nodes,
            route or host,
            auth,
            proof,
            done,
            node_ref=meta if node and dry else None,
            dry_run=dry,
        )
        plan.nodes = node_rollout.node_rows(nodes, results)
        plan.registries_diff = next(
            (str(r.details.get("diff")) for r in results if r.details.get("diff")), ""
        )
    del password
    canary = st.ensure_canary_task(
        conn,
        namespace,
        image,
        pull_secret,
        deadline_seconds=site.canary_timeout,
        dry_run=dry,
    )
    if host is None and image is not None:
        canary = StepResult.of_plan(
            provisional("canary", canary.resource, canary.action, canary.message, "its image")
        )
    done(canary)


def _client_credential(
    ctx: AzureContext,
    conn: SiteConnection,
    nodes: SiteNodes,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    host: str | None,
    done: Done,
) -> tuple[str, SecretStr | None, PullSecretMeta | None]:
    """The client credential to put in pull secrets: kept when a consumer (pull secret, any
    node's registries.yaml) holds a live one (value read back from it only if some namespace
    misses it), else newly generated. A live slot no consumer holds (a run that died after
    generating it) is regenerated or revoked. A dry run returns the slot's metadata only (no
    value is generated or read)."""
    site, token, dry = inputs.site, inputs.client_token, spec.dry_run
    consumers: dict[str, PullSecretMeta | None] = dict(
        st.read_pull_secrets_task(conn, inputs.app_namespaces, site.pull_secret_name)
    )
    node_conns: dict[str, SiteConnection] = {}
    if site.auth_model == "node" and host is not None:
        consumers[rotation.NODE_CONSUMER] = st.read_node_credential_task(conn, host)
        node_conns[rotation.NODE_CONSUMER] = conn
        # Every node is a consumer: a rollout cut short leaves some nodes on another slot.
        for target, node_conn in zip(nodes.targets, nodes.conns, strict=True):
            key = rotation.node_consumer(target.name)
            consumers[key] = st.read_node_credential_task(node_conn, host)
            node_conns[key] = node_conn
    refs = rotation.refs_of(consumers, token)
    passwords = az.read_token_passwords(ctx, token, missing_ok=dry)
    now = datetime.now(UTC)
    decision = rotation_plan.decide_client_password(refs, passwords, now)
    change = plan_password(
        "client-password", token, decision.slot, keep=decision.keep, reason=decision.reason
    )
    expiry = rotation.expiry_for(now, spec.client_password_days)
    result, gen = az.ensure_password(ctx, change, expiry=expiry, dry_run=dry)
    done(result)
    if decision.revoke is not None:
        # No consumer holds it (every namespace and node was read): nothing can break.
        done(az.revoke_password(ctx, token, decision.revoke, step="client-orphan", dry_run=dry))
    if not decision.keep:
        if gen is None:  # dry run
            return token, None, PullSecretMeta(token, decision.slot, "")
        created = rotation.created_text(gen.meta.creation_time)
        return gen.username, gen.password, PullSecretMeta(token, gen.meta.slot, created)
    state = rotation.normalise_passwords(passwords)
    holders = sorted(
        key
        for key, r in refs.items()
        if r is not None and r.slot == decision.slot and rotation.ref_is_valid(r, state, now)
    )
    in_namespaces = [h for h in holders if not rotation.is_node_consumer(h)]
    if len(in_namespaces) == len(inputs.app_namespaces) and site.auth_model != "node":
        return token, None, None  # every namespace already holds it: nothing to write
    source = rotation.preferred_source(holders)
    holder_meta = consumers[source]
    assert holder_meta is not None
    if dry or host is None:
        return token, None, holder_meta
    kind = rotation.NODE_CONSUMER if rotation.is_node_consumer(source) else source
    username, password = st.read_consumer_password_task(
        node_conns.get(source, conn), kind, host, decision.slot, rerun=FLOW
    )
    return username, password, holder_meta
