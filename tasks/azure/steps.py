"""Prefect task wrappers around the Azure steps: no logic, no retries, nothing cached.

No Prefect retries: azure-core retries each request in the client pipeline, and the two write
loops that encode idempotency (``model.plan.converge``'s re-read before rewrite; the slot-aware
password generation) are the only other retries. A task retry on top would repeat them all.
Tasks returning secrets never persist their result.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.azure import (
    bulk_reads,
    connected_registry,
    passwords,
    registry,
    repositories,
    scope_maps,
    tokens,
)

_COMMON: dict[str, Any] = {"cache_policy": NO_CACHE}
# generateCredentials' value exists only in memory: never persisted.
_SECRET: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


list_repositories = task(task_run_name="list-repositories-{namespaces}", **_COMMON)(
    repositories.list_repositories
)
check_permissions = task(task_run_name="preflight-permissions-{ctx.registry}", **_COMMON)(
    registry.check_permissions
)
preflight_parent = task(task_run_name="preflight-parent-{ctx.registry}", **_COMMON)(
    registry.preflight_parent
)
ensure_sync_scope_map = task(task_run_name="ensure-sync-scope-map-{cr_name}", **_COMMON)(
    scope_maps.ensure_sync_scope_map
)
ensure_sync_token = task(task_run_name="ensure-sync-token-{cr_name}", **_COMMON)(
    tokens.ensure_sync_token
)
ensure_connected_registry = task(task_run_name="ensure-connected-registry-{spec.name}", **_COMMON)(
    connected_registry.ensure_connected_registry
)
read_connected_registry = task(task_run_name="read-connected-registry-{cr_name}", **_COMMON)(
    connected_registry.read_connected_registry
)
read_token_passwords = task(task_run_name="read-token-passwords-{token_name}", **_COMMON)(
    passwords.read_token_passwords
)
generate_password = task(task_run_name="generate-password-{token_name}-{slot}", **_SECRET)(
    passwords.generate_password
)
ensure_password = task(task_run_name="ensure-password-{change.step}", **_SECRET)(
    passwords.ensure_password
)
ensure_client_scope_map = task(task_run_name="ensure-client-scope-map-{name}", **_COMMON)(
    scope_maps.ensure_client_scope_map
)
ensure_client_token = task(task_run_name="ensure-client-token-{name}", **_COMMON)(
    tokens.ensure_client_token
)
attach_client_token = task(
    task_run_name="attach-client-token-{token_name}-to-{cr_name}", **_COMMON
)(connected_registry.attach_client_token)
client_repositories = task(task_run_name="client-repositories-{scope_map_name}", **_COMMON)(
    scope_maps.client_repositories
)
revoke_password = task(task_run_name="revoke-password-{token_name}-{slot}", **_COMMON)(
    passwords.revoke_password
)
read_arm_facts = task(task_run_name="read-arm-facts-{ctx.registry}", **_COMMON)(
    bulk_reads.read_arm_facts
)
