"""ACR data plane through azure-containerregistry 1.2.0, plus the wire shapes it depends on."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from azure.core.exceptions import ClientAuthenticationError

from sandbox.azure import SeedConfig
from sandbox.runner import RunningSandbox
from sandbox.testing import azure_sandbox_fixture, credential, registry_client


def test_lists_every_repository_across_pages(azure_sandbox: RunningSandbox) -> None:
    expected = sorted(azure_sandbox.azure.primary_registry().repositories)
    assert len(expected) >= 250
    assert {r.split("/")[0] for r in expected} >= {"samples", "edge", "library"}
    azure_sandbox.azure.clear_requests()
    names = list(registry_client(azure_sandbox.info).list_repository_names())
    assert names == expected
    catalog = [
        e
        for e in azure_sandbox.azure.requests("dataplane")
        if e["path"] == "/acr/v1/_catalog" and e["status"] == 200
    ]
    assert len(catalog) == -(-len(expected) // 100)  # pages capped at 100
    assert not any(e["write"] for e in azure_sandbox.azure.requests())


def test_small_pages_and_link_header(raw: Any, info: dict[str, Any]) -> None:
    client = registry_client(info)
    pages = list(client.list_repository_names(results_per_page=7).by_page())
    assert all(len(list(p)) <= 7 for p in pages)
    # wire level: challenge, exchange, token, then the Link header format of the recording
    challenge = raw.session.get(
        info["data_plane_endpoint"] + "/acr/v1/_catalog",
        params={"n": 2},
        headers={"Authorization": ""},
    )
    assert challenge.status_code == 401
    assert challenge.headers["WWW-Authenticate"] == (
        f'Bearer realm="{info["data_plane_endpoint"]}/oauth2/token",'
        f'service="{info["login_server"]}",scope="registry:catalog:*"'
    )
    assert challenge.json()["errors"][0]["code"] == "UNAUTHORIZED"
    aad = credential(info).get_token("https://containerregistry.azure.net/.default").token
    refresh = raw.session.post(
        info["data_plane_endpoint"] + "/oauth2/exchange",
        data={"grant_type": "access_token", "service": info["login_server"], "access_token": aad},
        headers={"Authorization": ""},
    ).json()["refresh_token"]
    payload = refresh.split(".")[1]
    assert json.loads(base64.b64decode(payload))["exp"] > 0  # standard base64 with padding
    access = raw.session.post(
        info["data_plane_endpoint"] + "/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "service": info["login_server"],
            "scope": "registry:catalog:*",
            "refresh_token": refresh,
        },
        headers={"Authorization": ""},
    ).json()["access_token"]
    page = raw.session.get(
        info["data_plane_endpoint"] + "/v2/_catalog",
        params={"n": 2},
        headers={"Authorization": f"Bearer {access}"},
    )
    first = page.json()["repositories"]
    assert len(first) == 2
    last = first[-1].replace("/", "%2F")
    assert page.headers["Link"] == f'</v2/_catalog?last={last}&n=2&orderby=>; rel="next"'


def test_acr_token_basic_auth_lists_only_its_repositories(
    azure_sandbox: RunningSandbox, raw: Any, info: dict[str, Any]
) -> None:
    azure_sandbox.azure.seed_resource(
        "scopeMaps",
        "reader-map",
        {
            "properties": {
                "actions": [
                    "repositories/library/app0000/metadata/read",
                    "repositories/samples/app0001/content/read",
                ]
            }
        },
    )
    scope_map_id = raw.registry_path + "/scopeMaps/reader-map"
    azure_sandbox.azure.seed_resource(
        "tokens", "reader", {"properties": {"scopeMapId": scope_map_id}}
    )
    result = raw.call(
        "POST",
        raw.registry_path + "/generateCredentials",
        {"tokenId": raw.registry_path + "/tokens/reader", "name": "password1"},
    )
    assert result.status_code == 202
    final = raw.session.get(result.headers["Location"]).json()
    password = final["passwords"][0]["value"]
    token = raw.session.get(
        info["data_plane_endpoint"] + "/oauth2/token",
        params={"service": info["login_server"], "scope": "registry:catalog:*"},
        auth=("reader", password),
    )
    assert token.status_code == 200
    listing = raw.session.get(
        info["data_plane_endpoint"] + "/v2/_catalog",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
    )
    assert listing.json()["repositories"] == ["library/app0000", "samples/app0001"]
    wrong = raw.session.get(
        info["data_plane_endpoint"] + "/oauth2/token",
        params={"service": info["login_server"], "scope": "registry:catalog:*"},
        auth=("reader", "wrong"),
    )
    assert wrong.status_code == 401


def test_wrong_secret_fails_the_catalog(info: dict[str, Any]) -> None:
    client = registry_client(info, credential=credential(info, secret="nope"))
    with pytest.raises(ClientAuthenticationError):
        list(client.list_repository_names())


@pytest.fixture
def thousand(tmp_path_factory: pytest.TempPathFactory) -> Any:
    yield from azure_sandbox_fixture(tmp_path_factory, seed=SeedConfig(repo_count=1000))


def test_a_thousand_repositories(thousand: RunningSandbox) -> None:
    names = list(registry_client(thousand.info).list_repository_names())
    assert len(names) >= 1000 and names == sorted(names)
