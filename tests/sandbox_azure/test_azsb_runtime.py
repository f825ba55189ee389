"""Connected-registry runtime hooks (activation, pull-check) over /_sandbox, as sites use them."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from sandbox.runner import RunningSandbox
from sandbox.testing import mgmt_client


class Provisioned:
    def __init__(self, sb: RunningSandbox, name: str, repos: list[str]) -> None:
        info = sb.info
        self.sb, self.name = sb, name
        self.mgmt = mgmt = mgmt_client(info)
        rg, reg = self.rg, self.reg = info["resource_group"], info["registry"]
        mgmt.registries.begin_update(
            rg, reg, {"properties": {"dataEndpointEnabled": True}}
        ).result()
        actions = [f"repositories/{r}/content/read" for r in repos]
        sm = mgmt.scope_maps.begin_create(
            rg, reg, name, {"properties": {"actions": actions}}
        ).result()
        self.sync = mgmt.tokens.begin_create(
            rg, reg, name, {"properties": {"scopeMapId": sm.id}}
        ).result()
        csm = mgmt.scope_maps.begin_create(
            rg,
            reg,
            f"{name}-client",
            {"properties": {"actions": [f"repositories/{repos[0]}/content/read"]}},
        ).result()
        self.client = mgmt.tokens.begin_create(
            rg, reg, f"{name}-client", {"properties": {"scopeMapId": csm.id}}
        ).result()
        self.cr = mgmt.connected_registries.begin_create(
            rg,
            reg,
            name,
            {
                "properties": {
                    "mode": "ReadOnly",
                    "clientTokenIds": [self.client.id],
                    "parent": {"syncProperties": {"tokenId": self.sync.id, "messageTtl": "P2D"}},
                }
            },
        ).result()

    def password(self, token: Any, slot: str = "password1") -> str:
        result = self.mgmt.registries.begin_generate_credentials(
            self.rg, self.reg, {"tokenId": token.id, "name": slot}
        ).result()
        return str(result.passwords[0].value)

    def connection_string(self, password: str, gateway: str | None = None) -> str:
        gw = gateway or self.cr.parent.sync_properties.gateway_endpoint
        return (
            f"ConnectedRegistryName={self.name};SyncTokenName={self.name};"
            f"SyncTokenPassword={password};ParentGatewayEndpoint={gw};"
            f"ParentEndpointProtocol=https"
        )

    def get(self) -> Any:
        return self.mgmt.connected_registries.get(self.rg, self.reg, self.name)


class Internal:
    def __init__(self, info: dict[str, Any], key: str | None = None) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = info["ca_bundle"]
        self.session.headers["X-Sandbox-Key"] = key if key is not None else info["internal_key"]
        self.base = info["internal_endpoint"]

    def post(self, path: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(self.base + path, json=body, timeout=10)


@pytest.fixture
def site(fresh_sandbox: RunningSandbox) -> Provisioned:
    return Provisioned(fresh_sandbox, "edgesite1", ["samples/app0000", "library/app0001"])


def test_activation_with_the_right_password_goes_online(site: Provisioned) -> None:
    internal = Internal(site.sb.info)
    cs = site.connection_string(site.password(site.sync))
    result = internal.post("/runtime/activate", {"connection_string": cs, "instance_id": "n1"})
    assert result.json() == {
        "ok": True,
        "connected_registry": site.name,
        "connection_state": "Online",
    }
    cr = site.get()
    assert cr.connection_state == "Online" and cr.activation.status == "Active"
    assert cr.parent.sync_properties.last_sync_time is not None and cr.status_details == []
    # the same instance may re-activate (resync); another instance is refused
    assert internal.post(
        "/runtime/activate", {"connection_string": cs, "instance_id": "n1"}
    ).json()["ok"]
    other = internal.post("/runtime/activate", {"connection_string": cs, "instance_id": "n2"})
    assert other.json()["code"] == "AlreadyActivated"
    site.mgmt.connected_registries.begin_deactivate(site.rg, site.reg, site.name).result()
    assert site.get().activation.status == "Inactive"
    assert internal.post(
        "/runtime/activate", {"connection_string": cs, "instance_id": "n2"}
    ).json()["ok"]


def test_activation_failures_are_reported_in_status_details(site: Provisioned) -> None:
    internal = Internal(site.sb.info)
    password = site.password(site.sync)
    bad = internal.post("/runtime/activate", {"connection_string": site.connection_string("x")})
    # the service's vocabulary (crstate), not codes of the sandbox's own
    assert bad.json()["ok"] is False and bad.json()["code"] == "SYNC_TOKEN_INVALID"
    cr = site.get()
    assert cr.connection_state == "Offline"
    detail = cr.status_details[0]
    assert detail.type == "Sync" and detail.code == "SYNC_TOKEN_INVALID"
    assert detail.correlation_id and detail.timestamp
    wrong_gw = site.connection_string(password, gateway="other.eastus.data.azurecr.io")
    assert (
        internal.post("/runtime/activate", {"connection_string": wrong_gw}).json()["code"]
        == "PARENT_UNREACHABLE"
    )
    # regenerating the slot invalidates the old value
    site.password(site.sync)
    assert not internal.post(
        "/runtime/activate", {"connection_string": site.connection_string(password)}
    ).json()["ok"]
    assert (
        internal.post("/runtime/activate", {"connection_string": "garbage"}).json()["code"]
        == "InvalidConnectionString"
    )


def test_pull_check(site: Provisioned) -> None:
    internal = Internal(site.sb.info)
    site.sb.azure.activate(site.connection_string(site.password(site.sync)), instance_id="n1")
    password = site.password(site.client)

    def pull(repo: str, pw: str = password, user: str = f"{site.name}-client") -> dict[str, Any]:
        return dict(
            internal.post(
                "/runtime/pull-check",
                {
                    "connected_registry": site.name,
                    "username": user,
                    "password": pw,
                    "repository": repo,
                    "tag": "1.0",
                },
            ).json()
        )

    assert pull("samples/app0000")["ok"]
    assert "content/read" in pull("library/app0001")["reason"]  # synced, but not granted
    assert not pull("samples/app0000", pw="wrong")["ok"]
    assert "not a client token" in pull("samples/app0000", user=site.name)["reason"]
    site.sb.azure.set_knobs(propagation_delay=30)
    fresh = site.password(site.client, "password2")
    assert "propagated" in pull("samples/app0000", pw=fresh)["reason"]
    site.sb.azure.set_knobs(propagation_delay=0)
    assert pull("samples/app0000", pw=fresh)["ok"]
    assert pull("samples/app0000")["ok"]  # password1 is untouched by regenerating password2


def test_internal_endpoints_need_the_key(fresh_sandbox: RunningSandbox) -> None:
    info = fresh_sandbox.info
    assert Internal(info, key="wrong").post("/runtime/activate", {}).status_code == 401
    session = Internal(info)
    secrets = session.session.get(info["internal_endpoint"] + "/secrets").json()["secrets"]
    assert info["client_secret"] in secrets
    log = session.session.get(info["internal_endpoint"] + "/requests").json()["requests"]
    assert all(not e["path"].startswith("/_sandbox") for e in log)


def test_every_issued_secret_is_listed(site: Provisioned) -> None:
    password = site.password(site.client)
    secrets = site.sb.azure.secrets()
    assert password in secrets
    assert site.sb.info["client_secret"] in secrets
