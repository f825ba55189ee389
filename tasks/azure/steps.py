"""Prefect task wrappers around the Azure steps: no logic, no retries, nothing cached.

No Prefect retries: azure-core retries each request in the client pipeline, and the two write
loops that encode idempotency (``model.plan.converge``'s re-read before rewrite; the slot-aware
password generation) are the only other retries. A task retry on top would repeat them all.
Tasks returning secrets never persist their result.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from model.azure import ConnectedRegistryInfo, GeneratedPassword, PasswordMeta
from model.azure_context import AzureContext
from model.plan import Change
from model.result import StepResult
from tasks.azure import connected_registry, passwords, registry, scope_maps, tokens
from tasks.azure.repositories import list_repositories as _list_repositories
from tasks.azure.spec import ConnectedRegistrySpec

_COMMON = {"cache_policy": NO_CACHE}


@task(task_run_name="list-repositories-{namespaces}", **_COMMON)  # type: ignore[call-overload]
def list_repositories(
    ctx: AzureContext, namespaces: list[str], *, allow_empty: bool = False
) -> list[str]:
    return _list_repositories(ctx, namespaces, allow_empty=allow_empty)


@task(task_run_name="preflight-parent-{ctx.registry}", **_COMMON)  # type: ignore[call-overload]
def preflight_parent(
    ctx: AzureContext,
    *,
    repositories: list[str],
    client_token_count: int,
    enable_data_endpoint: bool,
    dry_run: bool = False,
) -> StepResult:
    return registry.preflight_parent(
        ctx,
        repositories=repositories,
        client_token_count=client_token_count,
        enable_data_endpoint=enable_data_endpoint,
        dry_run=dry_run,
    )


@task(task_run_name="ensure-sync-scope-map-{cr_name}", **_COMMON)  # type: ignore[call-overload]
def ensure_sync_scope_map(
    ctx: AzureContext,
    cr_name: str,
    repositories: Iterable[str],
    mode: str,
    *,
    dry_run: bool = False,
) -> StepResult:
    return scope_maps.ensure_sync_scope_map(ctx, cr_name, repositories, mode, dry_run=dry_run)


@task(task_run_name="ensure-sync-token-{cr_name}", **_COMMON)  # type: ignore[call-overload]
def ensure_sync_token(ctx: AzureContext, cr_name: str, *, dry_run: bool = False) -> StepResult:
    return tokens.ensure_sync_token(ctx, cr_name, dry_run=dry_run)


@task(task_run_name="ensure-connected-registry-{spec.name}", **_COMMON)  # type: ignore[call-overload]
def ensure_connected_registry(
    ctx: AzureContext, spec: ConnectedRegistrySpec, *, dry_run: bool = False
) -> StepResult:
    return connected_registry.ensure_connected_registry(ctx, spec, dry_run=dry_run)


@task(task_run_name="read-connected-registry-{cr_name}", **_COMMON)  # type: ignore[call-overload]
def read_connected_registry(ctx: AzureContext, cr_name: str) -> ConnectedRegistryInfo | None:
    return connected_registry.read_connected_registry(ctx, cr_name)


@task(task_run_name="read-token-passwords-{token_name}", **_COMMON)  # type: ignore[call-overload]
def read_token_passwords(
    ctx: AzureContext, token_name: str, *, missing_ok: bool = False
) -> list[PasswordMeta]:
    return passwords.read_token_passwords(ctx, token_name, missing_ok=missing_ok)


@task(
    task_run_name="generate-password-{token_name}-{slot}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def generate_password(
    ctx: AzureContext, token_name: str, slot: str, *, expiry: datetime | None = None
) -> GeneratedPassword:
    return passwords.generate_password(ctx, token_name, slot, expiry=expiry)


@task(task_run_name="ensure-password-{change.step}", cache_policy=NO_CACHE, persist_result=False)
def ensure_password(
    ctx: AzureContext, change: Change, *, expiry: datetime | None = None, dry_run: bool = False
) -> tuple[StepResult, GeneratedPassword | None]:
    return passwords.ensure_password(ctx, change, expiry=expiry, dry_run=dry_run)


@task(task_run_name="ensure-client-scope-map-{name}", **_COMMON)  # type: ignore[call-overload]
def ensure_client_scope_map(
    ctx: AzureContext, name: str, repositories: Iterable[str], *, dry_run: bool = False
) -> StepResult:
    return scope_maps.ensure_client_scope_map(ctx, name, repositories, dry_run=dry_run)


@task(task_run_name="ensure-client-token-{name}", **_COMMON)  # type: ignore[call-overload]
def ensure_client_token(
    ctx: AzureContext, name: str, scope_map_name: str, *, dry_run: bool = False
) -> StepResult:
    return tokens.ensure_client_token(ctx, name, scope_map_name, dry_run=dry_run)


@task(task_run_name="attach-client-token-{token_name}-to-{cr_name}", **_COMMON)  # type: ignore[call-overload]
def attach_client_token(
    ctx: AzureContext, cr_name: str, token_name: str, *, dry_run: bool = False
) -> StepResult:
    return connected_registry.attach_client_token(ctx, cr_name, token_name, dry_run=dry_run)


@task(task_run_name="client-repositories-{scope_map_name}", **_COMMON)  # type: ignore[call-overload]
def client_repositories(ctx: AzureContext, scope_map_name: str) -> list[str]:
    return scope_maps.client_repositories(ctx, scope_map_name)


@task(task_run_name="revoke-password-{token_name}-{slot}", **_COMMON)  # type: ignore[call-overload]
def revoke_password(
    ctx: AzureContext, token_name: str, slot: str, *, step: str = "revoke", dry_run: bool = False
) -> StepResult:
    return passwords.revoke_password(ctx, token_name, slot, step=step, dry_run=dry_run)
