"""RBAC, the permissions endpoint and propagation, as Azure has them (issue 8).

Every test here failed on the old sandbox: any principal could write anything, there was no
``Microsoft.Authorization/permissions`` endpoint, and new passwords/client tokens worked at once.
Real SDKs (azure-identity, azure-mgmt-containerregistry, azure-containerregistry) throughout.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

from sandbox.runner import RunningSandbox, start_sandbox
from sandbox.testing import credential, mgmt_client, registry_client

README = Path(__file__).resolve().parents[2] / "README.md"
CUSTOM_ROLE = "acr-edge-operator"
# README "The parent registry and its principal", restated (the README test below keeps it true)
README_ACTIONS = [
    f"Microsoft.ContainerRegistry/registries/{a}"
    for a in (
        "read",
        "write",
        "scopeMaps/*",
        "tokens/*",
        "connectedRegistries/*",
        "generateCredentials/action",
        "operationStatuses/read",
    )
]
FORBIDDEN = re.compile(
    r"The client '[0-9a-f-]+' with object id '[0-9a-f-]+' does not have authorization to "
    r"perform action '(?P<action>[^']+)' over scope '(?P<scope>[^']+)' or the scope is "
    r"invalid\. If access was recently granted, please refresh your credentials\.",
    re.ASCII,
)


def _as(info: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:
    return {**info, "client_id": who["client_id"], "client_secret": who["client_secret"]}


def _enable_data_endpoint(info: dict[str, Any]) -> None:
    mgmt_client(info).registries.begin_update(
        info["resource_group"], info["registry"], {"properties": {"dataEndpointEnabled": True}}
    ).result()


def _registry_id(info: dict[str, Any]) -> str:
    return (
        f"/subscriptions/{info['subscription_id']}/resourceGroups/{info['resource_group']}"
        f"/providers/Microsoft.ContainerRegistry/registries/{info['registry']}"
    )


def test_a_reader_may_read_but_a_write_is_403_authorization_failed(
    fresh_sandbox: RunningSandbox,
) -> None:
    info = fresh_sandbox.info
    reader = fresh_sandbox.azure.add_principal(["Reader"])
    mgmt = mgmt_client(_as(info, reader))
    assert mgmt.registries.get(info["resource_group"], info["registry"]).name == info["registry"]
    with pytest.raises(HttpResponseError) as caught:
        mgmt.scope_maps.begin_create(
            info["resource_group"],
            info["registry"],
            "readerwrite",
            {"properties": {"actions": ["repositories/a/content/read"]}},
        ).result()
    err = caught.value
    assert err.status_code == 403 and err.error is not None
    assert err.error.code == "AuthorizationFailed"
    match = FORBIDDEN.fullmatch(err.error.message or "")
    assert match, err.error.message
    assert match["action"] == "Microsoft.ContainerRegistry/registries/scopeMaps/write"
    assert match["scope"] == f"{_registry_id(info)}/scopeMaps/readerwrite"
    assert reader["object_id"] in (err.error.message or "")
    assert err.response is not None and err.response.headers["x-ms-failure-cause"] == "gateway"


def test_acrpull_alone_lists_the_catalog_but_cannot_read_arm(fresh_sandbox: RunningSandbox) -> None:
    info = fresh_sandbox.info
    puller = fresh_sandbox.azure.add_principal(["AcrPull"])
    with pytest.raises(HttpResponseError) as caught:
        mgmt_client(_as(info, puller)).registries.get(info["resource_group"], info["registry"])
    assert caught.value.status_code == 403
    names = list(
        registry_client(info, credential=credential(_as(info, puller))).list_repository_names()
    )
    assert len(names) == len(fresh_sandbox.azure.primary_registry().repositories)


def test_without_acrpull_or_catalog_lister_the_catalog_is_refused(
    fresh_sandbox: RunningSandbox,
) -> None:
    info = fresh_sandbox.info
    operator = fresh_sandbox.azure.add_principal([CUSTOM_ROLE])
    client = registry_client(info, credential=credential(_as(info, operator)))
    with pytest.raises((HttpResponseError, ClientAuthenticationError)):
        list(client.list_repository_names())
    lister = fresh_sandbox.azure.add_principal(["Container Registry Repository Catalog Lister"])
    listed = registry_client(info, credential=credential(_as(info, lister)))
    assert list(listed.list_repository_names())


def test_the_readme_custom_role_provisions_and_rotates(fresh_sandbox: RunningSandbox) -> None:
    """The custom role with exactly README's actions is enough for every ARM write we make."""
    info = fresh_sandbox.info
    _enable_data_endpoint(info)
    who = fresh_sandbox.azure.add_principal([CUSTOM_ROLE])
    mgmt = mgmt_client(_as(info, who))
    rg, reg = info["resource_group"], info["registry"]
    sm = mgmt.scope_maps.begin_create(
        rg, reg, "opsite01", {"properties": {"actions": ["repositories/a/content/read"]}}
    ).result()
    token = mgmt.tokens.begin_create(
        rg, reg, "opsite01", {"properties": {"scopeMapId": sm.id}}
    ).result()
    mgmt.connected_registries.begin_create(
        rg,
        reg,
        "opsite01",
        {
            "properties": {
                "mode": "ReadOnly",
                "parent": {"syncProperties": {"tokenId": token.id, "messageTtl": "P2D"}},
            }
        },
    ).result()
    for slot in ("password1", "password2"):
        made = mgmt.registries.begin_generate_credentials(
            rg, reg, {"tokenId": token.id, "name": slot}
        ).result()
        assert made.passwords[0].value
    mgmt.registries.begin_update(rg, reg, {"tags": {"owner": "acr-edge"}}).result()
    # ...but nothing beyond them: deleting the registry is not in the list
    with pytest.raises(HttpResponseError) as caught:
        mgmt.registries.begin_delete(rg, reg).result()
    assert caught.value.status_code == 403


def test_readme_lists_exactly_the_custom_roles_actions() -> None:
    text = " ".join(README.read_text().split())
    section = text.split("The parent registry and its principal", 1)[1].split("### 2.", 1)[0]
    for action in README_ACTIONS:
        short = action.removeprefix("Microsoft.ContainerRegistry/")
        assert short.removeprefix("registries/") in section, action


def test_the_permissions_endpoint_reports_effective_permissions(
    fresh_sandbox: RunningSandbox,
) -> None:
    info = fresh_sandbox.info
    scope = _registry_id(info)

    def permissions(who: dict[str, Any]) -> list[dict[str, Any]]:
        token = credential(who).get_token("https://management.azure.com/.default").token
        resp = requests.get(
            f"{info['arm_endpoint']}{scope}/providers/Microsoft.Authorization/permissions",
            params={"api-version": "2022-04-01"},
            headers={"Authorization": f"Bearer {token}"},
            verify=info["ca_bundle"],
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        return list(resp.json()["value"])

    seeded = permissions(info)
    assert seeded and seeded[0]["actions"] == ["*"]
    assert "Microsoft.Authorization/*/Write" in seeded[0]["notActions"]
    reader = fresh_sandbox.azure.add_principal(["Reader"])
    assert permissions(_as(info, reader)) == [
        {"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []}
    ]
    operator = fresh_sandbox.azure.add_principal([CUSTOM_ROLE])
    assert permissions(_as(info, operator))[0]["actions"] == README_ACTIONS
    nobody = fresh_sandbox.azure.add_principal([])
    assert permissions(_as(info, nobody)) == []


def test_principals_can_be_created_over_the_internal_api(fresh_sandbox: RunningSandbox) -> None:
    info = fresh_sandbox.info
    resp = requests.post(
        f"{info['internal_endpoint']}/principals",
        json={"roles": ["AcrPull"]},
        headers={"X-Sandbox-Key": info["internal_key"]},
        verify=info["ca_bundle"],
        timeout=10,
    )
    who = resp.json()
    assert set(who) == {"client_id", "client_secret", "object_id"}
    assert who["client_secret"] in fresh_sandbox.azure.secrets()  # redaction tests see it
    with pytest.raises(HttpResponseError):
        mgmt_client(_as(info, who)).registries.get(info["resource_group"], info["registry"])


# -- propagation -------------------------------------------------------------------------------


def test_start_sandbox_and_sandbox_up_default_to_a_few_seconds_of_propagation(
    tmp_path: Path,
) -> None:
    from sandbox.cli import _parser

    with start_sandbox(tmp_path) as running:
        assert running.azure.knobs.propagation_delay == 3.0
    with start_sandbox(tmp_path / "zero", propagation_delay=0) as running:
        assert running.azure.knobs.propagation_delay == 0.0
    args = _parser().parse_args(["up", "--state-dir", str(tmp_path)])
    assert args.propagation_delay == 3.0


def test_a_newly_attached_client_token_waits_for_propagation(fresh_sandbox: RunningSandbox) -> None:
    sb, info = fresh_sandbox, fresh_sandbox.info
    _enable_data_endpoint(info)
    mgmt = mgmt_client(info)
    rg, reg = info["resource_group"], info["registry"]
    repo = "samples/app0000"
    sm = mgmt.scope_maps.begin_create(
        rg, reg, "propsite1", {"properties": {"actions": [f"repositories/{repo}/content/read"]}}
    ).result()
    sync = mgmt.tokens.begin_create(
        rg, reg, "propsite1", {"properties": {"scopeMapId": sm.id}}
    ).result()
    client = mgmt.tokens.begin_create(
        rg, reg, "propsite1-client", {"properties": {"scopeMapId": sm.id}}
    ).result()
    cr = mgmt.connected_registries.begin_create(
        rg,
        reg,
        "propsite1",
        {
            "properties": {
                "mode": "ReadOnly",
                "parent": {"syncProperties": {"tokenId": sync.id, "messageTtl": "P2D"}},
            }
        },
    ).result()
    sync_pw = mgmt.registries.begin_generate_credentials(
        rg, reg, {"tokenId": sync.id, "name": "password1"}
    ).result()
    cs = (
        f"ConnectedRegistryName=propsite1;SyncTokenName=propsite1;"
        f"SyncTokenPassword={sync_pw.passwords[0].value};"
        f"ParentGatewayEndpoint={cr.parent.sync_properties.gateway_endpoint};"
        f"ParentEndpointProtocol=https"
    )
    assert sb.azure.activate(cs)["ok"]
    client_pw = (
        mgmt.registries.begin_generate_credentials(
            rg, reg, {"tokenId": client.id, "name": "password1"}
        )
        .result()
        .passwords[0]
        .value
    )
    sb.azure.set_knobs(propagation_delay=0)
    mgmt.connected_registries.begin_update(
        rg, reg, "propsite1", {"properties": {"clientTokenIds": [client.id]}}
    ).result()
    sb.azure.set_knobs(propagation_delay=3600)  # attached just now: not at the CR yet
    refused = sb.azure.pull_check("propsite1", "propsite1-client", client_pw, repo)
    # refused for the token's attachment, not only for the young password
    assert not refused["ok"]
    assert "client token 'propsite1-client' has not propagated" in refused["reason"]
    sb.azure.set_knobs(propagation_delay=0)
    assert sb.azure.pull_check("propsite1", "propsite1-client", client_pw, repo)["ok"]


def test_in_abac_mode_only_the_catalog_lister_lists_repositories(
    fresh_sandbox: RunningSandbox,
) -> None:
    """ACR ABAC docs: in "RBAC Registry + ABAC Repository Permissions" AcrPull (and Owner,
    Contributor, Reader) no longer grant data-plane access; Catalog Lister does."""
    info = fresh_sandbox.info
    mgmt_client(info).registries.begin_update(
        info["resource_group"],
        info["registry"],
        {"properties": {"roleAssignmentMode": "AbacRepositoryPermissions"}},
    ).result()
    puller = fresh_sandbox.azure.add_principal(["AcrPull"])
    with pytest.raises((HttpResponseError, ClientAuthenticationError)):
        list(
            registry_client(info, credential=credential(_as(info, puller))).list_repository_names()
        )
    lister = fresh_sandbox.azure.add_principal(["Container Registry Repository Catalog Lister"])
    assert list(
        registry_client(info, credential=credential(_as(info, lister))).list_repository_names()
    )


def test_the_permissions_answer_reads_right_with_the_products_evaluator(
    fresh_sandbox: RunningSandbox,
) -> None:
    """model.rbac (preflight's pure half) evaluates the sandbox's permissions answers as ARM's."""
    from model import rbac as product

    info = fresh_sandbox.info
    scope = _registry_id(info)

    def check(who: dict[str, Any]) -> Any:
        token = credential(who).get_token("https://management.azure.com/.default").token
        answer = requests.get(
            f"{info['arm_endpoint']}{scope}/providers/Microsoft.Authorization/permissions",
            params={"api-version": "2022-04-01"},
            headers={"Authorization": f"Bearer {token}"},
            verify=info["ca_bundle"],
            timeout=10,
        ).json()["value"]
        return product.check(answer)

    assert check(info).ok  # the seeded Contributor
    reader = check(_as(info, fresh_sandbox.azure.add_principal(["Reader"])))
    assert reader.catalog_ok and all(not a.endswith("/read") for a in reader.missing)
    assert reader.missing
    puller = check(_as(info, fresh_sandbox.azure.add_principal(["AcrPull"])))
    assert puller.catalog_ok and set(puller.missing) == set(product.PROVISION_ACTIONS)
    operator = check(_as(info, fresh_sandbox.azure.add_principal([CUSTOM_ROLE])))
    assert operator.missing == () and not operator.catalog_ok
