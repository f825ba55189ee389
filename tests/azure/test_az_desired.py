"""Desired bodies and diffs: create / update / no-op with a reason / refuse with a fix."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.errors import InputError, PermanentError
from tasks.azure import desired as d
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
            "logging": {"logLevel": "Information", "auditLogStatus": "Disabled"},
            "garbageCollection": {"enabled": False, "schedule": "0 0 * * *"},
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
    assert d.diff_connected_registry(None, spec, TOKEN).op == "create"
    change = d.diff_connected_registry(_cr(mode="readonly"), spec, TOKEN)
    assert change.op == "none" and "already matches" in change.reason


def test_cr_equivalent_durations_are_no_change() -> None:
    actual = _cr()
    actual["properties"]["parent"]["syncProperties"].update(
        messageTtl="P2DT0H", syncWindow="01:00:00"
    )
    assert (
        d.diff_connected_registry(actual, d.ConnectedRegistrySpec(name="site01"), TOKEN).op
        == "none"
    )


def test_cr_update_patch_only_the_difference() -> None:
    spec = d.ConnectedRegistrySpec(name="site01", sync_schedule="0 * * * *", message_ttl="P3D")
    change = d.diff_connected_registry(_cr(), spec, TOKEN)
    assert change.op == "update"
    assert change.body == {
        "properties": {"syncProperties": {"schedule": "0 * * * *", "messageTtl": "P3D"}}
    }


def test_cr_mode_is_immutable() -> None:
    with pytest.raises(PermanentError) as exc:
        d.diff_connected_registry(
            _cr(), d.ConnectedRegistrySpec(name="site01", mode="ReadWrite"), TOKEN
        )
    assert "Fix:" in str(exc.value) and "connectedRegistries/site01" in str(exc.value)


def test_cr_parent_and_token_are_immutable() -> None:
    spec = d.ConnectedRegistrySpec(name="site01", parent_id=f"{BASE}/connectedRegistries/up")
    with pytest.raises(PermanentError, match="parent"):
        d.diff_connected_registry(_cr(), spec, TOKEN)
    with pytest.raises(PermanentError, match="token"):
        d.diff_connected_registry(
            _cr(), d.ConnectedRegistrySpec(name="site01"), f"{BASE}/tokens/other"
        )


def test_client_token_ids_union_keeps_others() -> None:
    other = f"{BASE}/tokens/other-client"
    mine = f"{BASE}/tokens/site01-client"
    change = d.diff_client_token_ids([other], [mine], name="site01")
    assert change.body == {"properties": {"clientTokenIds": [other, mine]}}
    again = d.diff_client_token_ids([other, mine.upper()], [mine], name="site01")
    assert again.op == "none" and "site01-client" in again.reason
    with pytest.raises(InputError):
        d.diff_client_token_ids(
            [f"{BASE}/tokens/t{i:03d}" for i in range(20)], [mine], name="site01"
        )


def test_scope_map_create_update_noop_and_ownership() -> None:
    want = d.desired_scope_map(d.sync_map_description("site01"), ["a/b", "c/d"])
    assert d.diff_scope_map(None, want, name="site01").op == "create"
    same = {
        "properties": {
            "description": d.sync_map_description("site01"),
            "actions": ["C/D", "a/b"],
            "type": "UserDefined",
        }
    }
    change = d.diff_scope_map(same, want, name="site01")
    assert change.op == "none" and change.reason == "scope map site01 already has its 2 actions"
    stale = {"properties": {"description": d.sync_map_description("site01"), "actions": ["a/b"]}}
    upd = d.diff_scope_map(stale, want, name="site01")
    assert upd.op == "update" and upd.body == {"properties": {"actions": ["a/b", "c/d"]}}
    foreign = {"properties": {"description": "hand made", "actions": ["a/b"]}}
    with pytest.raises(PermanentError, match="not created by acr-edge"):
        d.diff_scope_map(foreign, want, name="site01")
    client_want = d.desired_scope_map(d.client_map_description("site01-client"), ["a/b"])
    assert d.CLIENT_MAP_MARKER in client_want["properties"]["description"]


def test_token_diff() -> None:
    assert d.diff_token(None, SM, name="site01").body == {
        "properties": {"scopeMapId": SM, "status": "enabled"}
    }
    ok = {"properties": {"scopeMapId": SM.lower(), "status": "enabled"}}
    assert d.diff_token(ok, SM, name="site01").op == "none"
    disabled = {"properties": {"scopeMapId": SM, "status": "disabled"}}
    assert d.diff_token(disabled, SM, name="site01").body == {"properties": {"status": "enabled"}}
    with pytest.raises(PermanentError, match="acr-edge only manages"):
        d.diff_token({"properties": {"scopeMapId": f"{BASE}/scopeMaps/x"}}, SM, name="site01")


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
