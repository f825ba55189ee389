"""The parent registry: preflight (Premium, data endpoint, limits) before any other write.

Enabling a disabled data endpoint is a planned ``update`` like any other change, so a dry run
lists it; everything else preflight finds wrong is a PermanentError naming the fix.
"""

from __future__ import annotations

from collections.abc import Iterable

from model.azure import ParentInfo
from model.azure_context import AzureContext
from model.plan import Change, converge
from model.result import StepResult
from tasks.azure import actions as act
from tasks.azure.arm import Json, get_or_none, policy, rg, write_once
from tasks.azure.desired import ArmWrite, plan_data_endpoint


def read_registry(ctx: AzureContext) -> Json | None:
    return get_or_none(lambda: ctx.mgmt.registries.get(*rg(ctx)), f"registries/{ctx.registry}")


def parent_info(ctx: AzureContext, registry: Json) -> ParentInfo:
    props = registry.get("properties") or {}
    return ParentInfo(
        registry_id=str(registry.get("id") or ctx.registry_id),
        login_server=str(props.get("loginServer") or ""),
        location=str(registry.get("location") or ""),
        sku=str((registry.get("sku") or {}).get("name", "")),
        data_endpoint_host_names=list(props.get("dataEndpointHostNames") or []),
    )


def read_parent(ctx: AzureContext) -> ParentInfo | None:
    registry = read_registry(ctx)
    return None if registry is None else parent_info(ctx, registry)


def apply_registry(ctx: AzureContext, change: Change) -> StepResult:
    write: ArmWrite = change.payload
    after = write_once(lambda: ctx.mgmt.registries.begin_update(*rg(ctx), write.body))
    hosts = list((after.get("properties") or {}).get("dataEndpointHostNames") or [])
    return StepResult.from_change(change, writes=1, data_endpoint_host_names=hosts)


def preflight_parent(
    ctx: AzureContext,
    *,
    repositories: Iterable[str],
    client_token_count: int,
    enable_data_endpoint: bool,
    dry_run: bool = False,
) -> StepResult:
    """Limits first (no call), then Premium SKU and the dedicated data endpoint."""
    act.check_repository_limit(repositories, "repositories")
    if client_token_count > act.MAX_CLIENT_TOKENS_PER_CR:
        act.check_client_token_limit(client_token_count, "(new)")
    return converge(
        lambda: read_registry(ctx),
        lambda reg: plan_data_endpoint(reg, name=ctx.registry, enable=enable_data_endpoint),
        lambda change: apply_registry(ctx, change),
        dry_run=dry_run,
        policy=policy(ctx),
    )
