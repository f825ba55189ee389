"""The sandbox answers exactly as the recordings show real ACR answering.

Sources: the CLI-REC flow of ``az acr connected-registry create``/``delete`` (spec §3), the
409 ``AlreadyInUse`` recording and the anonymous catalog-paging recording in
``tests/contracts/recordings`` (copied from ``../shared/contracts``). Each test pins status
code, LRO headers (or their absence) and body shape, over raw HTTPS and through the real SDKs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from sandbox.azure import SeedConfig
from sandbox.runner import RunningSandbox, start_sandbox
from sandbox.testing import credential, mgmt_client

# copied from ../shared/contracts/recordings; absent = failure, never a skip
RECORDINGS = Path(__file__).resolve().parents[1] / "contracts" / "recordings"
CONFLICT = RECORDINGS / "test_cli_mgmt_containerregistry_registry.test_scope_maps_and_tokens.yaml"
PAGING = RECORDINGS / (
    "test_anon_access.pyTestContainerRegistryClienttest_list_repository_names_by_page.json"
)
ARM = "https://management.azure.com/.default"
CLI_API = "2026-01-01-preview"  # what CLI 2.84 used in the recording
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
LRO_HEADERS = ("Azure-AsyncOperation", "Location")


def _session(info: dict[str, Any], token: str | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify otherwise
    session.verify = info["ca_bundle"]
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


def _arm(info: dict[str, Any]) -> requests.Session:
    return _session(info, credential(info).get_token(ARM).token)


def _registry_url(info: dict[str, Any]) -> str:
    return (
        f"{info['arm_endpoint']}/subscriptions/{info['subscription_id']}/resourceGroups/"
        f"{info['resource_group']}/providers/Microsoft.ContainerRegistry/registries/"
        f"{info['registry']}"
    )


def _no_lro_headers(resp: requests.Response) -> None:
    assert not [h for h in LRO_HEADERS if h in resp.headers], dict(resp.headers)


# -- az acr connected-registry create, step by step (CLI-REC) -------------------------------


def test_registry_patch_enabling_data_endpoint(fresh_sandbox: RunningSandbox) -> None:
    info = fresh_sandbox.info
    s = _arm(info)
    url = _registry_url(info)
    resp = s.patch(
        url, params={"api-version": CLI_API}, json={"properties": {"dataEndpointEnabled": True}}
    )
    assert resp.status_code == 201
    host = f"{info['registry']}.{info['location']}.data.azurecr.io"
    body = resp.json()
    assert body["properties"]["provisioningState"] == "Updating"
    assert body["properties"]["dataEndpointHostNames"] == [host]
    status_url = resp.headers["Azure-AsyncOperation"]
    assert re.fullmatch(
        re.escape(url)
        + f"/operationStatuses/registries-{GUID}"
        + re.escape(f"?api-version={CLI_API}"),
        status_url,
    ), status_url
    assert "Location" not in resp.headers
    status = s.get(status_url)
    assert (status.status_code, status.json()) == (200, {"status": "Succeeded"})
    final = s.get(url, params={"api-version": CLI_API}).json()["properties"]
    assert final["provisioningState"] == "Succeeded" and final["dataEndpointHostNames"] == [host]


def test_scope_map_put_is_synchronous(mgmt: Any, info: dict[str, Any], name: str) -> None:
    s = _arm(info)
    actions = [f"repositories/repo1/{a}" for a in ("content/read", "metadata/read")]
    body = {
        "properties": {
            "description": f"Created by connected registry sync token: {name}",
            "actions": actions,
        }
    }
    resp = s.put(
        f"{_registry_url(info)}/scopeMaps/{name}", params={"api-version": CLI_API}, json=body
    )
    assert resp.status_code == 200
    _no_lro_headers(resp)
    props = resp.json()["properties"]
    assert props["provisioningState"] == "Succeeded"
    assert props["actions"] == actions and props["type"] == "UserDefined"
    again = s.put(
        f"{_registry_url(info)}/scopeMaps/{name}", params={"api-version": CLI_API}, json=body
    )
    assert again.status_code == 200  # an overwrite is synchronous too


def test_token_put_is_an_lro_with_token_operation_ids(
    mgmt: Any, info: dict[str, Any], name: str
) -> None:
    s = _arm(info)
    base = _registry_url(info)
    s.put(
        f"{base}/scopeMaps/{name}",
        params={"api-version": CLI_API},
        json={"properties": {"actions": ["repositories/repo1/content/read"]}},
    )
    resp = s.put(
        f"{base}/tokens/{name}",
        params={"api-version": CLI_API},
        json={
            "properties": {
                "scopeMapId": f"{base[len(info['arm_endpoint']) :]}/scopeMaps/{name}",
                "status": "enabled",
            }
        },
    )
    assert resp.status_code == 201
    props = resp.json()["properties"]
    assert props["provisioningState"] == "Creating"
    assert props["credentials"]["passwords"] == []  # no passwords at create
    status_url = resp.headers["Azure-AsyncOperation"]
    assert re.fullmatch(
        re.escape(f"{base}/tokens/{name}")
        + f"/operationStatuses/token-{GUID}"
        + re.escape(f"?api-version={CLI_API}"),
        status_url,
    ), status_url
    assert s.get(status_url).json() == {"status": "Succeeded"}
    token = s.get(f"{base}/tokens/{name}", params={"api-version": CLI_API}).json()
    assert token["properties"]["provisioningState"] == "Succeeded"


def test_connected_registry_put_is_synchronous_and_normalised(
    mgmt: Any, info: dict[str, Any], name: str
) -> None:
    s = _arm(info)
    base = _registry_url(info)
    arm_base = base[len(info["arm_endpoint"]) :]
    s.put(
        f"{base}/scopeMaps/{name}",
        params={"api-version": CLI_API},
        json={"properties": {"actions": [f"gateway/{name}/config/read"]}},
    )
    s.put(
        f"{base}/tokens/{name}",
        params={"api-version": CLI_API},
        json={"properties": {"scopeMapId": f"{arm_base}/scopeMaps/{name}", "status": "enabled"}},
    )
    recorded_body: dict[str, Any] = {
        "properties": {
            "garbageCollection": {"enabled": False, "schedule": "0 0 * * *"},
            "mode": "readwrite",
            "parent": {
                "syncProperties": {
                    "tokenId": f"{arm_base}/tokens/{name}",
                    "schedule": "* * * * *",
                    "messageTtl": "P2D",
                }
            },
            "logging": {"logLevel": "Information", "auditLogStatus": "Disabled"},
        }
    }
    resp = s.put(
        f"{base}/connectedRegistries/{name}", params={"api-version": CLI_API}, json=recorded_body
    )
    assert resp.status_code == 200
    _no_lro_headers(resp)
    props = resp.json()["properties"]
    assert props["provisioningState"] == "Succeeded"
    assert props["mode"] == "ReadWrite"
    assert props["connectionState"] == "Offline"
    assert props["activation"] == {"status": "Inactive"}
    assert (
        props["parent"]["syncProperties"]["gatewayEndpoint"]
        == f"{info['registry']}.{info['location']}.data.azurecr.io"
    )
    assert props["loginServer"] == {"tls": {"certificate": {}}}
    assert props["garbageCollection"] == {"enabled": False, "schedule": "0 0 * * *"}


def test_connected_registry_delete_is_200_empty_and_leaves_token(
    mgmt: Any, info: dict[str, Any], name: str
) -> None:
    rg, reg = info["resource_group"], info["registry"]
    sm = mgmt.scope_maps.begin_create(
        rg, reg, name, {"properties": {"actions": [f"gateway/{name}/config/read"]}}
    ).result()
    token = mgmt.tokens.begin_create(
        rg, reg, name, {"properties": {"scopeMapId": sm.id, "status": "enabled"}}
    ).result()
    mgmt.connected_registries.begin_create(
        rg,
        reg,
        name,
        {
            "properties": {
                "mode": "ReadOnly",
                "parent": {"syncProperties": {"tokenId": token.id, "messageTtl": "P2D"}},
            }
        },
    ).result()
    s = _arm(info)
    url = f"{_registry_url(info)}/connectedRegistries/{name}"
    resp = s.delete(url, params={"api-version": CLI_API})
    assert (resp.status_code, resp.content) == (200, b"")
    _no_lro_headers(resp)
    # without --cleanup the sync token and scope map remain
    assert mgmt.tokens.get(rg, reg, name).id == token.id
    assert s.delete(url, params={"api-version": CLI_API}).status_code == 204


def test_cli_create_flow_through_the_sdk(fresh_sandbox: RunningSandbox) -> None:
    """The recorded call sequence, driven by azure-mgmt-containerregistry 15.0.0."""
    info = fresh_sandbox.info
    mgmt = mgmt_client(info)
    cr_mgmt = mgmt_client(info, api_version=CLI_API)
    rg, reg, name = info["resource_group"], info["registry"], "edgesite01"
    fresh_sandbox.azure.clear_requests()
    mgmt.registries.begin_update(rg, reg, {"properties": {"dataEndpointEnabled": True}}).result()
    sm = mgmt.scope_maps.begin_create(
        rg, reg, name, {"properties": {"actions": [f"gateway/{name}/config/read"]}}
    ).result()
    token = mgmt.tokens.begin_create(
        rg, reg, name, {"properties": {"scopeMapId": sm.id, "status": "enabled"}}
    ).result()
    cr = cr_mgmt.connected_registries.begin_create(
        rg,
        reg,
        name,
        {
            "properties": {
                "mode": "readwrite",
                "parent": {
                    "syncProperties": {
                        "tokenId": token.id,
                        "schedule": "* * * * *",
                        "messageTtl": "P2D",
                    }
                },
            }
        },
    ).result()
    assert (cr.provisioning_state, cr.mode, cr.connection_state) == (
        "Succeeded",
        "ReadWrite",
        "Offline",
    )
    cr_mgmt.connected_registries.begin_delete(rg, reg, name).result()
    seen = [
        (e["method"], _kind(e["path"]), e["status"]) for e in fresh_sandbox.azure.requests("arm")
    ]
    assert seen == [
        ("PATCH", "registries", 201),
        ("GET", "poll registries-", 200),
        ("GET", "registries", 200),
        ("PUT", "scopeMaps", 200),
        ("PUT", "tokens", 201),
        ("GET", "poll token-", 200),
        ("GET", "tokens", 200),
        ("PUT", "connectedRegistries", 200),
        ("DELETE", "connectedRegistries", 200),
    ]
    assert fresh_sandbox.azure.arm_counts() == {"reads": 2, "writes": 5, "polls": 2}


def _kind(path: str) -> str:
    """ "scopeMaps" for .../scopeMaps/x; "poll token-" for .../operationStatuses/token-<id>."""
    parts = path.split("/")
    if parts[-2] == "operationStatuses":
        return "poll " + parts[-1].split("-")[0] + "-"
    return parts[-2]


def test_force_async_makes_every_write_an_lro(fresh_sandbox: RunningSandbox) -> None:
    azure = fresh_sandbox.azure
    azure.set_knobs(force_async=True, lro_polls=1)
    info = fresh_sandbox.info
    s = _arm(info)
    url = f"{_registry_url(info)}/scopeMaps/slowmap01"
    resp = s.put(
        url,
        params={"api-version": "2025-11-01"},
        json={"properties": {"actions": ["repositories/a/content/read"]}},
    )
    assert resp.status_code == 201
    assert re.search(
        f"/scopeMaps/slowmap01/operationStatuses/scopemaps-{GUID}",
        resp.headers["Azure-AsyncOperation"],
    )
    first = s.get(resp.headers["Azure-AsyncOperation"])
    assert first.json() == {"status": "InProgress"} and "Retry-After" in first.headers
    assert s.get(resp.headers["Azure-AsyncOperation"]).json() == {"status": "Succeeded"}
    gone = s.delete(url, params={"api-version": "2025-11-01"})
    assert gone.status_code == 202 and "Location" in gone.headers


# -- errors ---------------------------------------------------------------------------------


def test_recordings_are_present() -> None:
    assert CONFLICT.is_file() and PAGING.is_file(), "tests/contracts/recordings lacks a file"


def test_registry_name_taken_replays_the_409_recording(tmp_path: Path) -> None:
    interaction = yaml.safe_load(CONFLICT.read_text())["interactions"][0]
    request, response = interaction["request"], interaction["response"]
    path = request["uri"].split("management.azure.com", 1)[1]
    sub = path.split("/")[2]
    seed = SeedConfig(
        subscription_id=sub, resource_group="rgname", registry="seedregistry", repo_count=1
    )
    with start_sandbox(tmp_path, seed=seed) as running:
        # someone else already owns myregistry.azurecr.io
        running.azure.add_registry("myRegistry", resource_group="someoneelse")
        info = running.info
        resp = _arm(info).request(
            request["method"],
            info["arm_endpoint"] + path,
            data=request["body"],
            headers={"Content-Type": "application/json"},
        )
    assert resp.status_code == response["status"]["code"] == 409
    assert resp.headers["Content-Type"] == response["headers"]["content-type"][0]
    assert resp.json() == json.loads(response["body"]["string"])
    assert "x-ms-failure-cause" not in resp.headers


def test_gateway_errors_differ_from_provider_errors(raw: Any) -> None:
    gateway = raw.call("GET", raw.registry_path, api=None)
    assert gateway.status_code == 400
    assert gateway.headers["x-ms-failure-cause"] == "gateway"
    assert set(gateway.json()) == {"error"}
    provider = raw.call("PUT", raw.registry_path + "/tokens/bad_name", {"properties": {}})
    assert provider.status_code == 400
    assert provider.json()["status"] == "Failed" and provider.json()["error"]["code"]
    assert "x-ms-failure-cause" not in provider.headers


# -- data plane: anonymous catalog paging (recording) ---------------------------------------


@pytest.fixture
def anon_registry(tmp_path: Path) -> Any:
    """The recording's registry: three repositories, anonymous pull enabled through ARM."""
    seed = SeedConfig(
        registry="yallacrtestsanon",
        repositories=["library/alpine", "library/busybox", "library/hello-world"],
    )
    with start_sandbox(tmp_path, seed=seed) as running:
        info = running.info
        mgmt_client(info).registries.begin_update(
            info["resource_group"], info["registry"], {"properties": {"anonymousPullEnabled": True}}
        ).result()
        yield running


def test_catalog_paging_replays_the_recording(anon_registry: RunningSandbox) -> None:
    info = anon_registry.info
    session = _session(info)
    base = info["data_plane_endpoint"]
    access = None
    for entry in json.loads(PAGING.read_text())["Entries"]:
        url = entry["RequestUri"].replace("https://fake_url.azurecr.io", base)
        headers = (
            {"Content-Type": entry["RequestHeaders"]["Content-Type"]}
            if entry["RequestBody"]
            else {}
        )
        if "Authorization" in entry["RequestHeaders"]:
            headers["Authorization"] = f"Bearer {access}"
        resp = session.request(
            entry["RequestMethod"], url, data=entry["RequestBody"], headers=headers
        )
        assert resp.status_code == entry["StatusCode"], (url, resp.text)
        expected = entry["ResponseHeaders"]
        assert resp.headers["Content-Type"] == expected["Content-Type"]
        for name in ("WWW-Authenticate", "Link", "Docker-Distribution-Api-Version"):
            if name in expected:
                assert resp.headers[name] == expected[name].replace(
                    "https://fake_url.azurecr.io", base
                ), name
            else:
                assert name not in resp.headers, name
        if "Access-Control-Expose-Headers" in expected:
            assert [
                h.strip() for h in resp.headers["Access-Control-Expose-Headers"].split(",")
            ] == expected["Access-Control-Expose-Headers"]
            assert resp.headers["X-Ms-Correlation-Request-Id"]
        if isinstance(entry["ResponseBody"], list):  # registry JSON: compact + newline
            assert resp.text == "".join(entry["ResponseBody"])
        else:
            assert set(resp.json()) == set(entry["ResponseBody"])
            access = resp.json()["access_token"]


def test_anonymous_paging_through_the_sdk(anon_registry: RunningSandbox) -> None:
    from azure.containerregistry import ContainerRegistryClient

    info = anon_registry.info
    anon_registry.azure.clear_requests()
    client = ContainerRegistryClient(
        info["data_plane_endpoint"],
        None,
        audience="https://containerregistry.azure.net",
        connection_verify=info["ca_bundle"],
    )
    pages = [list(p) for p in client.list_repository_names(results_per_page=2).by_page()]
    assert pages == [["library/alpine", "library/busybox"], ["library/hello-world"]]
    queries = [
        e["query"]
        for e in anon_registry.azure.requests("dataplane")
        if e["path"] == "/acr/v1/_catalog" and e["status"] == 200
    ]
    assert queries[-1] == "last=library%2Fbusybox&n=2&orderby="


def test_anonymous_token_refused_without_anonymous_pull(raw: Any, info: dict[str, Any]) -> None:
    """UNCONFIRMED what ACR answers here; the sandbox challenges again rather than granting."""
    resp = raw.session.post(
        info["data_plane_endpoint"] + "/oauth2/token",
        data={
            "service": info["login_server"],
            "scope": "registry:catalog:*",
            "grant_type": "password",
        },
        headers={"Authorization": ""},
    )
    assert resp.status_code == 401
    assert resp.json()["errors"][0]["code"] == "UNAUTHORIZED"
