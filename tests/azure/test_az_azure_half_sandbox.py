"""The Azure half against the sandbox: real SDKs over HTTPS, the sandbox's request log as proof."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import pytest
from azure_sandbox_helpers import Internal, block_for

from model import names
from model.azure_context import AzureContext
from model.errors import PermanentError
from model.result import StepResult
from tasks.azure import connected_registry as crs
from tasks.azure import passwords, registry, scope_maps, tokens
from tasks.azure.connection_string import build_sync_connection_string
from tasks.azure.repositories import list_repositories
from tasks.azure.spec import ConnectedRegistrySpec


def seed_three(sandbox: Any) -> str:
    """A namespace holding exactly three repositories (plus a look-alike that must not match)."""
    sandbox.azure.add_repositories(["team3/a", "team3/b", "team3/c/d", "team3x/e"])
    return "team3"


def azure_half(
    ctx: AzureContext,
    cr: str,
    namespaces: list[str],
    *,
    enable_data_endpoint: bool = True,
    mode: str = "ReadOnly",
    generate: bool = True,
) -> tuple[list[StepResult], Any]:
    repos = list_repositories(ctx, namespaces)
    client = names.client_token_name(cr)
    registry.preflight_parent(
        ctx, repositories=repos, client_token_count=1, enable_data_endpoint=enable_data_endpoint
    )
    results = [
        scope_maps.ensure_sync_scope_map(ctx, cr, repos, mode),
        tokens.ensure_sync_token(ctx, cr),
        crs.ensure_connected_registry(ctx, ConnectedRegistrySpec(name=cr, mode=mode)),
        scope_maps.ensure_client_scope_map(ctx, client, repos),
        tokens.ensure_client_token(ctx, client, client),
        crs.attach_client_token(ctx, cr, client),
    ]
    password = passwords.generate_password(ctx, cr, "password1") if generate else None
    return results, password


def _writes(internal: Internal) -> list[tuple[str, str]]:
    return [(r["method"], r["path"]) for r in internal.writes()]


def test_new_connected_registry_then_converged_rerun(
    sandbox: Any, internal: Internal, ctx: AzureContext, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="acr_edge")
    ns = seed_three(sandbox)
    assert list_repositories(ctx, [ns]) == ["team3/a", "team3/b", "team3/c/d"]
    internal.clear_requests()
    results, password = azure_half(ctx, "site01", [ns])
    assert [r.changed for r in results] == [True] * 6
    writes = _writes(internal)
    base = f"{ctx.registry_id}"
    expected = [
        ("PATCH", base),  # the seeded registry has its data endpoint disabled
        ("PUT", f"{base}/scopeMaps/site01"),
        ("PUT", f"{base}/tokens/site01"),
        ("PUT", f"{base}/connectedRegistries/site01"),
        ("PUT", f"{base}/scopeMaps/site01-client"),
        ("PUT", f"{base}/tokens/site01-client"),
        ("PATCH", f"{base}/connectedRegistries/site01"),
        ("POST", f"{base}/generateCredentials"),
    ]
    assert [(m, p.lower()) for m, p in writes] == [(m, p.lower()) for m, p in expected]

    sync_map = ctx.mgmt.scope_maps.get(ctx.resource_group, ctx.registry, "site01").as_dict()
    assert len(sync_map["properties"]["actions"]) == 3 * 2 + 4
    assert "repositories/team3x/e/content/read" not in sync_map["properties"]["actions"]
    info = crs.read_connected_registry(ctx, "site01")
    assert info is not None
    assert (info.mode, info.sync_schedule, info.sync_window) == ("ReadOnly", "30 * * * *", "PT1H")
    assert info.client_token_ids == [ctx.token_id("site01-client")]
    client_map = ctx.mgmt.scope_maps.get(ctx.resource_group, ctx.registry, "site01-client")
    assert len(client_map.as_dict()["properties"]["actions"]) == 3 * 2

    assert info.gateway_endpoint
    cs = build_sync_connection_string(
        "site01", password.username, password.password, info.gateway_endpoint
    )
    assert re.fullmatch(
        r"ConnectedRegistryName=site01;SyncTokenName=site01;SyncTokenPassword=[^;]+;"
        r"ParentGatewayEndpoint=[a-z0-9.-]+(:\d+)?;ParentEndpointProtocol=https",
        cs.get_secret_value(),
    )
    activated = internal.activate(cs.get_secret_value())
    assert activated["ok"], activated
    assert activated["connection_state"] == "Online"

    internal.clear_requests()
    again, _ = azure_half(ctx, "site01", [ns], generate=False)
    assert _writes(internal) == []
    for result in again:
        assert not result.changed and result.writes == 0
        assert result.message and ("already" in result.message)
    assert again[0].message == "scope map site01 already has its 10 actions"

    # No secret the sandbox issued (client secret, passwords) reached a log line or a result.
    issued = internal.call("GET", "/secrets")["secrets"]
    assert password.password.get_secret_value() in issued
    visible = caplog.text + repr(results) + repr(again) + repr(password)
    assert not [s for s in issued if s and s in visible]


def test_transient_faults_converge_without_duplicates_or_burnt_slots(
    sandbox: Any, internal: Internal
) -> None:
    ns = seed_three(sandbox)
    # Waits are capped at 0.05 s (Retry-After included) to keep the test fast; the Retry-After
    # test below proves the header is honoured under the default cap.
    ctx = block_for(sandbox.info).azure_context(
        polling_interval=0, retry_base_delay=0.02, retry_max_delay=0.05, retry_attempts=8
    )
    sandbox.azure.faults.reseed(20)
    # 20% of ARM and catalog calls fail: 429 (small Retry-After), 503, dropped connections.
    for kind in ("429", "503", "drop"):
        sandbox.azure.add_fault(
            kind=kind,
            path="^/(subscriptions|acr)/",
            rate=0.2 / 3,
            times=None,
            retry_after=1 if kind == "429" else 0,
        )
    sites = ["site02a", "site02b", "site02c"]
    for cr in sites:
        _, password = azure_half(ctx, cr, [ns])
        assert password is not None
    sandbox.azure.clear_faults()
    fired = {r["status"] for r in internal.requests() if r["status"] in (429, 503, 0)}
    assert fired == {429, 503, 0}, "not every fault kind fired; reseed"
    listed = {
        "scopeMaps": [x.name for x in ctx.mgmt.scope_maps.list(ctx.resource_group, ctx.registry)],
        "tokens": [x.name for x in ctx.mgmt.tokens.list(ctx.resource_group, ctx.registry)],
        "connectedRegistries": [
            x.name for x in ctx.cr_mgmt.connected_registries.list(ctx.resource_group, ctx.registry)
        ],
    }
    for cr in sites:
        assert listed["scopeMaps"].count(cr) == listed["scopeMaps"].count(f"{cr}-client") == 1
        assert listed["tokens"].count(cr) == listed["tokens"].count(f"{cr}-client") == 1
        assert listed["connectedRegistries"].count(cr) == 1
        assert [m.slot for m in passwords.read_token_passwords(ctx, cr)] == ["password1"]
        info = crs.read_connected_registry(ctx, cr)
        assert info is not None and info.client_token_ids == [ctx.token_id(f"{cr}-client")]
    internal.clear_requests()
    for cr in sites:
        azure_half(ctx, cr, [ns], generate=False)
    assert _writes(internal) == []


def test_listing_reads_every_catalog_page(
    sandbox: Any, internal: Internal, ctx: AzureContext
) -> None:
    repos = [f"big/r{i:04d}" for i in range(1050)] + ["bigx/r0"]
    sandbox.azure.set_repositories(repos)
    internal.clear_requests()
    assert list_repositories(ctx, ["big"]) == sorted(repos[:-1])
    pages = [
        r for r in internal.requests() if r["path"] == "/acr/v1/_catalog" and r["status"] == 200
    ]
    assert len(pages) == 11  # 100 per page


def test_retry_after_is_honoured(sandbox: Any, ctx: AzureContext) -> None:
    sandbox.azure.add_fault(
        "429", method="GET", path="/registries/contosoedge$", times=1, retry_after=1
    )
    start = time.monotonic()
    registry.preflight_parent(
        ctx, repositories=["a"], client_token_count=1, enable_data_endpoint=True
    )
    assert time.monotonic() - start >= 1.0  # base delay is 0.02 s: only Retry-After explains it


def test_lost_generate_response_regenerates_the_same_slot_only(
    sandbox: Any, internal: Internal, ctx: AzureContext, caplog: pytest.LogCaptureFixture
) -> None:
    ns = seed_three(sandbox)
    azure_half(ctx, "site03", [ns], generate=False)
    # The POST is accepted (server regenerates) but the poll for its result is dropped, every
    # time the pipeline asks (one drop alone is retried by the pipeline: a poll is a read).
    sandbox.azure.add_fault(path="/operationResults/", sequence=["drop"] * ctx.policy.attempts)
    with caplog.at_level(logging.WARNING, logger="acr_edge.azure"):
        password = passwords.generate_password(ctx, "site03", "password1")
    assert "response was lost" in caplog.text
    posts = [
        r
        for r in internal.requests()
        if r["method"] == "POST" and r["path"].endswith("/generateCredentials")
    ]
    assert len(posts) == 2
    assert [m.slot for m in passwords.read_token_passwords(ctx, "site03")] == ["password1"]
    info = crs.read_connected_registry(ctx, "site03")
    assert info is not None and info.gateway_endpoint
    cs = build_sync_connection_string(
        "site03", password.username, password.password, info.gateway_endpoint
    )
    assert internal.activate(cs.get_secret_value())["ok"]


def test_revoke_keeps_the_other_slot(sandbox: Any, ctx: AzureContext) -> None:
    ns = seed_three(sandbox)
    azure_half(ctx, "site04", [ns])
    passwords.generate_password(ctx, "site04", "password2")
    result = passwords.revoke_password(ctx, "site04", "password1")
    assert result.changed
    assert [m.slot for m in passwords.read_token_passwords(ctx, "site04")] == ["password2"]
    assert not passwords.revoke_password(ctx, "site04", "password1").changed


def test_mode_change_refused(sandbox: Any, internal: Internal, ctx: AzureContext) -> None:
    ns = seed_three(sandbox)
    azure_half(ctx, "site05", [ns], generate=False)
    internal.clear_requests()
    with pytest.raises(PermanentError, match="mode cannot change"):
        crs.ensure_connected_registry(ctx, ConnectedRegistrySpec(name="site05", mode="ReadWrite"))
    assert _writes(internal) == []


def test_foreign_scope_map_refused(sandbox: Any, internal: Internal, ctx: AzureContext) -> None:
    ns = seed_three(sandbox)
    ctx.mgmt.scope_maps.begin_create(
        ctx.resource_group,
        ctx.registry,
        "site06",
        {"properties": {"description": "made by hand", "actions": ["repositories/x/content/read"]}},
    ).result()
    internal.clear_requests()
    with pytest.raises(PermanentError, match="not created by acr-edge"):
        scope_maps.ensure_sync_scope_map(ctx, "site06", list_repositories(ctx, [ns]), "ReadOnly")
    assert _writes(internal) == []


def test_data_endpoint_disabled_is_a_clear_error(internal: Internal, ctx: AzureContext) -> None:
    internal.clear_requests()
    with pytest.raises(PermanentError) as exc:
        registry.preflight_parent(
            ctx, repositories=["a"], client_token_count=1, enable_data_endpoint=False
        )
    assert "--data-endpoint-enabled true" in str(exc.value)
    assert "enable_data_endpoint" in str(exc.value)
    assert _writes(internal) == []
    planned = registry.preflight_parent(
        ctx, repositories=["a"], client_token_count=1, enable_data_endpoint=True, dry_run=True
    )
    assert planned.planned and planned.action == "update" and not planned.changed
    assert _writes(internal) == []
    info = registry.preflight_parent(
        ctx, repositories=["a"], client_token_count=1, enable_data_endpoint=True
    )
    assert info.changed and info.details["data_endpoint_host_names"]
    assert info.message == planned.message  # the plan row is the run row


def test_limits_checked_before_any_call(internal: Internal, ctx: AzureContext) -> None:
    internal.clear_requests()
    with pytest.raises(PermanentError, match="500"):
        registry.preflight_parent(
            ctx,
            repositories=[f"r{i}" for i in range(501)],
            client_token_count=1,
            enable_data_endpoint=True,
        )
    with pytest.raises(PermanentError, match="20"):
        registry.preflight_parent(
            ctx, repositories=["a"], client_token_count=21, enable_data_endpoint=True
        )
    assert internal.requests() == []


def test_wrong_client_secret_fails_fast(sandbox: Any, internal: Internal) -> None:
    bad = block_for(sandbox.info, client_secret="not-the-secret").azure_context(
        polling_interval=0, retry_base_delay=0.5
    )
    start = time.monotonic()
    with pytest.raises(PermanentError) as exc:
        crs.read_connected_registry(bad, "site07")
    assert time.monotonic() - start < 3
    assert "not-the-secret" not in str(exc.value)
    token_posts = [r for r in internal.requests() if r["path"].endswith("/oauth2/v2.0/token")]
    assert len(token_posts) == 1
