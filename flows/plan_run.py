"""provision-site's dry run: read everything the real run would read, decide, write nothing.

Uses the same pure diffs as the ensure-steps (tasks.azure.desired, registries_yaml.merge,
helm_values, tasks.rotation), fed by GETs only, and renders a flows.plan.ProvisionPlan.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from flows.host_keys import fingerprint
from flows.inputs import SiteInputs
from flows.models import ProvisionSpec
from flows.plan import MASK, ProvisionPlan, helm_rows, mask_registries_yaml, unified
from model.azure_context import AzureContext
from model.errors import AcrEdgeError
from model.site import PullSecretMeta
from tasks import rotation
from tasks.azure import actions as act
from tasks.azure import ops
from tasks.azure.desired import (
    Change,
    ConnectedRegistrySpec,
    client_map_description,
    desired_scope_map,
    diff_client_token_ids,
    diff_connected_registry,
    diff_scope_map,
    diff_token,
    sync_map_description,
)
from tasks.azure.reads import read_arm
from tasks.site import helm_values, registries_yaml
from tasks.site.connection import open_site
from tasks.site.helm_release import read_helm_release, registry_host
from tasks.site.mirror import read_node_credential, read_registries_yaml
from tasks.site.pull_secrets import read_pull_secrets


def _passwords(token: dict[str, Any] | None) -> list[rotation.PasswordState]:
    creds = ((token or {}).get("properties") or {}).get("credentials") or {}
    out = []
    for p in creds.get("passwords") or []:
        ref = rotation.ref_from_record(str(p.get("name", "")), p.get("creationTime"))
        if ref is not None:
            out.append(
                rotation.PasswordState(
                    ref.slot, ref.creation_time, rotation.parse_created(p.get("expiry"))
                )
            )
    return out


def _add(plan: ProvisionPlan, resource: str, change: Change) -> None:
    plan.add_arm(resource, change.op, change.reason)


def plan_provision(
    ctx: AzureContext, inputs: SiteInputs, spec: ProvisionSpec, cr_spec: ConnectedRegistrySpec
) -> ProvisionPlan:
    site, cr, client = inputs.site, inputs.cr_name, inputs.client_token
    plan = ProvisionPlan(site.name)
    now = datetime.now(UTC)

    repos = ops.list_repositories(ctx, spec.namespaces, allow_empty=spec.allow_empty_namespaces)
    plan.notes.append(f"{len(repos)} repositories under {', '.join(spec.namespaces)}")
    registry = read_arm(ctx, "registry") or {}
    if not (registry.get("properties") or {}).get("dataEndpointEnabled"):
        if spec.enable_data_endpoint:
            plan.add_arm(f"registries/{ctx.registry}", "update", "enable the data endpoint")
        else:
            plan.notes.append(
                "the data endpoint is disabled: the real run would stop here "
                "(pass enable_data_endpoint=True)"
            )
    _add(
        plan,
        f"scopeMaps/{cr}",
        diff_scope_map(
            read_arm(ctx, "scopeMaps", cr),
            desired_scope_map(sync_map_description(cr), act.sync_actions(cr, repos, spec.mode)),
            name=cr,
        ),
    )
    sync_token = read_arm(ctx, "tokens", cr)
    _add(plan, f"tokens/{cr}", diff_token(sync_token, ctx.scope_map_id(cr), name=cr))
    actual_cr = read_arm(ctx, "connectedRegistries", cr)
    _add(
        plan,
        f"connectedRegistries/{cr}",
        diff_connected_registry(actual_cr, cr_spec, ctx.token_id(cr)),
    )
    _add(
        plan,
        f"scopeMaps/{client}",
        diff_scope_map(
            read_arm(ctx, "scopeMaps", client),
            desired_scope_map(
                client_map_description(client), act.client_actions(repos, scope_map_name=client)
            ),
            name=client,
        ),
    )
    client_token = read_arm(ctx, "tokens", client)
    _add(plan, f"tokens/{client}", diff_token(client_token, ctx.scope_map_id(client), name=client))
    current_ids = ((actual_cr or {}).get("properties") or {}).get("clientTokenIds") or []
    _add(
        plan,
        f"connectedRegistries/{cr} clientTokenIds",
        diff_client_token_ids(list(current_ids), [ctx.token_id(client)], name=cr),
    )

    activation = (((actual_cr or {}).get("properties") or {}).get("activation") or {}).get("status")
    try:
        with open_site(site) as conn:
            if conn.recorded_host_key:
                key_type, fp = fingerprint(conn.recorded_host_key)
                plan.notes.append(
                    f"host key {key_type} {fp} of {site.ssh_host}:{site.ssh_port} accepted on "
                    f"first use; the real run pins it in block {inputs.site_block} (not saved: "
                    "dry run)"
                )
            _plan_site(
                plan, conn, inputs, sync_token, client_token, now, activated=activation == "Active"
            )
    except AcrEdgeError as exc:
        plan.notes.append(f"site not readable, node side not planned: {exc}")
    return plan


def _plan_site(
    plan: ProvisionPlan,
    conn: Any,
    inputs: SiteInputs,
    sync_token: dict[str, Any] | None,
    client_token: dict[str, Any] | None,
    now: datetime,
    *,
    activated: bool,
) -> None:
    site, cr, client = inputs.site, inputs.cr_name, inputs.client_token
    release = read_helm_release(conn)
    recorded = release.sync_ref
    sync = rotation.decide_sync_credential(
        rotation.ref_from_record(recorded.slot, recorded.created) if recorded else None,
        _passwords(sync_token),
        now,
        activated=activated,
    )
    plan.add_secret(
        f"tokens/{cr}/{sync.slot} (sync)", "keep" if sync.keep else "generate", sync.reason
    )
    rel = f"helm release {site.namespace}/{site.release_name}"
    kept_drift = (
        sync.keep
        and release.exists
        and recorded is not None
        and release.digest != helm_values.desired_digest(site, recorded)
    )
    if kept_drift:
        assert recorded is not None
        # Chart settings drifted while the sync credential is kept: the real run upgrades
        # once with the connection string the release already has (never shown here).
        desired = helm_values.chart_values(site, SecretStr(MASK), recorded).values
        now_values = release.values
        plan.helm = helm_rows(helm_values.plan_diff(now_values, desired))
        changed = helm_values.changed_settings(now_values, site) or ["values digest"]
        plan.add_site_action(
            rel,
            f"helm upgrade (values changed: {', '.join(changed)})",
            f"the recorded sync credential tokens/{cr}/{recorded.slot} is kept",
        )
    if not sync.keep:
        plan.add_secret(
            f"helm release {site.namespace}/{site.release_name} connectionString",
            "replace",
            f"new connection string carrying {sync.slot}",
        )
        desired = helm_values.chart_values(
            site, SecretStr(MASK), helm_values.SyncCredentialRef(cr, sync.slot, "(new)")
        ).values
        now_values = release.values
        plan.helm = helm_rows(helm_values.plan_diff(now_values, desired))
        plan.add_site_action(
            rel,
            "helm install" if not release.exists else "helm upgrade (new sync credential)",
            f"connection string carrying tokens/{cr}/{sync.slot}",
        )
    try:
        host: str | None = registry_host(conn)
    except AcrEdgeError:
        host = None
    if host is None:
        plan.notes.append(
            "registries.yaml: a mirror for the connected registry service is "
            "added once the release exists (its cluster IP is not known yet)"
        )
    else:
        text = read_registries_yaml(conn)
        current = None if text is None else text.get_secret_value()
        merged = registries_yaml.merge(current, host, None, path=site.registries_path)
        if merged.changed and site.auth_model != "node":
            plan.registries_diff = unified(
                mask_registries_yaml(current),
                mask_registries_yaml(merged.content.get_secret_value()),
                site.registries_path,
            )
        del text, current, merged
    consumers: dict[str, PullSecretMeta | None] = dict(
        read_pull_secrets(conn, inputs.app_namespaces, site.pull_secret_name)
    )
    if site.auth_model == "node" and host is not None:
        consumers[rotation.NODE_CONSUMER] = read_node_credential(conn, host)
    refs = rotation.refs_of(consumers, client)
    decision = rotation.decide_client_password(refs, _passwords(client_token), now)
    plan.add_secret(
        f"tokens/{client}/{decision.slot} (client)",
        "keep" if decision.keep else "generate",
        decision.reason,
    )
    missing = sorted(
        ns
        for ns, r in refs.items()
        if ns != rotation.NODE_CONSUMER and (r is None or r.slot != decision.slot)
    )
    if missing or not decision.keep:
        plan.add_secret(
            f"pull secret {site.pull_secret_name}",
            "write",
            f"in {', '.join(missing or inputs.app_namespaces)}",
        )
