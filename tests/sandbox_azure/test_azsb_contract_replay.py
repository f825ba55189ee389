"""Contract replay: every official 2025-11-01 example request against the sandbox.

For each example the sandbox is seeded so the example's resources exist, the request is sent as
the example describes it (path from the swagger + ``parameters``, body from the body parameter),
and the answer must use one of the example's status codes and carry the example's keys
(recursively; server-computed values may differ). LROs are followed to their final answer.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from sandbox.azure import SeedConfig
from sandbox.runner import RunningSandbox, start_sandbox
from sandbox.testing import credential

# Copied from ../shared/contracts (spec §9) so a clean clone tests fidelity too; a missing file
# is a failure (test_contracts_are_present and the read below), never a skip.
CONTRACTS = Path(__file__).resolve().parents[1] / "contracts" / "arm" / "2025-11-01"
SWAGGER = CONTRACTS / "containerregistry.json"
EXAMPLE_NAMES = (
    "ConnectedRegistryCreate",
    "ConnectedRegistryDeactivate",
    "ConnectedRegistryDelete",
    "ConnectedRegistryGet",
    "ConnectedRegistryList",
    "ConnectedRegistryUpdate",
    "RegistryGenerateCredentials",
    "RegistryGet",
    "RegistryUpdate",
    "ScopeMapCreate",
    "ScopeMapDelete",
    "ScopeMapGet",
    "ScopeMapList",
    "ScopeMapUpdate",
    "TokenCreate",
    "TokenDelete",
    "TokenGet",
    "TokenList",
    "TokenUpdate",
)
EXAMPLES = [CONTRACTS / f"{name}.json" for name in EXAMPLE_NAMES]
# The examples are 2025-11-01's, but the live service lists only previews on connectedRegistries
# (spec §5, CLI-REC): their requests are replayed at the block default, as the product sends them.
CR_API_VERSION = "2026-01-01-preview"

SEED_SCOPE_MAP = "seedScopeMap"


def test_contracts_are_present() -> None:
    missing = [p.name for p in [SWAGGER, *EXAMPLES] if not p.is_file()]
    assert missing == [], f"tests/contracts lacks {missing}: copy them from ../shared/contracts"


def _operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    swagger = json.loads(SWAGGER.read_text())
    ops = {}
    for path, item in swagger["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "operationId" in op:
                ops[op["operationId"]] = (method.upper(), path, op)
    return ops


def _body_param(op: dict[str, Any]) -> str | None:
    for param in op.get("parameters", []):
        if param.get("in") == "body":
            return str(param["name"])
    return None


def _seed(sb: RunningSandbox, example: dict[str, Any]) -> None:
    params = example["parameters"]
    reg_id = (
        f"/subscriptions/{params['subscriptionId']}/resourceGroups/"
        f"{params['resourceGroupName']}/providers/Microsoft.ContainerRegistry/registries/"
        f"{params['registryName']}"
    )
    azure = sb.azure
    for sm in (SEED_SCOPE_MAP, "myScopeMap", "myNewScopeMap"):
        azure.seed_resource(
            "scopeMaps", sm, {"properties": {"actions": ["repositories/hello-world/content/read"]}}
        )
    for token in ("syncToken", "client1Token", "client2Token", "myToken"):
        azure.seed_resource(
            "tokens", token, {"properties": {"scopeMapId": f"{reg_id}/scopeMaps/{SEED_SCOPE_MAP}"}}
        )
    for cr in ("myConnectedRegistry", params.get("connectedRegistryName", "myConnectedRegistry")):
        azure.seed_resource(
            "connectedRegistries",
            cr,
            {
                "properties": {
                    "mode": "ReadWrite",
                    "clientTokenIds": [f"{reg_id}/tokens/client1Token"],
                    "notificationsList": ["hello-world:*:*", "sample/repo/*:1.0:*"],
                    "parent": {
                        "syncProperties": {
                            "tokenId": f"{reg_id}/tokens/syncToken",
                            "schedule": "0 9 * * *",
                            "messageTtl": "P2D",
                            "syncWindow": "PT3H",
                        }
                    },
                }
            },
        )


def _future_expiry(body: Any) -> Any:
    """The examples were written in 2020 with a then-future password expiry; the service refuses
    an expiry in the past, so the replay moves it a year ahead of now (shape unchanged)."""
    if isinstance(body, dict) and "expiry" in body:
        ahead = datetime.now(UTC) + timedelta(days=365)
        return {**body, "expiry": ahead.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
    return body


def _api_version(example: dict[str, Any]) -> str:
    if example["operationId"].startswith("ConnectedRegistries_"):
        return CR_API_VERSION
    return str(example["parameters"]["api-version"])


def _missing_keys(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Keys of ``expected`` (recursively) that ``actual`` lacks."""
    missing: list[str] = []
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where or '<root>'} (expected an object)"]
        if where == ".tags":  # user data: any keys
            return []
        for key, value in expected.items():
            if key not in actual:
                missing.append(f"{where}.{key}")
            else:
                missing += _missing_keys(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list) and expected and isinstance(actual, list) and actual:
        missing += _missing_keys(expected[0], actual[0], f"{where}[0]")
    return missing


@pytest.mark.parametrize("example_path", EXAMPLES, ids=lambda p: p.stem)
def test_example_replays(example_path: Path, tmp_path: Path) -> None:
    example = json.loads(example_path.read_text())
    # the registry examples show a registry without a data endpoint (so it may go Standard)
    registry_op = example["operationId"].startswith("Registries_Update")
    seed = SeedConfig(
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="myResourceGroup",
        registry="myRegistry",
        location="westus",
        data_endpoint_enabled=not registry_op,
        repo_count=3,
    )
    with start_sandbox(tmp_path, seed=seed) as running:
        _replay(example, running, seed_children=not registry_op)


def _replay(
    example: dict[str, Any], example_sandbox: RunningSandbox, *, seed_children: bool
) -> None:
    method, template, op = _operations()[example["operationId"]]
    params = example["parameters"]
    if seed_children:
        _seed(example_sandbox, example)
    path = template
    for key, value in params.items():
        path = path.replace("{" + key + "}", str(value))
    assert "{" not in path, path
    body_name = _body_param(op)
    info = example_sandbox.info
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_bundle"]
    token = credential(info).get_token("https://management.azure.com/.default").token
    session.headers["Authorization"] = f"Bearer {token}"
    resp = session.request(
        method,
        info["arm_endpoint"] + path,
        params={"api-version": _api_version(example)},
        json=_future_expiry(params[body_name]) if body_name else None,
        timeout=10,
    )
    responses = example["responses"]
    assert str(resp.status_code) in responses, (resp.status_code, resp.text)
    expected = responses[str(resp.status_code)]
    for header in expected.get("headers", {}):
        assert header.lower() in {h.lower() for h in resp.headers}, header
    if expected.get("body") is not None:
        assert _missing_keys(expected["body"], resp.json()) == []
    assert (
        resp.headers.get("Content-Type", "application/json").startswith("application/json")
        or not resp.content
    )
    # follow the LRO as a client would, and check the final answer too
    if resp.status_code == 201:
        status = session.get(resp.headers["Azure-AsyncOperation"]).json()
        assert status["status"] == "Succeeded"
        final = session.get(
            info["arm_endpoint"] + path, params={"api-version": params["api-version"]}
        )
        assert final.json()["properties"]["provisioningState"] == "Succeeded"
        if "200" in responses and responses["200"].get("body") is not None:
            assert _missing_keys(responses["200"]["body"], final.json()) == []
    elif resp.status_code == 202:
        final = session.get(resp.headers["Location"])
        assert str(final.status_code) in responses and final.status_code != 202
        done = responses[str(final.status_code)]
        if done.get("body") is not None:
            assert _missing_keys(done["body"], final.json()) == []
