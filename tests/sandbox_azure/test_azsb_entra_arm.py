"""Entra ID and ARM through the real SDKs (azure-identity, azure-mgmt-containerregistry)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from sandbox.runner import RunningSandbox
from sandbox.testing import credential, mgmt_client

ARM = "https://management.azure.com/.default"


def _code(err: HttpResponseError) -> str | None:
    return err.error.code if err.error is not None else None


def _setup_sync(mgmt: Any, info: dict[str, Any], name: str, repos: list[str]) -> tuple[Any, Any]:
    rg, reg = info["resource_group"], info["registry"]
    actions = [f"repositories/{r}/{a}" for r in repos for a in ("content/read", "metadata/read")]
    actions += [
        f"gateway/{name}/{a}"
        for a in ("config/read", "config/write", "message/read", "message/write")
    ]
    sm = mgmt.scope_maps.begin_create(
        rg,
        reg,
        name,
        {
            "properties": {
                "actions": actions,
                "description": f"Created by connected registry sync token: {name}",
            }
        },
    ).result()
    token = mgmt.tokens.begin_create(
        rg, reg, name, {"properties": {"scopeMapId": sm.id, "status": "enabled"}}
    ).result()
    return sm, token


def test_wrong_secret_is_refused_with_aadsts(info: dict[str, Any]) -> None:
    with pytest.raises(ClientAuthenticationError) as err:
        credential(info, secret="not-the-secret").get_token(ARM)
    assert "AADSTS7000215" in str(err.value)


def test_unknown_client_is_refused(info: dict[str, Any], raw: Any) -> None:
    url = f"{info['authority']}/{info['tenant_id']}/oauth2/v2.0/token"
    resp = raw.session.post(
        url,
        data={
            "client_id": "nobody",
            "client_secret": "x",
            "grant_type": "client_credentials",
            "scope": ARM,
        },
        headers={"Authorization": ""},
    )
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "unauthorized_client" and body["error_codes"] == [700016]


def test_arm_requires_a_valid_bearer(raw: Any, info: dict[str, Any]) -> None:
    for header in ("", "Bearer not.a.token"):
        resp = raw.session.get(
            info["arm_endpoint"] + raw.registry_path,
            params={"api-version": "2025-11-01"},
            headers={"Authorization": header},
        )
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "InvalidAuthenticationToken"
    # a token for another audience (the data plane) is not an ARM token
    acr = credential(info).get_token("https://containerregistry.azure.net/.default").token
    resp = raw.session.get(
        info["arm_endpoint"] + raw.registry_path,
        params={"api-version": "2025-11-01"},
        headers={"Authorization": f"Bearer {acr}"},
    )
    assert resp.status_code == 401


def test_api_version_handling(raw: Any) -> None:
    missing = raw.call("GET", raw.registry_path, api=None)
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    unknown = raw.call("GET", raw.registry_path, api="2019-01-01")
    assert unknown.status_code == 400
    assert unknown.json()["error"]["code"] == "NoRegisteredProviderFound"
    assert "2025-11-01" in unknown.json()["error"]["message"]
    for api in ("2025-11-01", "2026-01-01-preview", "2026-09-01-preview"):
        assert raw.call("GET", raw.registry_path, api=api).status_code == 200
    assert (
        raw.call("GET", "/subscriptions", api="garbage").json()["error"]["code"]
        == "InvalidApiVersionParameter"
    )


def test_data_endpoint_patch_is_an_lro_that_fills_host_names(fresh_sandbox: RunningSandbox) -> None:
    info = fresh_sandbox.info
    mgmt = mgmt_client(info)
    rg, reg = info["resource_group"], info["registry"]
    before = mgmt.registries.get(rg, reg)
    assert before.data_endpoint_enabled is False and before.data_endpoint_host_names == []
    fresh_sandbox.azure.clear_requests()
    after = mgmt.registries.begin_update(
        rg, reg, {"properties": {"dataEndpointEnabled": "true"}}
    ).result()
    assert after.data_endpoint_host_names == [f"{reg}.{info['location']}.data.azurecr.io"]
    assert after.provisioning_state == "Succeeded"
    log = fresh_sandbox.azure.requests("arm")
    assert [(e["method"], e["status"]) for e in log] == [("PATCH", 201), ("GET", 200), ("GET", 200)]
    assert log[1]["lro_poll"] and not log[2]["lro_poll"]
    assert fresh_sandbox.azure.arm_counts() == {"reads": 1, "writes": 1, "polls": 1}


def test_lro_passes_through_creating_to_succeeded(fresh_sandbox: RunningSandbox) -> None:
    info = fresh_sandbox.info
    # a scope map PUT is synchronous on ACR (recorded); force_async makes it an LRO
    fresh_sandbox.azure.set_knobs(lro_polls=2, lro_seconds=0.3, force_async="true")
    mgmt = mgmt_client(info)
    rg, reg = info["resource_group"], info["registry"]
    poller = mgmt.scope_maps.begin_create(
        rg, reg, "slowmap", {"properties": {"actions": ["repositories/a/content/read"]}}
    )
    assert mgmt.scope_maps.get(rg, reg, "slowmap").provisioning_state == "Creating"
    assert poller.result().provisioning_state == "Succeeded"
    assert fresh_sandbox.azure.arm_counts()["polls"] >= 3


def test_scope_map_and_token_lifecycle(mgmt: Any, info: dict[str, Any], name: str) -> None:
    rg, reg = info["resource_group"], info["registry"]
    sm, token = _setup_sync(mgmt, info, name, ["samples/app0000"])
    assert sm.id.endswith(f"/registries/{reg}/scopeMaps/{name}")
    assert token.status == "enabled" and token.credentials.passwords == []
    # names are case-insensitive; ids keep the stored casing
    assert mgmt.scope_maps.get(rg, reg, name.upper()).id == sm.id
    updated = mgmt.scope_maps.begin_update(
        rg, reg, name, {"properties": {"actions": ["repositories/samples/app0001/content/read"]}}
    ).result()
    assert updated.actions == ["repositories/samples/app0001/content/read"]
    assert name in [s.name for s in mgmt.scope_maps.list(rg, reg)]

    both = mgmt.registries.begin_generate_credentials(rg, reg, {"tokenId": token.id}).result()
    assert both.username == name
    assert sorted(p.name for p in both.passwords) == ["password1", "password2"]
    first = {p.name: p.value for p in both.passwords}
    one = mgmt.registries.begin_generate_credentials(
        rg,
        reg,
        {"tokenId": token.id, "name": "password2", "expiry": "2099-01-01T00:00:00.0000000Z"},
    ).result()
    assert [p.name for p in one.passwords] == ["password2"]
    assert one.passwords[0].value != first["password2"]
    current = mgmt.tokens.get(rg, reg, name).credentials.passwords
    assert {p.name for p in current} == {"password1", "password2"}
    assert all(p.value is None for p in current)  # GET never returns values
    assert next(p for p in current if p.name == "password2").expiry.year == 2099

    # revoke password1 = PATCH listing the slots to keep
    kept = mgmt.tokens.begin_update(
        rg, reg, name, {"properties": {"credentials": {"passwords": [{"name": "password2"}]}}}
    ).result()
    assert [p.name for p in kept.credentials.passwords] == ["password2"]

    mgmt.tokens.begin_delete(rg, reg, name).result()
    with pytest.raises(ResourceNotFoundError):
        mgmt.tokens.get(rg, reg, name)
    mgmt.scope_maps.begin_delete(rg, reg, name).result()
    assert name not in [s.name for s in mgmt.scope_maps.list(rg, reg)]


def test_token_put_wipes_passwords(mgmt: Any, info: dict[str, Any], name: str) -> None:
    rg, reg = info["resource_group"], info["registry"]
    sm, token = _setup_sync(mgmt, info, name, ["samples/app0000"])
    mgmt.registries.begin_generate_credentials(rg, reg, {"tokenId": token.id}).result()
    again = mgmt.tokens.begin_create(
        rg, reg, name, {"properties": {"scopeMapId": sm.id, "status": "enabled"}}
    ).result()
    assert again.credentials.passwords == []


def test_connected_registry_lifecycle(
    mgmt: Any, info: dict[str, Any], name: str, azure_sandbox: RunningSandbox
) -> None:
    rg, reg = info["resource_group"], info["registry"]
    _, token = _setup_sync(mgmt, info, name, ["samples/app0000"])
    client_sm = mgmt.scope_maps.begin_create(
        rg,
        reg,
        f"{name}-client",
        {"properties": {"actions": ["repositories/samples/app0000/content/read"]}},
    ).result()
    client = mgmt.tokens.begin_create(
        rg, reg, f"{name}-client", {"properties": {"scopeMapId": client_sm.id}}
    ).result()
    body = {
        "properties": {
            "mode": "readonly",
            "garbageCollection": {"enabled": "false", "schedule": "0 0 * * *"},
            "parent": {
                "syncProperties": {
                    "tokenId": token.id,
                    "schedule": "* * * * *",
                    "messageTtl": "P2D",
                }
            },
            "logging": {"logLevel": "Information", "auditLogStatus": "Disabled"},
        }
    }
    cr = mgmt.connected_registries.begin_create(rg, reg, name, body).result()
    assert cr.mode == "ReadOnly" and cr.connection_state == "Offline"
    assert cr.activation.status == "Inactive" and cr.status_details == []
    assert cr.parent.sync_properties.gateway_endpoint == f"{reg}.{info['location']}.data.azurecr.io"
    assert cr.parent.sync_properties.token_id == token.id

    attached = mgmt.connected_registries.begin_update(
        rg, reg, name, {"properties": {"clientTokenIds": [client.id]}}
    ).result()
    assert attached.client_token_ids == [client.id]
    assert name in [
        c.name
        for c in mgmt.connected_registries.list(
            rg, reg, filter="mode eq 'ReadOnly' and connectionState eq 'Offline'"
        )
    ]
    assert name not in [
        c.name
        for c in mgmt.connected_registries.list(rg, reg, filter="connectionState eq 'Online'")
    ]

    with pytest.raises(HttpResponseError) as err:
        mgmt.connected_registries.begin_update(
            rg, reg, name, {"properties": {"mode": "ReadWrite"}}
        ).result()
    assert err.value.status_code == 400 and "mode" in err.value.message

    mgmt.connected_registries.begin_deactivate(rg, reg, name).result()
    mgmt.connected_registries.begin_delete(rg, reg, name).result()
    with pytest.raises(ResourceNotFoundError):
        mgmt.connected_registries.get(rg, reg, name)
    # deleting a CR leaves its token and scope map, as the service does
    assert mgmt.tokens.get(rg, reg, name).name == name


@pytest.mark.parametrize(
    ("collection", "bad_name"),
    [
        ("scope_maps", "ab"),
        ("scope_maps", "has.dot"),
        ("tokens", "has_underscore"),
        ("connected_registries", "has-dash"),
        ("connected_registries", "x" * 51),
    ],
)
def test_name_rules(mgmt: Any, info: dict[str, Any], collection: str, bad_name: str) -> None:
    rg, reg = info["resource_group"], info["registry"]
    with pytest.raises(HttpResponseError) as err:
        getattr(mgmt, collection).begin_create(
            rg,
            reg,
            bad_name,
            {
                "properties": {
                    "actions": ["repositories/a/content/read"],
                    "scopeMapId": "x",
                    "mode": "ReadOnly",
                    "parent": {"syncProperties": {"tokenId": "x", "messageTtl": "P2D"}},
                }
            },
        ).result()
    assert err.value.status_code == 400
    assert _code(err.value) in ("ResourceNameInvalid", "InvalidResourceName")


def test_validation_errors_name_the_problem(mgmt: Any, info: dict[str, Any], name: str) -> None:
    rg, reg = info["resource_group"], info["registry"]
    _, token = _setup_sync(mgmt, info, name, ["samples/app0000"])
    base = {
        "mode": "ReadOnly",
        "parent": {"syncProperties": {"tokenId": token.id, "messageTtl": "P2D"}},
    }
    missing = token.id.rsplit("/", 1)[0] + "/nosuchtoken"
    with pytest.raises(HttpResponseError) as err:
        mgmt.connected_registries.begin_create(
            rg, reg, name, {"properties": {**base, "clientTokenIds": [missing]}}
        ).result()
    assert _code(err.value) == "TokenNotFound"
    with pytest.raises(HttpResponseError) as err:
        mgmt.connected_registries.begin_create(
            rg, reg, name, {"properties": {**base, "clientTokenIds": [token.id] * 21}}
        ).result()
    assert _code(err.value) == "ClientTokenLimitExceeded"
    with pytest.raises(HttpResponseError) as err:
        mgmt.connected_registries.begin_create(
            rg, reg, name, {"properties": {"parent": base["parent"]}}
        ).result()
    assert err.value.status_code == 400 and "mode" in err.value.message
    too_many = [f"repositories/r{i}/content/read" for i in range(501)]
    with pytest.raises(HttpResponseError) as err:
        mgmt.scope_maps.begin_create(
            rg, reg, f"{name}-big", {"properties": {"actions": too_many}}
        ).result()
    assert _code(err.value) == "ScopeMapRepositoryLimitExceeded"
    with pytest.raises(HttpResponseError) as err:
        mgmt.tokens.begin_create(
            rg,
            reg,
            f"{name}-x",
            {"properties": {"scopeMapId": token.id.replace("/tokens/", "/scopeMaps/") + "zz"}},
        ).result()
    assert err.value.status_code == 404 and _code(err.value) == "ScopeMapNotFound"


def test_connected_registry_needs_premium_and_data_endpoint(fresh_sandbox: RunningSandbox) -> None:
    info = fresh_sandbox.info
    mgmt = mgmt_client(info)
    rg, reg = info["resource_group"], info["registry"]
    sm = mgmt.scope_maps.begin_create(
        rg, reg, "edge1", {"properties": {"actions": ["repositories/a/content/read"]}}
    ).result()
    token = mgmt.tokens.begin_create(
        rg, reg, "edge1", {"properties": {"scopeMapId": sm.id}}
    ).result()
    body = {
        "properties": {
            "mode": "ReadOnly",
            "parent": {"syncProperties": {"tokenId": token.id, "messageTtl": "P2D"}},
        }
    }
    with pytest.raises(HttpResponseError) as err:
        mgmt.connected_registries.begin_create(rg, reg, "edge1", body).result()
    assert (
        "az acr update" in err.value.message and "--data-endpoint-enabled true" in err.value.message
    )
    fresh_sandbox.azure.add_registry("standardreg", sku="Standard", data_endpoint_enabled=False)
    with pytest.raises(HttpResponseError) as err:
        mgmt.registries.begin_update(
            rg, "standardreg", {"properties": {"dataEndpointEnabled": True}}
        ).result()
    assert err.value.status_code == 400


def test_subscription_level_reads(raw: Any, info: dict[str, Any]) -> None:
    subs = raw.call("GET", "/subscriptions", api="2022-12-01").json()["value"]
    assert [s["subscriptionId"] for s in subs] == [info["subscription_id"]]
    tenants = raw.call("GET", "/tenants", api="2022-12-01").json()["value"]
    assert tenants[0]["tenantId"] == info["tenant_id"]
    found = raw.call(
        "GET",
        f"/subscriptions/{info['subscription_id']}/resources",
        api="2024-11-01",
        params={"$filter": "resourceType eq 'Microsoft.ContainerRegistry/registries'"},
    ).json()["value"]
    assert [r["name"] for r in found] == [info["registry"]]
    assert found[0]["id"] == raw.registry_path
    by_rg = raw.call("GET", raw.registry_path.rsplit("/", 1)[0]).json()["value"]
    assert [r["name"] for r in by_rg] == [info["registry"]]
    meta = raw.session.get(
        info["arm_endpoint"] + "/metadata/endpoints", params={"api-version": "2022-09-01"}
    ).json()
    assert meta["resourceManager"].startswith(info["arm_endpoint"])
    assert meta["suffixes"]["acrLoginServer"] == "azurecr.io"
    assert meta["authentication"]["audiences"]
    unknown = raw.call("GET", "/subscriptions/00000000-0000-0000-0000-000000000009")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "SubscriptionNotFound"


def test_lists_page_with_next_link(fresh_sandbox: RunningSandbox) -> None:
    info = fresh_sandbox.info
    fresh_sandbox.azure.set_knobs(arm_page_size=2)
    for i in range(5):
        fresh_sandbox.azure.seed_resource(
            "scopeMaps", f"map{i:02d}", {"properties": {"actions": ["repositories/a/content/read"]}}
        )
    mgmt = mgmt_client(info)
    names = [s.name for s in mgmt.scope_maps.list(info["resource_group"], info["registry"])]
    assert names == [f"map{i:02d}" for i in range(5)]
    pages = [e for e in fresh_sandbox.azure.requests("arm") if e["path"].endswith("/scopeMaps")]
    assert len(pages) == 3


def test_scope_map_limit_counts_repositories_not_actions(
    mgmt: Any, info: dict[str, Any], name: str
) -> None:
    rg, reg = info["resource_group"], info["registry"]

    def actions(count: int) -> list[str]:
        return [
            f"repositories/edge/apps/r{i}/{verb}"
            for i in range(count)
            for verb in ("content/read", "metadata/read")
        ]

    ok = mgmt.scope_maps.begin_create(rg, reg, name, {"properties": {"actions": actions(500)}})
    assert len(ok.result().actions) == 1000
    with pytest.raises(HttpResponseError) as err:
        mgmt.scope_maps.begin_create(
            rg, reg, f"{name}x", {"properties": {"actions": actions(501)}}
        ).result()
    assert _code(err.value) == "ScopeMapRepositoryLimitExceeded"
    assert "501" in str(err.value)
