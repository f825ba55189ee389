"""Plan and apply from one model, on the Azure steps against the sandbox.

A dry run of every Azure step writes nothing and returns the rows the real run then reports;
a plan without a reason is refused before the apply, through the real read and apply.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure_sandbox_helpers import Internal

from flows.plan import ARM_STEPS
from model import names
from model.azure_context import AzureContext
from model.plan import Change, converge
from model.result import StepResult
from tasks.azure import connected_registry as crs
from tasks.azure import passwords, registry, scope_maps, tokens
from tasks.azure.password_plans import plan_password
from tasks.azure.repositories import list_repositories
from tasks.azure.spec import ConnectedRegistrySpec


def _steps(ctx: AzureContext, cr: str, repos: list[str], *, dry_run: bool) -> list[StepResult]:
    client = names.client_token_name(cr)
    return [
        registry.preflight_parent(
            ctx,
            repositories=repos,
            client_token_count=1,
            enable_data_endpoint=True,
            dry_run=dry_run,
        ),
        scope_maps.ensure_sync_scope_map(ctx, cr, repos, "ReadOnly", dry_run=dry_run),
        tokens.ensure_sync_token(ctx, cr, dry_run=dry_run),
        crs.ensure_connected_registry(ctx, ConnectedRegistrySpec(name=cr), dry_run=dry_run),
        scope_maps.ensure_client_scope_map(ctx, client, repos, dry_run=dry_run),
        tokens.ensure_client_token(ctx, client, client, dry_run=dry_run),
        crs.attach_client_token(ctx, cr, client, dry_run=dry_run),
    ]


def _rows(results: list[StepResult]) -> list[tuple[str, str, str, str]]:
    return [(r.step, r.resource, r.action, r.message) for r in results]


def test_dry_run_rows_are_the_run_rows_fresh_and_converged(
    sandbox: Any, internal: Internal, ctx: AzureContext
) -> None:
    sandbox.azure.add_repositories(["team9/a", "team9/b"])
    repos = list_repositories(ctx, ["team9"])
    for _ in ("fresh", "converged"):
        internal.clear_requests()
        plan = _steps(ctx, "site09", repos, dry_run=True)
        assert internal.writes() == []
        # converge returns a no-op as it is (0 writes) in a dry run too; a change as planned.
        assert all(r.writes == 0 and not r.changed for r in plan)
        assert all(r.planned for r in plan if r.action != "none")
        run = _steps(ctx, "site09", repos, dry_run=False)
        assert _rows(plan) == _rows(run)
        assert all(r.message.strip() for r in plan + run)  # no-ops say why too
    assert {r.action for r in run} == {"none"}
    # Every ARM step of provision-site's plan but the permissions check (not run here).
    assert [r.step for r in run] == [s for s in ARM_STEPS if s != "preflight-permissions"]


def test_dry_run_of_the_password_steps_generates_nothing(
    sandbox: Any, internal: Internal, ctx: AzureContext
) -> None:
    sandbox.azure.add_repositories(["team8/a"])
    _steps(ctx, "site08", list_repositories(ctx, ["team8"]), dry_run=False)
    change = plan_password("sync-credential", "site08", "password1", keep=False, reason="new")
    internal.clear_requests()
    planned, value = passwords.ensure_password(ctx, change, dry_run=True)
    assert value is None and planned.planned and planned.action == "generate"
    assert internal.writes() == [] and passwords.read_token_passwords(ctx, "site08") == []
    done, value = passwords.ensure_password(ctx, change)
    assert value is not None and done.writes == 1 and done.message == planned.message
    assert value.password.get_secret_value() not in repr(done)
    assert [m.slot for m in passwords.read_token_passwords(ctx, "site08")] == ["password1"]
    revoke = passwords.revoke_password(ctx, "site08", "password1", dry_run=True)
    assert (
        revoke.planned and revoke.action == "revoke" and internal.writes()[-1]["method"] == "POST"
    )
    # A token the run would create has no password yet: read as none in a dry run only.
    assert passwords.read_token_passwords(ctx, "nosuchtoken", missing_ok=True) == []


def test_a_plan_without_a_reason_is_refused_before_the_apply(
    sandbox: Any, internal: Internal, ctx: AzureContext
) -> None:
    """pyinfra's rule: a no-op without a reason is a failure; here through the real read and
    apply of the scope-map step, so nothing is written."""
    internal.clear_requests()
    for action in ("none", "create"):
        with pytest.raises(ValueError, match="needs a reason"):
            converge(
                lambda: scope_maps.read_scope_map(ctx, "site07"),
                lambda _fact, action=action: Change(  # type: ignore[misc]
                    "sync-scope-map", "scopeMaps/site07", action, "  "
                ),
                lambda change: scope_maps.apply_scope_map(ctx, change),
            )
    assert internal.writes() == []
    assert scope_maps.read_scope_map(ctx, "site07") is None
