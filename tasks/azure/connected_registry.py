"""The connected registry: ensure its settings, attach the client token, read its state."""

from __future__ import annotations

from model import names
from model.arm_facts import CONNECTED_REGISTRIES
from model.azure import ConnectedRegistryInfo
from model.azure_context import AzureContext
from model.plan import Change, converge
from model.result import StepResult
from tasks.azure import actions as act
from tasks.azure.arm import (
    Json,
    create_or_update,
    fact_or_read,
    get_or_none,
    parse_time,
    raw_get,
    rg,
)
from tasks.azure.desired import plan_client_token_ids, plan_connected_registry
from tasks.azure.spec import ConnectedRegistrySpec


def read_connected_registry_raw(ctx: AzureContext, name: str) -> Json | None:
    return get_or_none(
        lambda: ctx.cr_mgmt.connected_registries.get(*rg(ctx), name),
        f"connectedRegistries/{name}",
    )


def apply_connected_registry(ctx: AzureContext, change: Change) -> StepResult:
    create_or_update(ctx, ctx.cr_mgmt.connected_registries, change)
    return StepResult.from_change(
        change, writes=1, id=ctx.connected_registry_id(change.payload.name)
    )


def ensure_connected_registry(
    ctx: AzureContext, spec: ConnectedRegistrySpec, *, dry_run: bool = False
) -> StepResult:
    token_id = ctx.token_id(names.sync_token_name(spec.name))
    return converge(
        lambda: read_connected_registry_raw(ctx, spec.name),
        lambda actual: plan_connected_registry(actual, spec, token_id),
        lambda change: apply_connected_registry(ctx, change),
        dry_run=dry_run,
        policy=ctx.policy,
    )


def attach_client_token(
    ctx: AzureContext, cr_name: str, token_name: str, *, dry_run: bool = False
) -> StepResult:
    """Union the client token into the CR's clientTokenIds (others kept).

    In a dry run the connected registry may not exist yet: the attach is then planned against
    the registry the run would create, which lists no client token.
    """
    names.validate_cr_name(cr_name)
    names.validate_token_name(token_name)
    token_id = ctx.token_id(token_name)
    return converge(
        lambda: read_connected_registry_raw(ctx, cr_name),
        lambda actual: plan_client_token_ids(
            actual, [token_id], name=cr_name, absent_is_empty=dry_run
        ),
        lambda change: apply_connected_registry(ctx, change),
        dry_run=dry_run,
        policy=ctx.policy,
    )


def info_of(ctx: AzureContext, name: str, cr: Json) -> ConnectedRegistryInfo:
    props = cr.get("properties") or {}
    parent = props.get("parent") or {}
    sync = parent.get("syncProperties") or {}
    result = props.get("registrySyncResult") or {}
    return ConnectedRegistryInfo(
        name=name,
        id=str(cr.get("id") or ctx.connected_registry_id(name)),
        mode=act.normalize_mode(props.get("mode") or "ReadOnly"),
        provisioning_state=props.get("provisioningState"),
        connection_state=props.get("connectionState"),
        activation_status=(props.get("activation") or {}).get("status"),
        gateway_endpoint=sync.get("gatewayEndpoint"),
        last_sync_time=parse_time(sync.get("lastSyncTime")),
        last_activity_time=parse_time(props.get("lastActivityTime")),
        sync_token_id=sync.get("tokenId"),
        sync_schedule=sync.get("schedule"),
        sync_window=sync.get("syncWindow"),
        message_ttl=sync.get("messageTtl"),
        client_token_ids=list(props.get("clientTokenIds") or []),
        status_details=list(props.get("statusDetails") or []),
        version=props.get("version"),
        sync_state=result.get("syncState"),
        last_sync_end_time=parse_time(result.get("lastSyncEndTime")),
        last_successful_sync_time=parse_time(result.get("lastSuccessfulSyncEndTime")),
        login_host=str((props.get("loginServer") or {}).get("host") or "") or None,
    )


def read_connected_registry(
    ctx: AzureContext, cr_name: str, *, live: bool = False
) -> ConnectedRegistryInfo | None:
    """The connected registry as the service reports it, from the raw JSON of the pinned
    preview api-version: the SDK model would drop ``registrySyncResult``. From the fleet's
    facts (listed with the same api-version) unless ``live``."""
    names.validate_cr_name(cr_name)
    cr = fact_or_read(
        ctx,
        CONNECTED_REGISTRIES,
        cr_name,
        lambda: raw_get(
            ctx,
            ctx.connected_registry_id(cr_name),
            ctx.cr_api_version,
            f"connectedRegistries/{cr_name}",
        ),
        live=live,
    )
    return None if cr is None else info_of(ctx, cr_name, cr)
