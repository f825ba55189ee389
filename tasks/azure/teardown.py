"""Teardown in ARM: deactivate and delete the connected registry, then the tokens and scope maps
acr-edge owns. Each is a read -> pure plan (a Change with its reason) -> apply, run by converge.

Ownership is proven from what acr-edge writes, never assumed from a name alone:

- the sync scope map ``<cr>`` carries the az CLI's sync description for ``<cr>``; the client
  scope map carries acr-edge's ``Managed by acr-edge`` description;
- a token is ours when it is bound to one of those scope maps (by id) and that map is ours (or
  already gone, e.g. after a crash between the two deletes);
- the connected registry is ours when it syncs with acr-edge's sync token for it.

Anything else under those names is left and its row says why. Order matters (the service
refuses otherwise): deactivate -> delete the connected registry -> tokens -> scope maps.
"""

from __future__ import annotations

from collections.abc import Callable

from model import names
from model.azure_context import AzureContext
from model.names import same_id
from model.plan import Change, converge
from model.result import StepResult
from tasks.azure.arm import Json, rg, write_once
from tasks.azure.connected_registry import read_connected_registry_raw
from tasks.azure.desired import client_map_description, sync_map_description
from tasks.azure.scope_maps import read_scope_map
from tasks.azure.tokens import read_token

DELETE = "delete"
DEACTIVATE = "deactivate"


# ---- pure plans -----------------------------------------------------------------------------


def _map_owned(actual: Json | None, description: str) -> bool:
    props = (actual or {}).get("properties") or {}
    return props.get("type") != "SystemDefined" and props.get("description") == description


def plan_scope_map_delete(actual: Json | None, *, step: str, name: str, description: str) -> Change:
    resource = f"scopeMaps/{name}"
    if actual is None:
        return Change.none(step, resource, f"scope map {name} does not exist (nothing to delete)")
    if not _map_owned(actual, description):
        props = actual.get("properties") or {}
        return Change.none(
            step,
            resource,
            f"scope map {name} was not created by acr-edge (description "
            f"{props.get('description')!r}): left as it is",
            owned=False,
        )
    return Change(step, resource, DELETE, f"scope map {name} was created by acr-edge", payload=name)


def plan_token_delete(
    actual: Json | None,
    scope_map: Json | None,
    *,
    step: str,
    name: str,
    scope_map_id: str,
    description: str,
) -> Change:
    resource = f"tokens/{name}"
    if actual is None:
        return Change.none(step, resource, f"token {name} does not exist (nothing to delete)")
    bound = (actual.get("properties") or {}).get("scopeMapId")
    if not same_id(bound, scope_map_id):
        return Change.none(
            step,
            resource,
            f"token {name} is bound to scope map {bound!r}, not acr-edge's {scope_map_id}: "
            "left as it is",
            owned=False,
        )
    if scope_map is not None and not _map_owned(scope_map, description):
        return Change.none(
            step,
            resource,
            f"token {name} is bound to a scope map acr-edge did not create: left as it is",
            owned=False,
        )
    return Change(
        step, resource, DELETE, f"token {name} is bound to acr-edge's scope map", payload=name
    )


def _cr_owned(actual: Json, sync_token_id: str) -> bool:
    sync = ((actual.get("properties") or {}).get("parent") or {}).get("syncProperties") or {}
    return same_id(sync.get("tokenId"), sync_token_id)


def _foreign_cr(step: str, name: str, actual: Json) -> Change:
    sync = ((actual.get("properties") or {}).get("parent") or {}).get("syncProperties") or {}
    return Change.none(
        step,
        f"connectedRegistries/{name}",
        f"connected registry {name} syncs with token {sync.get('tokenId')!r}, not acr-edge's "
        "sync token: left as it is",
        owned=False,
    )


def plan_deactivate(actual: Json | None, *, name: str, sync_token_id: str) -> Change:
    step, resource = "deactivate-connected-registry", f"connectedRegistries/{name}"
    if actual is None:
        return Change.none(step, resource, f"connected registry {name} does not exist")
    if not _cr_owned(actual, sync_token_id):
        return _foreign_cr(step, name, actual)
    status = ((actual.get("properties") or {}).get("activation") or {}).get("status")
    if status != "Active":
        return Change.none(
            step, resource, f"connected registry {name} is not active (activation {status!r})"
        )
    return Change(
        step,
        resource,
        DEACTIVATE,
        f"connected registry {name} is active: it must be deactivated before it is deleted",
        payload=name,
    )


def plan_cr_delete(actual: Json | None, *, name: str, sync_token_id: str) -> Change:
    step, resource = "delete-connected-registry", f"connectedRegistries/{name}"
    if actual is None:
        return Change.none(step, resource, f"connected registry {name} does not exist")
    if not _cr_owned(actual, sync_token_id):
        return _foreign_cr(step, name, actual)
    return Change(
        step,
        resource,
        DELETE,
        f"connected registry {name} syncs with acr-edge's sync token (deactivated first)",
        payload=name,
    )


# ---- I/O --------------------------------------------------------------------------------------


def _delete(start: Callable[[], object], change: Change) -> StepResult:
    write_once(start)
    return StepResult.from_change(change, writes=1)


def _cr_step(
    ctx: AzureContext,
    cr_name: str,
    plan: Callable[..., Change],
    start: Callable[..., object],
    dry_run: bool,
) -> StepResult:
    names.validate_cr_name(cr_name)
    token_id = ctx.token_id(names.sync_token_name(cr_name))
    return converge(
        lambda: read_connected_registry_raw(ctx, cr_name),
        lambda actual: plan(actual, name=cr_name, sync_token_id=token_id),
        lambda change: _delete(lambda: start(*rg(ctx), cr_name), change),
        dry_run=dry_run,
        policy=ctx.policy,
    )


def deactivate_connected_registry(
    ctx: AzureContext, cr_name: str, *, dry_run: bool = False
) -> StepResult:
    ops = ctx.cr_mgmt.connected_registries
    return _cr_step(ctx, cr_name, plan_deactivate, ops.begin_deactivate, dry_run)


def delete_connected_registry(
    ctx: AzureContext, cr_name: str, *, dry_run: bool = False
) -> StepResult:
    """Delete the connected registry. In a dry run it is still active (the deactivation is only
    planned): the plan is the same, the real run deactivates it first."""
    ops = ctx.cr_mgmt.connected_registries
    return _cr_step(ctx, cr_name, plan_cr_delete, ops.begin_delete, dry_run)


def _token_and_map(
    ctx: AzureContext, step: str, name: str, map_name: str, description: str, dry_run: bool
) -> StepResult:
    names.validate_token_name(name)
    names.validate_scope_map_name(map_name)
    map_id = ctx.scope_map_id(map_name)

    def read() -> tuple[Json | None, Json | None]:
        return read_token(ctx, name, live=True), read_scope_map(ctx, map_name, live=True)

    return converge(
        read,
        lambda fact: plan_token_delete(
            fact[0], fact[1], step=step, name=name, scope_map_id=map_id, description=description
        ),
        lambda change: _delete(lambda: ctx.mgmt.tokens.begin_delete(*rg(ctx), name), change),
        dry_run=dry_run,
        policy=ctx.policy,
    )


def delete_sync_token(ctx: AzureContext, cr_name: str, *, dry_run: bool = False) -> StepResult:
    return _token_and_map(
        ctx,
        "delete-sync-token",
        names.sync_token_name(cr_name),
        names.sync_scope_map_name(cr_name),
        sync_map_description(cr_name),
        dry_run,
    )


def delete_client_token(ctx: AzureContext, name: str, *, dry_run: bool = False) -> StepResult:
    return _token_and_map(
        ctx, "delete-client-token", name, name, client_map_description(name), dry_run
    )


def _scope_map(
    ctx: AzureContext, step: str, name: str, description: str, dry_run: bool
) -> StepResult:
    names.validate_scope_map_name(name)
    return converge(
        lambda: read_scope_map(ctx, name, live=True),
        lambda actual: plan_scope_map_delete(actual, step=step, name=name, description=description),
        lambda change: _delete(lambda: ctx.mgmt.scope_maps.begin_delete(*rg(ctx), name), change),
        dry_run=dry_run,
        policy=ctx.policy,
    )


def delete_sync_scope_map(ctx: AzureContext, cr_name: str, *, dry_run: bool = False) -> StepResult:
    name = names.sync_scope_map_name(cr_name)
    return _scope_map(ctx, "delete-sync-scope-map", name, sync_map_description(cr_name), dry_run)


def delete_client_scope_map(ctx: AzureContext, name: str, *, dry_run: bool = False) -> StepResult:
    return _scope_map(ctx, "delete-client-scope-map", name, client_map_description(name), dry_run)
