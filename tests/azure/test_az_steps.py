"""Task wrappers: transient-only retries, never cached, secrets never persisted."""

from __future__ import annotations

from prefect.cache_policies import NO_CACHE

from model.retry import retry_condition
from tasks.azure import ops, steps

STEPS = [
    "list_repositories",
    "preflight_parent",
    "ensure_sync_scope_map",
    "ensure_sync_token",
    "ensure_connected_registry",
    "read_connected_registry",
    "read_token_passwords",
    "ensure_client_scope_map",
    "ensure_client_token",
    "attach_client_token",
    "revoke_password",
]


def test_every_step_retries_transient_only_and_never_caches() -> None:
    for name in STEPS:
        task = getattr(steps, name)
        assert task.fn.__name__ == name and hasattr(ops, name)
        assert task.retry_condition_fn is retry_condition, name
        assert task.retries >= 1, name
        assert task.cache_policy is NO_CACHE, name
        assert "{" in task.task_run_name, name


def test_generate_password_is_neither_persisted_nor_retried_by_prefect() -> None:
    task = steps.generate_password
    assert task.persist_result is False
    assert task.cache_policy is NO_CACHE
    assert task.retries == 0  # ops.generate_password retries itself, slot-aware
