"""The sandbox is no kinder than Azure (issue 8): every test here failed on the old sandbox.

Failing LROs, sync-token/connected-registry integrity, Unhealthy/Syncing with the documented
statusDetails codes, registrySyncResult, sync-setting validation, past password expiry and the
api-versions connectedRegistries list. Driven through the real management SDK (and raw HTTPS
where the wire shape is the point).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError

from sandbox.runner import RunningSandbox
from sandbox.testing import credential, mgmt_client

CR_API_VERSION = "2026-01-01-preview"  # the block default
# Restated from the source, not imported from the sandbox: Azure/acr
# docs/preview/connected-registry/connected-registry-error-codes.md (Unhealthy = critical error
# while online), plus the two UNCONFIRMED names the sandbox reports Offline.
DOCUMENTED_CODES = {
    "DISK_PERMISSION_DENIED": "The connected registry was unable to write any file to the disk "
    "because it did not have sufficient permissions.",
    "DISK_STORAGE_FULL": "The connected registry was unable to write files to the local host "
    "because there was no storage available on disk.",
    "DISK_ERROR": "The connected registry is unable to create, write, or delete a file on the "
    "local disk.",
}
STATUS_CODES = {
    **{code: "Unhealthy" for code in DOCUMENTED_CODES},
    "SYNC_TOKEN_INVALID": "Offline",
    "PARENT_UNREACHABLE": "Offline",
}

PREVIEW_GET = (
    Path(__file__).resolve().parents[1]
    / "contracts"
    / "arm"
    / "2026-01-01-preview"
    / "ConnectedRegistryGet.json"
)


class Site:
    """A registry with the data endpoint on, a sync token and a connected registry."""

    def __init__(self, sb: RunningSandbox, name: str = "edgesite1") -> None:
        self.sb, self.info, self.name = sb, sb.info, name
        self.mgmt = mgmt = mgmt_client(self.info)
        self.rg, self.reg = self.info["resource_group"], self.info["registry"]
        mgmt.registries.begin_update(
            self.rg, self.reg, {"properties": {"dataEndpointEnabled": True}}
        ).result()
        sm = mgmt.scope_maps.begin_create(
            self.rg,
            self.reg,
            name,
            {"properties": {"actions": ["repositories/samples/app0000/content/read"]}},
        ).result()
        self.sync = mgmt.tokens.begin_create(
            self.rg, self.reg, name, {"properties": {"scopeMapId": sm.id}}
        ).result()
        self.cr = mgmt.connected_registries.begin_create(
            self.rg,
            self.reg,
            name,
            {
                "properties": {
                    "mode": "ReadOnly",
                    "parent": {"syncProperties": {"tokenId": self.sync.id, "messageTtl": "P2D"}},
                }
            },
        ).result()

    def activate(self) -> None:
        pw = self.mgmt.registries.begin_generate_credentials(
            self.rg, self.reg, {"tokenId": self.sync.id, "name": "password1"}
        ).result()
        cs = (
            f"ConnectedRegistryName={self.name};SyncTokenName={self.name};"
            f"SyncTokenPassword={pw.passwords[0].value};"
            f"ParentGatewayEndpoint={self.cr.parent.sync_properties.gateway_endpoint};"
            f"ParentEndpointProtocol=https"
        )
        assert self.sb.azure.activate(cs, instance_id="n1")["ok"]

    def get(self) -> Any:
        return self.mgmt.connected_registries.get(self.rg, self.reg, self.name)

    def raw(self, method: str, suffix: str, body: Any = None, api: str = CR_API_VERSION) -> Any:
        session = requests.Session()
        session.trust_env = False
        session.verify = self.info["ca_bundle"]
        token = credential(self.info).get_token("https://management.azure.com/.default").token
        path = (
            f"/subscriptions/{self.info['subscription_id']}/resourceGroups/{self.rg}"
            f"/providers/Microsoft.ContainerRegistry/registries/{self.reg}{suffix}"
        )
        return session.request(
            method,
            self.info["arm_endpoint"] + path,
            json=body,
            params={"api-version": api},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )


@pytest.fixture
def site(fresh_sandbox: RunningSandbox) -> Site:
    return Site(fresh_sandbox)


# -- 1. long-running operations that fail or are cancelled ---------------------------------


def test_a_failed_token_lro_raises_with_the_arm_error_and_leaves_it_failed(site: Site) -> None:
    site.sb.azure.fail_lro(
        r"/tokens/failing1$", code="TokenProvisioningFailed", message="token store unavailable"
    )
    poller = site.mgmt.tokens.begin_create(
        site.rg, site.reg, "failing1", {"properties": {"scopeMapId": site.sync.scope_map_id}}
    )
    with pytest.raises(HttpResponseError) as caught:
        poller.result()
    assert "TokenProvisioningFailed" in str(caught.value) or "Failed" in str(caught.value)
    token = site.mgmt.tokens.get(site.rg, site.reg, "failing1")
    assert token.provisioning_state == "Failed"


def test_a_failed_async_operation_status_carries_status_and_error(site: Site) -> None:
    # old sandbox: scope map PUT answered 200 at once and no operation could end Failed
    site.sb.azure.fail_lro(r"/scopeMaps/brokenmap$", status="Canceled")
    resp = site.raw(
        "PUT", "/scopeMaps/brokenmap", {"properties": {"actions": ["repositories/a/content/read"]}}
    )
    assert resp.status_code == 201 and "Azure-AsyncOperation" in resp.headers
    session = requests.Session()
    session.trust_env = False
    token = credential(site.info).get_token("https://management.azure.com/.default").token
    polled = session.get(
        resp.headers["Azure-AsyncOperation"],
        headers={"Authorization": f"Bearer {token}"},
        verify=site.info["ca_bundle"],
        timeout=10,
    ).json()
    assert polled["status"] == "Canceled"
    assert polled["error"]["code"] == "OperationCanceled" and polled["error"]["message"]
    shown = site.mgmt.scope_maps.get(site.rg, site.reg, "brokenmap")
    assert shown.provisioning_state == "Canceled"
    # the rule fired once: the next write succeeds
    again = site.mgmt.scope_maps.begin_create(
        site.rg, site.reg, "brokenmap", {"properties": {"actions": ["repositories/a/content/read"]}}
    ).result()
    assert again.provisioning_state == "Succeeded"


def test_a_failed_location_lro_raises_and_a_failed_delete_keeps_the_resource(site: Site) -> None:
    site.sb.azure.fail_lro(r"/generateCredentials$", http_status=500)
    with pytest.raises(HttpResponseError):
        site.mgmt.registries.begin_generate_credentials(
            site.rg, site.reg, {"tokenId": site.sync.id, "name": "password2"}
        ).result()
    site.sb.azure.fail_lro(r"/scopeMaps/keepme01$", method="DELETE")
    site.mgmt.scope_maps.begin_create(
        site.rg, site.reg, "keepme01", {"properties": {"actions": ["repositories/a/content/read"]}}
    ).result()
    with pytest.raises(HttpResponseError):
        site.mgmt.scope_maps.begin_delete(site.rg, site.reg, "keepme01").result()
    assert site.mgmt.scope_maps.get(site.rg, site.reg, "keepme01").provisioning_state == "Failed"


# -- 2. sync token / connected registry integrity -------------------------------------------


def test_deleting_the_sync_token_of_an_existing_connected_registry_is_refused(site: Site) -> None:
    with pytest.raises(HttpResponseError) as caught:
        site.mgmt.tokens.begin_delete(site.rg, site.reg, site.name).result()
    assert caught.value.status_code == 409
    assert caught.value.error is not None and caught.value.error.code == "TokenInUse"
    assert site.mgmt.tokens.get(site.rg, site.reg, site.name).name == site.name


def test_a_disabled_sync_token_takes_the_connected_registry_down(site: Site) -> None:
    site.activate()
    assert site.get().connection_state == "Online"
    site.mgmt.tokens.begin_update(
        site.rg, site.reg, site.name, {"properties": {"status": "disabled"}}
    ).result()
    cr = site.get()
    assert cr.connection_state == "Offline"
    assert [d.code for d in cr.status_details] == ["SYNC_TOKEN_INVALID"]
    site.mgmt.tokens.begin_update(
        site.rg, site.reg, site.name, {"properties": {"status": "enabled"}}
    ).result()
    assert site.get().connection_state == "Online" and site.get().status_details == []


def test_an_active_connected_registry_must_be_deactivated_before_delete(site: Site) -> None:
    site.activate()
    with pytest.raises(HttpResponseError) as caught:
        site.mgmt.connected_registries.begin_delete(site.rg, site.reg, site.name).result()
    assert caught.value.status_code == 409
    assert caught.value.error is not None and caught.value.error.code == "ConnectedRegistryActive"
    site.mgmt.connected_registries.begin_deactivate(site.rg, site.reg, site.name).result()
    site.mgmt.connected_registries.begin_delete(site.rg, site.reg, site.name).result()


def test_the_data_endpoint_cannot_be_turned_off_under_connected_registries(site: Site) -> None:
    with pytest.raises(HttpResponseError) as caught:
        site.mgmt.registries.begin_update(
            site.rg, site.reg, {"properties": {"dataEndpointEnabled": False}}
        ).result()
    assert caught.value.status_code == 400
    assert caught.value.error is not None and caught.value.error.code == "DataEndpointInUse"
    assert site.mgmt.registries.get(site.rg, site.reg).data_endpoint_enabled is True


# -- 3. Unhealthy / Syncing, documented codes, registrySyncResult ----------------------------


@pytest.mark.parametrize("code", sorted(STATUS_CODES))
def test_a_connected_registry_can_be_put_down_with_a_documented_code(site: Site, code: str) -> None:
    site.activate()
    site.sb.azure.set_connected_registry_state(site.name, STATUS_CODES[code], code=code)
    cr = site.get()
    assert cr.connection_state == STATUS_CODES[code]
    assert [d.code for d in cr.status_details] == [code]
    if code in DOCUMENTED_CODES:
        assert cr.connection_state == "Unhealthy"
        assert cr.status_details[0].description == DOCUMENTED_CODES[code]


def test_a_held_syncing_state_survives_activation_and_reports_a_sync_result(site: Site) -> None:
    site.sb.azure.set_connected_registry_state(site.name, "Syncing")
    site.activate()
    assert site.get().connection_state == "Syncing"
    body = site.raw("GET", f"/connectedRegistries/{site.name}").json()
    assert body["properties"]["registrySyncResult"]["syncState"] == "Syncing"
    site.sb.azure.set_connected_registry_state(site.name, "Online")
    result = site.raw("GET", f"/connectedRegistries/{site.name}").json()["properties"]
    assert result["connectionState"] == "Online"
    assert result["registrySyncResult"]["syncState"] == "Succeeded"


def test_registry_sync_result_has_the_preview_examples_shape(site: Site) -> None:
    before = site.raw("GET", f"/connectedRegistries/{site.name}").json()["properties"]
    assert before["registrySyncResult"] == {"syncState": "NotActivated"}
    site.activate()
    after = site.raw("GET", f"/connectedRegistries/{site.name}").json()["properties"]
    example = json.loads(PREVIEW_GET.read_text())["responses"]["200"]["body"]["properties"]
    assert set(after["registrySyncResult"]) == set(example["registrySyncResult"])
    assert after["registrySyncResult"]["syncState"] == "Succeeded"
    assert after["registrySyncResult"]["lastSuccessfulSyncEndTime"]


# -- 4. documented sync settings ------------------------------------------------------------

BAD_SYNC = [
    ({"schedule": "* * * * *", "messageTtl": "P200D"}, "messageTtl"),
    ({"schedule": "* * * * *", "messageTtl": "PT1H"}, "messageTtl"),
    ({"schedule": "0 9 * * *", "syncWindow": "PT10M", "messageTtl": "P2D"}, "syncWindow"),
    ({"schedule": "0 9 * * *", "syncWindow": "P8D", "messageTtl": "P2D"}, "syncWindow"),
    ({"schedule": "every day at nine", "syncWindow": "PT3H", "messageTtl": "P2D"}, "schedule"),
    ({"schedule": "0 25 * * *", "syncWindow": "PT3H", "messageTtl": "P2D"}, "schedule"),
    ({"schedule": "0 9 * * *", "messageTtl": "P2D"}, "syncWindow"),
]


@pytest.mark.parametrize(("sync", "field"), BAD_SYNC, ids=[f for _, f in BAD_SYNC])
def test_sync_settings_outside_the_documented_ranges_are_refused(
    site: Site, sync: dict[str, str], field: str
) -> None:
    body = {
        "properties": {
            "mode": "ReadOnly",
            "parent": {"syncProperties": {"tokenId": site.sync.id, **sync}},
        }
    }
    resp = site.raw("PUT", "/connectedRegistries/badsync01", body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == "InvalidParameter" and error["message"]
    assert error["target"] == f"properties.parent.syncProperties.{field}"
    patch = site.raw(
        "PATCH", f"/connectedRegistries/{site.name}", {"properties": {"syncProperties": sync}}
    )
    assert patch.status_code == 400 and patch.json()["error"]["target"].endswith(field)
    assert site.get().parent.sync_properties.message_ttl == timedelta(days=2)  # unchanged


def test_the_documented_boundaries_are_accepted(site: Site) -> None:
    for window, ttl in (("PT1H", "P1D"), ("P7D", "P90D")):
        updated = site.mgmt.connected_registries.begin_update(
            site.rg,
            site.reg,
            site.name,
            {
                "properties": {
                    "syncProperties": {
                        "schedule": "0 */6 * * 1-5",
                        "syncWindow": window,
                        "messageTtl": ttl,
                    }
                }
            },
        ).result()
        assert updated.parent.sync_properties.schedule == "0 */6 * * 1-5"


# -- 6. password expiry ---------------------------------------------------------------------


def test_a_password_expiry_in_the_past_is_refused(site: Site) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    with pytest.raises(HttpResponseError) as caught:
        site.mgmt.registries.begin_generate_credentials(
            site.rg, site.reg, {"tokenId": site.sync.id, "name": "password1", "expiry": past}
        ).result()
    assert caught.value.status_code == 400
    assert site.sb.azure.password_values(site.name) == {}  # nothing generated
    future = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    made = site.mgmt.registries.begin_generate_credentials(
        site.rg, site.reg, {"tokenId": site.sync.id, "name": "password1", "expiry": future}
    ).result()
    assert made.passwords[0].value


# -- 7. api-versions on connectedRegistries ---------------------------------------------------


def test_connected_registries_refuse_2025_11_01_and_accept_the_listed_previews(site: Site) -> None:
    stable = site.raw("GET", f"/connectedRegistries/{site.name}", api="2025-11-01")
    assert stable.status_code == 400
    error = stable.json()["error"]
    assert error["code"] == "NoRegisteredProviderFound"
    assert "registries/connectedRegistries" in error["message"]
    assert "2026-01-01-preview" in error["message"] and "'2025-11-01'" in error["message"]
    for api in (
        "2025-09-01-preview",
        "2025-12-01-preview",
        "2026-01-01-preview",
        "2026-09-01-preview",
    ):
        assert site.raw("GET", f"/connectedRegistries/{site.name}", api=api).status_code == 200
    # scope maps and tokens keep the stable version
    assert site.raw("GET", f"/tokens/{site.name}", api="2025-11-01").status_code == 200
