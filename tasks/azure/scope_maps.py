"""Scope maps: the sync map (repositories + gateway actions) and the client map (pull only)."""

from __future__ import annotations

from collections.abc import Iterable

from model import names
from model.arm_facts import SCOPE_MAPS
from model.azure_context import AzureContext
from model.plan import Change, converge
from model.result import StepResult
from tasks.azure import actions as act
from tasks.azure.arm import Json, create_or_update, fact_or_read, get_or_none, rg
from tasks.azure.desired import (
    client_map_description,
    desired_scope_map,
    plan_scope_map,
    sync_map_description,
)


def read_scope_map(ctx: AzureContext, name: str, *, live: bool = False) -> Json | None:
    """The scope map's JSON (None: it does not exist); from the fleet's facts unless ``live``."""
    return fact_or_read(
        ctx,
        SCOPE_MAPS,
        name,
        lambda: get_or_none(lambda: ctx.mgmt.scope_maps.get(*rg(ctx), name), f"scopeMaps/{name}"),
        live=live,
    )


def apply_scope_map(ctx: AzureContext, change: Change) -> StepResult:
    create_or_update(ctx, ctx.mgmt.scope_maps, change)
    return StepResult.from_change(change, writes=1, id=ctx.scope_map_id(change.payload.name))


def _ensure(ctx: AzureContext, step: str, name: str, desired: Json, dry_run: bool) -> StepResult:
    return converge(
        lambda: read_scope_map(ctx, name, live=True),
        lambda actual: plan_scope_map(actual, desired, step=step, name=name),
        lambda change: apply_scope_map(ctx, change),
        dry_run=dry_run,
        policy=ctx.policy,
    )


def ensure_sync_scope_map(
    ctx: AzureContext,
    cr_name: str,
    repositories: Iterable[str],
    mode: str,
    *,
    dry_run: bool = False,
) -> StepResult:
    name = names.sync_scope_map_name(cr_name)
    desired = desired_scope_map(
        sync_map_description(cr_name), act.sync_actions(cr_name, repositories, mode)
    )
    return _ensure(ctx, "sync-scope-map", name, desired, dry_run)


def ensure_client_scope_map(
    ctx: AzureContext, name: str, repositories: Iterable[str], *, dry_run: bool = False
) -> StepResult:
    names.validate_scope_map_name(name)
    desired = desired_scope_map(
        client_map_description(name), act.client_actions(repositories, scope_map_name=name)
    )
    return _ensure(ctx, "client-scope-map", name, desired, dry_run)


def client_repositories(ctx: AzureContext, scope_map_name: str) -> list[str]:
    """What the client scope map grants; the canary pulls the first of them."""
    actual = read_scope_map(ctx, scope_map_name) or {}
    actions = (actual.get("properties") or {}).get("actions") or []
    return act.readable_repositories(actions)
