"""Preflight permissions and failed LROs through the real SDK pipeline against the sandbox."""

from __future__ import annotations

from typing import Any

import pytest
from azure_sandbox_helpers import block_for

from model import rbac
from model.errors import PermanentError
from tasks.azure import registry
from tasks.azure.arm import lro_failure, write_once


def _scope_map(ctx: Any) -> dict[str, Any]:
    sm = ctx.mgmt.scope_maps.begin_create(
        ctx.resource_group,
        ctx.registry,
        "lrosm",
        {"properties": {"actions": ["repositories/a/content/read"]}},
    ).result()
    return {"properties": {"scopeMapId": sm.id}}


def _ctx_as(sandbox: Any, roles: list[str]) -> Any:
    who = sandbox.azure.add_principal(roles)
    info = {**sandbox.info, "client_id": who["client_id"], "client_secret": who["client_secret"]}
    return block_for(info).azure_context(polling_interval=0, retry_base_delay=0.02)


def test_contributor_passes_the_permissions_check(sandbox: Any, ctx: Any) -> None:
    sandbox.azure.clear_requests()
    result = registry.check_permissions(ctx)
    assert result.action == "none" and "required actions" in result.message
    assert [r for r in sandbox.azure.requests("arm") if r.get("write")] == []


def test_reader_is_refused_naming_every_missing_action(sandbox: Any) -> None:
    ctx = _ctx_as(sandbox, ["Reader"])
    try:
        with pytest.raises(PermanentError) as err:
            registry.check_permissions(ctx)
        planned = registry.check_permissions(ctx, dry_run=True)
    finally:
        ctx.close()
    expected = [a for a in rbac.PROVISION_ACTIONS if not a.endswith("/read")]
    for action in expected:
        assert action in str(err.value)
    assert "Fix:" in str(err.value)
    assert planned.action == registry.BLOCKED and planned.details["missing"] == expected


def test_a_token_put_that_ends_failed_is_one_line_with_the_code(sandbox: Any, ctx: Any) -> None:
    sandbox.azure.fail_lro("/tokens/lrofail$", method="PUT", code="TokenProvisioningFailed")
    body = _scope_map(ctx)
    with pytest.raises(PermanentError) as err:
        write_once(
            lambda: ctx.mgmt.tokens.begin_create(ctx.resource_group, ctx.registry, "lrofail", body)
        )
    text = str(err.value)
    assert text.startswith("tokens/lrofail: the operation ended Failed with ARM error ")
    assert "TokenProvisioningFailed" in text and "\n" not in text


def test_a_canceled_operation_says_canceled(sandbox: Any, ctx: Any) -> None:
    sandbox.azure.fail_lro("/tokens/lrocancel$", method="PUT", status="Canceled")
    body = _scope_map(ctx)
    with pytest.raises(PermanentError, match="ended Canceled with ARM error OperationCanceled"):
        write_once(
            lambda: ctx.mgmt.tokens.begin_create(
                ctx.resource_group, ctx.registry, "lrocancel", body
            )
        )


def test_a_failed_location_poll_with_a_5xx_stays_transient() -> None:
    from azure.core.exceptions import HttpResponseError

    class Resp:
        status_code = 500
        reason = "Internal Server Error"
        request = None
        headers: dict[str, str] = {}

        def text(self) -> str:
            return '{"error": {"code": "InternalServerError", "message": "retry later"}}'

    exc = HttpResponseError(response=Resp())  # type: ignore[arg-type]
    assert lro_failure(exc) is None  # converge re-reads and plans again
