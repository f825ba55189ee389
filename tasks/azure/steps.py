"""Prefect task wrappers around the Azure steps: retries for transient errors only, no logic.

Side-effecting tasks never cache; tasks returning secrets never persist their result.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from model.azure_context import AzureContext
from model.result import StepResult
from model.retry import retry_condition
from tasks.azure import ops, reads
from tasks.azure.desired import ConnectedRegistrySpec

_RETRY = {
    "retries": 3,
    "retry_delay_seconds": [2, 10, 30],
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_condition,
    "cache_policy": NO_CACHE,
}


@task(task_run_name="list-repositories-{namespaces}", **_RETRY)  # type: ignore[call-overload]
def list_repositories(
    ctx: AzureContext, namespaces: list[str], *, allow_empty: bool = False
) -> list[str]:
    return ops.list_repositories(ctx, namespaces, allow_empty=allow_empty)


@task(task_run_name="preflight-parent-{ctx.registry}", **_RETRY)  # type: ignore[call-overload]
def preflight_parent(
    ctx: AzureContext,
    *,
    repositories: list[str],
    client_token_count: int,
    enable_data_endpoint: bool,
) -> ops.ParentInfo:
    return ops.preflight_parent(
        ctx,
        repositories=repositories,
        client_token_count=client_token_count,
        enable_data_endpoint=enable_data_endpoint,
    )


@task(task_run_name="ensure-sync-scope-map-{cr_name}", **_RETRY)  # type: ignore[call-overload]
def ensure_sync_scope_map(
    ctx: AzureContext, cr_name: str, repositories: Iterable[str], mode: str
) -> StepResult:
    return ops.ensure_sync_scope_map(ctx, cr_name, repositories, mode)


@task(task_run_name="ensure-sync-token-{cr_name}", **_RETRY)  # type: ignore[call-overload]
def ensure_sync_token(ctx: AzureContext, cr_name: str) -> StepResult:
    return ops.ensure_sync_token(ctx, cr_name)


@task(task_run_name="ensure-connected-registry-{spec.name}", **_RETRY)  # type: ignore[call-overload]
def ensure_connected_registry(ctx: AzureContext, spec: ConnectedRegistrySpec) -> StepResult:
    return ops.ensure_connected_registry(ctx, spec)


@task(task_run_name="read-connected-registry-{cr_name}", **_RETRY)  # type: ignore[call-overload]
def read_connected_registry(ctx: AzureContext, cr_name: str) -> ops.ConnectedRegistryInfo | None:
    return ops.read_connected_registry(ctx, cr_name)


@task(task_run_name="read-token-passwords-{token_name}", **_RETRY)  # type: ignore[call-overload]
def read_token_passwords(ctx: AzureContext, token_name: str) -> list[ops.PasswordMeta]:
    return ops.read_token_passwords(ctx, token_name)


# No Prefect-level retries: a retry would call generateCredentials again outside the slot check
# that ops.generate_password does; transient failures are already retried inside it.
@task(
    task_run_name="generate-password-{token_name}-{slot}",
    cache_policy=NO_CACHE,
    persist_result=False,
)
def generate_password(
    ctx: AzureContext, token_name: str, slot: str, *, expiry: datetime | None = None
) -> ops.GeneratedPassword:
    return ops.generate_password(ctx, token_name, slot, expiry=expiry)


@task(task_run_name="ensure-client-scope-map-{name}", **_RETRY)  # type: ignore[call-overload]
def ensure_client_scope_map(
    ctx: AzureContext, name: str, repositories: Iterable[str]
) -> StepResult:
    return ops.ensure_client_scope_map(ctx, name, repositories)


@task(task_run_name="ensure-client-token-{name}", **_RETRY)  # type: ignore[call-overload]
def ensure_client_token(ctx: AzureContext, name: str, scope_map_name: str) -> StepResult:
    return ops.ensure_client_token(ctx, name, scope_map_name)


@task(task_run_name="attach-client-token-{token_name}-to-{cr_name}", **_RETRY)  # type: ignore[call-overload]
def attach_client_token(ctx: AzureContext, cr_name: str, token_name: str) -> StepResult:
    return ops.attach_client_token(ctx, cr_name, token_name)


@task(task_run_name="client-repositories-{scope_map_name}", **_RETRY)  # type: ignore[call-overload]
def client_repositories(ctx: AzureContext, scope_map_name: str) -> list[str]:
    return reads.client_repositories(ctx, scope_map_name)


@task(task_run_name="revoke-password-{token_name}-{slot}", **_RETRY)  # type: ignore[call-overload]
def revoke_password(ctx: AzureContext, token_name: str, slot: str) -> StepResult:
    return ops.revoke_password(ctx, token_name, slot)
