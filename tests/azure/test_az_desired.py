"""Desired bodies and pure plans: create / update / no-op with a reason / refuse with a fix."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.errors import InputError, PermanentError
from tasks.azure import desired as d
from tasks.azure import password_plans as pp
from tasks.azure.schedule import format_duration, parse_duration

BASE = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerRegistry/registries/reg"
TOKEN = f"{BASE}/tokens/site01"
SM = f"{BASE}/scopeMaps/site01"


def test_spec_defaults() -> None:
    spec = d.ConnectedRegistrySpec(name="site01")
    body = d.desired_connected_registry(spec, TOKEN)
    assert body == {
        "properties": {
            "mode": "ReadOnly",
            "parent": {
                "syncProperties": {
                    "tokenId": TOKEN,
                    "schedule": "30 * * * *",
                    "messageTtl": "P2D",
                    "syncWindow": "PT1H",
                }
            },
            # the az CLI's defaults for a new connected registry: it enables GC, daily
            "logging": {"logLevel": "Information", "auditLogStatus": "Disabled"},
            "garbageCollection": {"enabled": True, "schedule": "0 0 * * *"},
        }
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "Site01"},
        {"name": "site01", "mode": "Writer"},
        {"name": "site01", "sync_schedule": "61 * * * *"},
        {"name": "site01", "sync_window": "PT30M"},
        {"name": "site01", "sync_window": "P8D"},
        {"name": "site01", "message_ttl": "PT12H"},
        {"name": "site01", "message_ttl": "P91D"},
        {"name": "site01", "sync_window": None},  # scheduled sync needs a window
        {"name": "site01", "log_level": "Verbose"},
        {"name": "site01", "client_token_ids": tuple(f"{BASE}/tokens/t{i:04d}" for i in range(21))},
    ],
)
def test_spec_refuses_bad_input(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InputError):
        d.ConnectedRegistrySpec(**kwargs)


def test_continuous_sync_needs_no_window() -> None:
    spec = d.ConnectedRegistrySpec(name="site01", sync_schedule="* * * * *", sync_window=None)
    assert (
        "syncWindow"
        not in d.desired_connected_registry(spec, TOKEN)["properties"]["parent"]["syncProperties"]
    )


def _cr(**over: Any) -> dict[str, Any]:
    props = d.desired_connected_registry(d.ConnectedRegistrySpec(name="site01"), TOKEN)[
        "properties"
    ]
    props = {**props, "connectionState": "Offline", "provisioningState": "Succeeded"}
    props["parent"]["syncProperties"]["gatewayEndpoint"] = "reg.eastus.data.azurecr.io"
    props.update(over)
    return {"id": f"{BASE}/connectedRegistries/site01", "properties": props}


def test_cr_create_then_noop() -> None:
    spec = d.ConnectedRegistrySpec(name="site01")
    assert d.plan_connected_registry(None, spec, TOKEN).action == "create"
    change = d.plan_connected_registry(_cr(mode="readonly"), spec, TOKEN)
    assert change.action == "none" and "already matches" in change.reason


def test_cr_equivalent_durations_are_no_change() -> None:
    actual = _cr()
    actual["properties"]["parent"]["syncProperties"].update(
        messageTtl="P2DT0H", syncWindow="01:00:00"
    )
    assert (
        d.plan_connected_registry(actual, d.ConnectedRegistrySpec(name="site01"), TOKEN).action
        == "none"
    )


def test_cr_update_patch_only_the_difference() -> None:
    spec = d.ConnectedRegistrySpec(name="site01", sync_schedule="0 * * * *", message_ttl="P3D")
    change = d.plan_connected_registry(_cr(), spec, TOKEN)
    assert change.action == "update"
    assert change.payload.body == {
        "properties": {"syncProperties": {"schedule": "0 * * * *", "messageTtl": "P3D"}}
    }


def test_cr_mode_is_immutable() -> None:
    with pytest.raises(PermanentError) as exc:
        d.plan_connected_registry(
            _cr(), d.ConnectedRegistrySpec(name="site01", mode="ReadWrite"), TOKEN
        )
    assert "Fix:" in str(exc.value) and "connectedRegistries/site01" in str(exc.value)


def test_cr_parent_and_token_are_immutable() -> None:
    spec = d.ConnectedRegistrySpec(name="site01", parent_id=f"{BASE}/connectedRegistries/up")
    with pytest.raises(PermanentError, match="parent"):
        d.plan_connected_registry(_cr(), spec, TOKEN)
    with pytest.raises(PermanentError, match="token"):
        d.plan_connected_registry(
            _cr(), d.ConnectedRegistrySpec(name="site01"), f"{BASE}/tokens/other"
        )


def _ids(ids: list[str]) -> dict[str, Any]:
    return {"properties": {"clientTokenIds": ids}}


def test_client_token_ids_union_keeps_others() -> None:
    other = f"{BASE}/tokens/other-client"
    mine = f"{BASE}/tokens/site01-client"
    change = d.plan_client_token_ids(_ids([other]), [mine], name="site01")
    assert change.payload.body == {"properties": {"clientTokenIds": [other, mine]}}
    again = d.plan_client_token_ids(_ids([other, mine.upper()]), [mine], name="site01")
    assert again.action == "none" and "site01-client" in again.reason
    with pytest.raises(InputError):
        d.plan_client_token_ids(
            _ids([f"{BASE}/tokens/t{i:03d}" for i in range(20)]), [mine], name="site01"
        )


def test_scope_map_create_update_noop_and_ownership() -> None:
    want = d.desired_scope_map(d.sync_map_description("site01"), ["a/b", "c/d"])
    assert d.plan_scope_map(None, want, step="sync-scope-map", name="site01").action == "create"
    same = {
        "properties": {
            "description": d.sync_map_description("site01"),
            "actions": ["C/D", "a/b"],
            "type": "UserDefined",
        }
    }
    change = d.plan_scope_map(same, want, step="sync-scope-map", name="site01")
    assert change.action == "none" and change.reason == "scope map site01 already has its 2 actions"
    stale = {"properties": {"description": d.sync_map_description("site01"), "actions": ["a/b"]}}
    upd = d.plan_scope_map(stale, want, step="sync-scope-map", name="site01")
    assert upd.action == "update" and upd.payload.body == {
        "properties": {"actions": ["a/b", "c/d"]}
    }
    foreign = {"properties": {"description": "hand made", "actions": ["a/b"]}}
    with pytest.raises(PermanentError, match="not created by acr-edge"):
        d.plan_scope_map(foreign, want, step="sync-scope-map", name="site01")
    client_want = d.desired_scope_map(d.client_map_description("site01-client"), ["a/b"])
    assert d.CLIENT_MAP_MARKER in client_want["properties"]["description"]


def test_token_plan() -> None:
    assert d.plan_token(None, SM, step="sync-token", name="site01").payload.body == {
        "properties": {"scopeMapId": SM, "status": "enabled"}
    }
    ok = {"properties": {"scopeMapId": SM.lower(), "status": "enabled"}}
    assert d.plan_token(ok, SM, step="sync-token", name="site01").action == "none"
    disabled = {"properties": {"scopeMapId": SM, "status": "disabled"}}
    assert d.plan_token(disabled, SM, step="sync-token", name="site01").payload.body == {
        "properties": {"status": "enabled"}
    }
    with pytest.raises(PermanentError, match="acr-edge only manages"):
        d.plan_token(
            {"properties": {"scopeMapId": f"{BASE}/scopeMaps/x"}},
            SM,
            step="sync-token",
            name="site01",
        )


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("PT1H", timedelta(hours=1)),
        ("P2D", timedelta(days=2)),
        ("P1W", timedelta(days=7)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("1.00:00:00", timedelta(days=1)),
    ],
)
def test_parse_duration(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("bad", ["", "P", "PT", "1H", "P1DT", "two days"])
def test_parse_duration_refuses(bad: str) -> None:
    with pytest.raises(InputError):
        parse_duration(bad)


@given(st.integers(min_value=1, max_value=90 * 86400))
def test_duration_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("expr", ["30 * * * *", "*/15 0-6 * * 1-5", "0 0 1,15 * *", "* * * * *"])
def test_cron_ok(expr: str) -> None:
    assert d.validate_cron(expr) == expr


@pytest.mark.parametrize(
    "expr",
    ["* * * *", "60 * * * *", "* 24 * * *", "5-1 * * * *", "*/0 * * * *", "a * * * *", "* * 0 * *"],
)
def test_cron_refused(expr: str) -> None:
    with pytest.raises(InputError):
        d.validate_cron(expr)


# ---- every plan names its step and resource, and a no-op says why -----------------------------


def test_plans_carry_step_resource_action_and_reason() -> None:
    spec = d.ConnectedRegistrySpec(name="site01")
    created = d.plan_connected_registry(None, spec, TOKEN)
    assert (created.step, created.resource, created.action) == (
        "connected-registry",
        "connectedRegistries/site01",
        "create",
    )
    assert created.payload.name == "site01" and created.payload.body["properties"]["mode"]
    assert created.row() == {
        "step": "connected-registry",
        "resource": "connectedRegistries/site01",
        "action": "create",
        "why": "connected registry site01 does not exist",
    }
    token = d.plan_token(None, SM, step="client-token", name="site01-client")
    assert (token.step, token.resource) == ("client-token", "tokens/site01-client")
    for noop in (
        d.plan_connected_registry(_cr(), spec, TOKEN),
        d.plan_token({"properties": {"scopeMapId": SM}}, SM, step="sync-token", name="site01"),
    ):
        assert noop.action == "none" and not noop.needed and noop.reason.strip()


def test_attach_to_a_registry_that_does_not_exist_yet() -> None:
    mine = f"{BASE}/tokens/site01-client"
    with pytest.raises(PermanentError, match="connected registry not found"):
        d.plan_client_token_ids(None, [mine], name="site01")
    # A dry run plans the attach against the registry the run would create: same row as the
    # real run, which attaches to the freshly created (empty) registry.
    planned = d.plan_client_token_ids(None, [mine], name="site01", absent_is_empty=True)
    real = d.plan_client_token_ids(_ids([]), [mine], name="site01")
    assert planned.row() == real.row()
    assert planned.action == "update" and planned.step == "attach-client-token"
    assert planned.reason == "connected registry site01: attaching client token(s) site01-client"


def _registry(sku: str = "Premium", enabled: bool = True) -> dict[str, Any]:
    return {
        "id": BASE,
        "sku": {"name": sku},
        "properties": {
            "loginServer": "reg.azurecr.io",
            "dataEndpointEnabled": enabled,
            "dataEndpointHostNames": ["reg.eastus.data.azurecr.io"] if enabled else [],
        },
    }


def test_preflight_plan() -> None:
    ok = d.plan_data_endpoint(_registry(), name="reg", enable=False)
    assert ok.action == "none" and ok.step == "preflight-parent"
    assert ok.reason == "registry reg is Premium with its dedicated data endpoint enabled"
    enable = d.plan_data_endpoint(_registry(enabled=False), name="reg", enable=True)
    assert enable.action == "update" and enable.resource == "registries/reg"
    assert enable.payload.body == {"properties": {"dataEndpointEnabled": True}}
    with pytest.raises(PermanentError, match="--data-endpoint-enabled true"):
        d.plan_data_endpoint(_registry(enabled=False), name="reg", enable=False)
    with pytest.raises(PermanentError, match="Premium"):
        d.plan_data_endpoint(_registry(sku="Standard"), name="reg", enable=True)
    with pytest.raises(PermanentError, match="not found"):
        d.plan_data_endpoint(None, name="reg", enable=True)


def _token(*slots: str) -> dict[str, Any]:
    return {
        "properties": {
            "scopeMapId": SM,
            "credentials": {
                "passwords": [
                    {"name": s, "creationTime": "2026-01-01T00:00:00Z", "expiry": None}
                    for s in slots
                ]
            },
        }
    }


def test_revoke_plan_keeps_the_other_slot() -> None:
    change = pp.plan_revoke(
        _token("password1", "password2"), "password1", step="revoke", token_name="site01"
    )
    assert change.action == "revoke" and change.resource == "tokens/site01/password1"
    assert change.payload.body == {
        "properties": {
            "credentials": {
                "passwords": [{"name": "password2", "creationTime": "2026-01-01T00:00:00Z"}]
            }
        }
    }
    assert "keeping ['password2']" in change.reason
    gone = pp.plan_revoke(
        _token("password2"), "password1", step="sync-old-slot", token_name="site01"
    )
    assert gone.action == "none" and gone.step == "sync-old-slot"
    assert gone.reason == "token site01 has no password1; nothing to revoke"


def test_password_plan_is_metadata_only() -> None:
    keep = pp.plan_password(
        "client-password",
        "site01-client",
        "password1",
        keep=True,
        reason="pull secrets hold the live password1",
    )
    assert keep.action == "none" and keep.payload is None
    assert keep.reason == "pull secrets hold the live password1"
    gen = pp.plan_password(
        "sync-credential", "site01", "password2", keep=False, reason="no recorded sync credential"
    )
    assert (gen.step, gen.resource, gen.action) == (
        "sync-credential",
        "tokens/site01/password2",
        "generate",
    )
    assert dict(gen.shown) == {"slot": "password2"}  # no value exists at plan time


def test_a_plan_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        pp.plan_password("client-password", "site01-client", "password1", keep=True, reason=" ")
