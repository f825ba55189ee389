"""Fault injection and latency knobs, observed through the SDKs' own retry policies."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from sandbox.azure.faults import FaultRule, FaultTable
from sandbox.runner import RunningSandbox
from sandbox.testing import mgmt_client


def _client(sb: RunningSandbox, **kwargs: Any) -> Any:
    return mgmt_client(sb.info, retry_backoff_factor=0.01, **kwargs)


def _statuses(sb: RunningSandbox, path_end: str) -> list[int]:
    return [e["status"] for e in sb.azure.requests("arm") if e["path"].endswith(path_end)]


def test_sdk_retries_429_and_503(fresh_sandbox: RunningSandbox) -> None:
    sb, info = fresh_sandbox, fresh_sandbox.info
    mgmt = _client(sb)
    mgmt.registries.get(info["resource_group"], info["registry"])  # token + warm connection
    sb.azure.clear_requests()
    sb.azure.add_fault("429", path=r"/registries/[^/]+$", method="GET", times=1, retry_after=1)
    sb.azure.add_fault("503", path=r"/registries/[^/]+$", method="GET", times=1)
    started = time.perf_counter()
    reg = mgmt.registries.get(info["resource_group"], info["registry"])
    assert reg.name == info["registry"]
    assert _statuses(sb, info["registry"]) == [429, 503, 200]
    assert time.perf_counter() - started >= 1.0  # Retry-After: 1 was honoured


def test_scripted_sequence_and_dropped_connection(fresh_sandbox: RunningSandbox) -> None:
    sb, info = fresh_sandbox, fresh_sandbox.info
    mgmt = _client(sb)
    mgmt.registries.get(info["resource_group"], info["registry"])
    sb.azure.clear_requests()
    sb.azure.add_fault(path="/scopeMaps$", method="GET", sequence=["drop", "ok", "500"])
    assert list(mgmt.scope_maps.list(info["resource_group"], info["registry"])) == []
    assert _statuses(sb, "/scopeMaps") == [0, 200]
    with pytest.raises(HttpResponseError) as err:
        list(_client(sb, retry_total=0).scope_maps.list(info["resource_group"], info["registry"]))
    assert err.value.status_code == 500
    assert list(mgmt.scope_maps.list(info["resource_group"], info["registry"])) == []


def test_drop_without_retries_surfaces_as_a_connection_error(fresh_sandbox: RunningSandbox) -> None:
    sb, info = fresh_sandbox, fresh_sandbox.info
    mgmt = _client(sb, retry_total=0)
    mgmt.registries.get(info["resource_group"], info["registry"])
    sb.azure.add_fault("drop", path="/registries/", times=1)
    with pytest.raises(ServiceResponseError):
        mgmt.registries.get(info["resource_group"], info["registry"])


def test_rate_faults_are_reproducible_with_a_seed() -> None:
    def fired(seed: int) -> list[bool]:
        table = FaultTable(seed=seed)
        table.add(FaultRule(kind="503", rate=0.3, times=None))
        return [table.pick("GET", "/x") is not None for _ in range(50)]

    assert fired(7) == fired(7)
    assert 5 < sum(fired(7)) < 30
    assert fired(7) != fired(8)


def test_faults_and_latency_over_internal_endpoints(fresh_sandbox: RunningSandbox) -> None:
    sb, info = fresh_sandbox, fresh_sandbox.info
    session = requests.Session()
    session.trust_env = False
    session.verify = info["ca_bundle"]
    session.headers["X-Sandbox-Key"] = info["internal_key"]
    base = info["internal_endpoint"]
    added = session.post(
        base + "/faults",
        json={"seed": 3, "rules": [{"kind": "503", "path": "/registries/", "times": 2}]},
    ).json()
    assert added["ok"] and added["rules"][0]["kind"] == "503"
    assert session.post(base + "/latency", json={"latency": 0.2}).json()["knobs"]["latency"] == 0.2
    mgmt = _client(sb)
    started = time.perf_counter()
    mgmt.registries.get(info["resource_group"], info["registry"])
    assert time.perf_counter() - started >= 0.2 * 3  # two faulted attempts and the answer
    assert [r["fired"] for r in session.get(base + "/faults").json()["rules"]] == [2]
    assert session.delete(base + "/faults").json()["ok"]
    assert session.get(base + "/faults").json()["rules"] == []
    bad = session.post(base + "/faults", json={"rules": [{"kind": "418"}]})
    assert bad.status_code == 400
