"""The operator's connected-registry settings: the az CLI's defaults when a connected registry is
created, and only what the spec states converged on an existing one (pure plans, then the real
step against the sandbox through the SDK)."""

from __future__ import annotations

from typing import Any

import pytest
from azure_sandbox_helpers import Internal

from model.azure_context import AzureContext
from model.errors import InputError
from tasks.azure import connected_registry as crs
from tasks.azure import desired as d
from tasks.azure import registry, scope_maps, tokens
from tasks.azure.arm import rg
from tasks.azure.spec import ConnectedRegistrySpec

BASE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg"
TOKEN = f"{BASE}/tokens/site01"


def _existing(**settings: Any) -> dict[str, Any]:
    """A connected registry as ARM returns it, created with the defaults, then ``settings``."""
    props = d.desired_connected_registry(ConnectedRegistrySpec(name="site01"), TOKEN)["properties"]
    props.update({"connectionState": "Online", "provisioningState": "Succeeded"}, **settings)
    return {"id": f"{BASE}/connectedRegistries/site01", "properties": props}


# ---- create: the az CLI's defaults, or what the spec states --------------------------------


def test_create_gets_the_az_cli_defaults_for_a_new_connected_registry() -> None:
    change = d.plan_connected_registry(None, ConnectedRegistrySpec(name="site01"), TOKEN)
    props = change.payload.body["properties"]
    assert change.action == "create"
    assert props["logging"] == {"logLevel": "Information", "auditLogStatus": "Disabled"}
    # azure-cli 2.91.0: --gc-enabled defaults to true, --gc-schedule to "0 0 * * *"
    assert props["garbageCollection"] == {"enabled": True, "schedule": "0 0 * * *"}
    assert "notificationsList" not in props  # the CLI sends none rather than an empty list


def test_create_takes_every_stated_setting() -> None:
    spec = ConnectedRegistrySpec(
        name="site01",
        log_level="debug",
        audit_log_status="enabled",
        gc_enabled=False,
        gc_schedule="0  3 * * 0",
        notifications=("hello-world:*:*", "team/app/*:1.0:*", "hello-world:*:*"),
    )
    props = d.plan_connected_registry(None, spec, TOKEN).payload.body["properties"]
    assert props["logging"] == {"logLevel": "Debug", "auditLogStatus": "Enabled"}
    assert props["garbageCollection"] == {"enabled": False, "schedule": "0 3 * * 0"}
    assert props["notificationsList"] == ["hello-world:*:*", "team/app/*:1.0:*"]


# ---- existing: only what the spec states ---------------------------------------------------


def test_unstated_settings_leave_the_operators_values_alone() -> None:
    actual = _existing(
        logging={"logLevel": "Debug", "auditLogStatus": "Enabled"},
        garbageCollection={"enabled": False, "schedule": "0 4 * * *"},
        notificationsList=["hello-world:*:*"],
    )
    change = d.plan_connected_registry(actual, ConnectedRegistrySpec(name="site01"), TOKEN)
    assert change.action == "none"
    assert "already matches" in change.reason


def test_a_stated_log_level_is_converged_and_named_with_audit_logs_kept() -> None:
    actual = _existing(logging={"logLevel": "Debug", "auditLogStatus": "Enabled"})
    spec = ConnectedRegistrySpec(name="site01", log_level="Information")
    change = d.plan_connected_registry(actual, spec, TOKEN)
    assert change.action == "update"
    assert "log level Debug -> Information" in change.reason
    assert "audit" not in change.reason and "garbage" not in change.reason
    # the whole logging object is sent, so a replace on ARM's side keeps the audit setting too
    assert change.payload.body == {
        "properties": {"logging": {"logLevel": "Information", "auditLogStatus": "Enabled"}}
    }


def test_each_changed_setting_is_named_in_the_reason() -> None:
    actual = _existing(notificationsList=["old/*:*:*"])
    spec = ConnectedRegistrySpec(
        name="site01",
        audit_log_status="Enabled",
        gc_enabled=False,
        gc_schedule="0 3 * * 0",
        notifications=("hello-world:*:*", "team/app/*:1.0:*"),
    )
    change = d.plan_connected_registry(actual, spec, TOKEN)
    for words in (
        "audit logs Disabled -> Enabled",
        "garbage collection disabled (was true)",
        "garbage collection schedule 0 0 * * * -> 0 3 * * 0",
        "notifications 1 -> 2 patterns",
    ):
        assert words in change.reason
    assert "log level" not in change.reason
    assert change.payload.body["properties"] == {
        "logging": {"logLevel": "Information", "auditLogStatus": "Enabled"},
        "garbageCollection": {"enabled": False, "schedule": "0 3 * * 0"},
        "notificationsList": ["hello-world:*:*", "team/app/*:1.0:*"],
    }


def test_equal_settings_in_another_spelling_or_order_are_no_change() -> None:
    actual = _existing(
        logging={"logLevel": "Debug", "auditLogStatus": "Disabled"},
        garbageCollection={"enabled": True, "schedule": "0 0 * * *"},
        notificationsList=["b/*:*:*", "a/*:*:*"],
    )
    spec = ConnectedRegistrySpec(
        name="site01",
        log_level="DEBUG",
        gc_enabled=True,
        gc_schedule="0 0 * *  *",
        notifications=("a/*:*:*", "b/*:*:*"),
    )
    assert d.plan_connected_registry(actual, spec, TOKEN).action == "none"


def test_an_empty_notifications_list_clears_them_and_a_missing_setting_is_set() -> None:
    actual = _existing(notificationsList=["hello-world:*:*"])
    del actual["properties"]["garbageCollection"]
    spec = ConnectedRegistrySpec(name="site01", gc_enabled=True, notifications=())
    change = d.plan_connected_registry(actual, spec, TOKEN)
    assert change.payload.body["properties"] == {
        "garbageCollection": {"enabled": True},
        "notificationsList": [],
    }
    assert "garbage collection enabled (was unset)" in change.reason
    assert "notifications 1 -> 0 patterns" in change.reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"log_level": "Verbose"},
        {"log_level": ""},
        {"audit_log_status": "On"},
        {"gc_schedule": "61 * * * *"},
        {"gc_schedule": "0 3 * * MON"},
        {"gc_enabled": "yes"},
        {"notifications": ("hello-world",)},
        {"notifications": ("Hello:*:*",)},
        {"notifications": ("a:b:c:d",)},
        {"notifications": ("a:*:*\n",)},
        {"notifications": tuple(f"r{i}:*:*" for i in range(101))},
    ],
)
def test_bad_settings_are_refused_before_anything_is_planned(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        ConnectedRegistrySpec(name="site01", **kwargs)


# ---- the real step against the sandbox ------------------------------------------------------


def _prepare(ctx: AzureContext, sandbox: Any, cr: str) -> None:
    sandbox.azure.add_repositories(["team7/a"])
    registry.preflight_parent(
        ctx, repositories=["team7/a"], client_token_count=1, enable_data_endpoint=True
    )
    scope_maps.ensure_sync_scope_map(ctx, cr, ["team7/a"], "ReadOnly")
    tokens.ensure_sync_token(ctx, cr)


def _settings(ctx: AzureContext, cr: str) -> dict[str, Any]:
    raw = crs.read_connected_registry_raw(ctx, cr)
    assert raw is not None
    props = raw["properties"]
    return {k: props.get(k) for k in ("logging", "garbageCollection", "notificationsList")}


def test_operator_debug_logging_survives_a_run_that_does_not_state_it(
    sandbox: Any, internal: Internal, ctx: AzureContext
) -> None:
    cr = "site07"
    _prepare(ctx, sandbox, cr)
    created = crs.ensure_connected_registry(ctx, ConnectedRegistrySpec(name=cr))
    assert created.action == "create"
    assert _settings(ctx, cr)["garbageCollection"] == {"enabled": True, "schedule": "0 0 * * *"}

    # the operator turns on debug logging to troubleshoot, through the SDK as `az` would
    ctx.cr_mgmt.connected_registries.begin_update(
        *rg(ctx), cr, {"properties": {"logging": {"logLevel": "Debug"}}}
    ).result()

    internal.clear_requests()
    again = crs.ensure_connected_registry(ctx, ConnectedRegistrySpec(name=cr))
    assert again.action == "none" and internal.writes() == []
    assert _settings(ctx, cr)["logging"] == {"logLevel": "Debug", "auditLogStatus": "Disabled"}

    stated = crs.ensure_connected_registry(
        ctx, ConnectedRegistrySpec(name=cr, log_level="Information", notifications=("a/*:*:*",))
    )
    assert stated.action == "update" and stated.writes == 1
    assert "log level Debug -> Information" in stated.message
    assert _settings(ctx, cr) == {
        "logging": {"logLevel": "Information", "auditLogStatus": "Disabled"},
        "garbageCollection": {"enabled": True, "schedule": "0 0 * * *"},
        "notificationsList": ["a/*:*:*"],
    }
    internal.clear_requests()
    converged = crs.ensure_connected_registry(
        ctx, ConnectedRegistrySpec(name=cr, log_level="Information", notifications=("a/*:*:*",))
    )
    assert converged.action == "none" and internal.writes() == []
