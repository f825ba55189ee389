"""Task wrappers: no Prefect retries (the in-process policy is the one place), never cached,
secrets never persisted, and every ensure-step takes ``dry_run``."""

from __future__ import annotations

import inspect

from prefect.cache_policies import NO_CACHE

from tasks.azure import steps

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
    "client_repositories",
    "revoke_password",
    "generate_password",
    "ensure_password",
]
WRITES = [
    "preflight_parent",
    "ensure_sync_scope_map",
    "ensure_sync_token",
    "ensure_connected_registry",
    "ensure_client_scope_map",
    "ensure_client_token",
    "attach_client_token",
    "revoke_password",
    "ensure_password",
]


def test_no_step_is_retried_by_prefect_or_cached() -> None:
    for name in STEPS:
        task = getattr(steps, name)
        assert task.fn.__name__ == name
        assert task.retries == 0, name
        assert task.cache_policy is NO_CACHE, name
        assert "{" in task.task_run_name, name


def test_every_write_step_has_a_dry_run() -> None:
    for name in WRITES:
        param = inspect.signature(getattr(steps, name).fn).parameters.get("dry_run")
        assert param is not None and param.kind is param.KEYWORD_ONLY, name
        assert param.default is False, name


def test_secret_returning_steps_are_never_persisted() -> None:
    for name in ("generate_password", "ensure_password"):
        assert getattr(steps, name).persist_result is False, name
