"""Prefect task wrappers around the ARM teardown steps: no logic, no retries, nothing cached."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.azure import registry, teardown

_COMMON: dict[str, Any] = {"cache_policy": NO_CACHE}

deactivate_connected_registry = task(
    task_run_name="deactivate-connected-registry-{cr_name}", **_COMMON
)(teardown.deactivate_connected_registry)
delete_connected_registry = task(task_run_name="delete-connected-registry-{cr_name}", **_COMMON)(
    teardown.delete_connected_registry
)
delete_sync_token = task(task_run_name="delete-sync-token-{cr_name}", **_COMMON)(
    teardown.delete_sync_token
)
delete_client_token = task(task_run_name="delete-client-token-{name}", **_COMMON)(
    teardown.delete_client_token
)
delete_sync_scope_map = task(task_run_name="delete-sync-scope-map-{cr_name}", **_COMMON)(
    teardown.delete_sync_scope_map
)
delete_client_scope_map = task(task_run_name="delete-client-scope-map-{name}", **_COMMON)(
    teardown.delete_client_scope_map
)
check_teardown_permissions = task(
    task_run_name="preflight-teardown-permissions-{ctx.registry}", **_COMMON
)(registry.check_teardown_permissions)
