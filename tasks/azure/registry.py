"""The parent registry: preflight (permissions, Premium, data endpoint, limits) before any write.

Enabling a disabled data endpoint is a planned ``update`` like any other change, so a dry run
lists it; everything else preflight finds wrong is a PermanentError naming the fix. The
principal's effective permissions on the registry are checked first (ARM's permissions
endpoint, evaluated by ``model.rbac``), so a principal with Reader or AcrPull alone is refused
with every missing action named instead of failing half-way with a 403.
"""

from __future__ import annotations

from collections.abc import Iterable

from model import rbac
from model.azure import ParentInfo
from model.azure_context import AzureContext
from model.errors import PermanentError
from model.plan import Change, converge
from model.result import StepResult
from tasks.azure import actions as act
from tasks.azure.arm import Json, get_or_none, raw_get, rg, write_once
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


PERMISSIONS_API_VERSION = "2022-04-01"
PERMISSIONS_STEP = "preflight-permissions"
BLOCKED = "blocked"
RBAC_FIX = (
    "assign the principal a role with these actions on the registry: the custom role in "
    "README 'The parent registry and its principal' (or Contributor), plus AcrPull (or "
    "Container Registry Repository Catalog Lister in ABAC mode) to list repositories."
)
TEARDOWN_RBAC_FIX = (
    "assign the principal that tears sites down both custom roles in README 'The parent "
    "registry and its principal' (acr-edge-operator and acr-edge-teardown), or Contributor."
)


def read_permissions(ctx: AzureContext) -> list[Json]:
    """The principal's effective permissions on the registry (one entry per role assignment).

    ARM answers this for every principal about itself; a refusal means the credentials or the
    endpoint are wrong, not a missing role, and is reported as such.
    """
    resource = f"registries/{ctx.registry}"
    try:
        answer = raw_get(
            ctx,
            f"{ctx.registry_id}/providers/Microsoft.Authorization/permissions",
            PERMISSIONS_API_VERSION,
            f"{resource} permissions",
        )
    except PermanentError as exc:
        raise PermanentError(
            f"ARM refused to list the principal's permissions on the registry ({exc})",
            resource=resource,
            fix="check the ParentRegistry block's subscription, resource group and registry and "
            "that the principal can read its own permissions (Microsoft.Authorization/"
            "permissions/read, which ARM grants every principal).",
        ) from None
    if answer is None:
        raise PermanentError(
            "registry not found while reading the principal's permissions",
            resource=resource,
            fix="check the ParentRegistry block's subscription, resource group and registry name",
        )
    return [dict(e) for e in answer.get("value") or [] if isinstance(e, dict)]


def check_permissions(ctx: AzureContext, *, dry_run: bool = False) -> StepResult:
    """Refuse before the first write when the principal lacks any action acr-edge uses.

    A dry run reports the same verdict as its blocker row (action ``blocked``) instead of
    raising, so the plan shows it; the flow then stops.
    """
    return _check(ctx, rbac.PROVISION_ACTIONS, catalog=True, fix=RBAC_FIX, dry_run=dry_run)


def check_teardown_permissions(ctx: AzureContext, *, dry_run: bool = False) -> StepResult:
    """Refuse a teardown (or re-home) before anything is removed, on the cluster or in ARM,
    when the principal lacks a delete it needs: half a teardown leaves a site without its
    runtime while its connected registry still waits for it."""
    return _check(ctx, rbac.TEARDOWN_ACTIONS, catalog=False, fix=TEARDOWN_RBAC_FIX, dry_run=dry_run)


def _check(
    ctx: AzureContext, required: tuple[str, ...], *, catalog: bool, fix: str, dry_run: bool
) -> StepResult:
    resource = f"registries/{ctx.registry}"
    verdict = rbac.check(read_permissions(ctx), required, catalog=catalog)
    if verdict.ok:
        listing = " and can list repositories" if catalog else ""
        return StepResult(
            resource=resource,
            changed=False,
            message=f"the principal has all {len(required)} required actions{listing}",
            action="none",
            step=PERMISSIONS_STEP,
            planned=dry_run,
        )
    message = f"the principal lacks permissions on the registry: {verdict.message()}"
    if not dry_run:
        raise PermanentError(message, resource=resource, fix=fix)
    return StepResult(
        resource=resource,
        changed=False,
        message=f"{message}. Fix: {fix}",
        action=BLOCKED,
        step=PERMISSIONS_STEP,
        planned=True,
        details={"missing": list(verdict.missing), "catalog_ok": verdict.catalog_ok},
    )


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
        policy=ctx.policy,
    )
