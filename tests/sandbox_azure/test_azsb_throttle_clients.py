"""The throttle and LRO Retry-After met by acr-edge's own clients, `sandbox up` and raw HTTPS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from blocks import ParentRegistry
from model.errors import TransientError
from model.retry import RetryPolicy
from sandbox.runner import RunningSandbox, start_sandbox
from sandbox.testing import RecordingTransport, azure_sandbox_fixture, mgmt_client
from tasks.azure.arm import get_or_none


@pytest.fixture
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    yield from azure_sandbox_fixture(tmp_path_factory, propagation_delay=0)


def _block(info: dict[str, Any]) -> ParentRegistry:
    return ParentRegistry(
        subscription_id=info["subscription_id"],
        resource_group=info["resource_group"],
        registry_name=info["registry"],
        auth="service-principal",
        tenant_id=info["tenant_id"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        arm_endpoint=info["arm_endpoint"],
        authority_host=info["authority"],
        data_plane_endpoint=info["data_plane_endpoint"],
        ca_bundle_path=info["ca_bundle"],
    )


class Clock:
    """The throttle's clock, frozen unless a recorded wait moves it on."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ClockedRecorder(RecordingTransport):
    """Records the client's waits and lets them pass on the throttle's clock (no sleeping)."""

    def __init__(self, clock: Clock, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clock = clock

    def sleep(self, duration: float) -> None:
        super().sleep(duration)
        self.clock.now += duration


def _statuses(sb: RunningSandbox) -> list[int]:
    return [int(e["status"]) for e in sb.azure.requests("arm")]


def test_block_client_waits_retry_after_and_then_succeeds(sb: RunningSandbox) -> None:
    info = sb.info
    clock = sb.azure.throttle.clock = Clock()
    sb.azure.set_throttle(reads={"capacity": 1, "refill_per_second": 1})
    transport = ClockedRecorder(clock, connection_verify=info["ca_bundle"])
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=5.0)
    mgmt = _block(info).management_client(polling_interval=0, transport=transport, policy=policy)
    rg, name = info["resource_group"], info["registry"]
    mgmt.registries.get(rg, name)  # the bucket's only token
    sb.azure.clear_requests()
    transport.sleeps.clear()
    reg = get_or_none(lambda: mgmt.registries.get(rg, name), f"registry {name}")
    assert reg is not None and reg["name"] == name
    assert _statuses(sb) == [429, 200]
    # Retry-After: 1 honoured: the policy's own backoff (0.01 s, jittered) is shorter
    assert transport.sleeps == [1.0]
    assert sb.azure.throttle_status()["throttled"]["reads"] == 1


def test_block_client_gives_up_after_its_attempts_naming_the_resource(sb: RunningSandbox) -> None:
    info = sb.info
    sb.azure.throttle.clock = Clock()  # frozen: the retry meets the same empty bucket
    sb.azure.set_throttle(reads={"capacity": 1, "refill_per_second": 0.05})
    transport = RecordingTransport(connection_verify=info["ca_bundle"])
    policy = RetryPolicy(attempts=2, base_delay=0.01, max_delay=5.0)
    mgmt = _block(info).management_client(polling_interval=0, transport=transport, policy=policy)
    rg, name = info["resource_group"], info["registry"]
    mgmt.registries.get(rg, name)
    sb.azure.clear_requests()
    with pytest.raises(TransientError) as err:
        get_or_none(lambda: mgmt.registries.get(rg, name), f"registry {name}")
    text = str(err.value)
    assert text.startswith(f"registry {name}: HTTP 429")
    assert "SubscriptionRequestsThrottled" in text or "requests for subscription" in text
    assert err.value.retry_after == 20  # 1 token at 0.05/s
    # the policy caps a wait at max_delay: Retry-After 20 became 5 s
    assert transport.sleeps == [5.0]
    assert _statuses(sb) == [429, 429]


def _token_create(sb: RunningSandbox, transport: RecordingTransport, suffix: str) -> None:
    info = sb.info
    mgmt = mgmt_client(info, transport=transport, polling_interval=30)
    rg, reg = info["resource_group"], info["registry"]
    sm = mgmt.scope_maps.begin_create(
        rg, reg, f"lromap{suffix}", {"properties": {"actions": ["repositories/a/content/read"]}}
    ).result()
    mgmt.tokens.begin_create(
        rg, reg, f"lromap{suffix}", {"properties": {"scopeMapId": sm.id, "status": "enabled"}}
    ).result()


def test_lro_polls_wait_retry_after_between_polls(sb: RunningSandbox) -> None:
    sb.azure.set_knobs(lro_polls=2, lro_retry_after=4)
    transport = RecordingTransport(connection_verify=sb.info["ca_bundle"])
    sb.azure.clear_requests()
    _token_create(sb, transport, "a")
    # azure-core polls once at once, then every Retry-After (not its 30 s interval)
    assert transport.sleeps == [4, 4]
    polls = [e for e in sb.azure.requests("arm") if e["lro_poll"]]
    assert len(polls) == 3
    assert sb.azure.throttle_status()["admitted"]["reads"] >= 4  # polls are ARM reads


def test_lro_retry_after_defaults_to_ten_and_is_validated(tmp_path: Path) -> None:
    with start_sandbox(tmp_path, propagation_delay=0) as running:
        assert running.azure.knobs.lro_retry_after == 10
        running.azure.set_knobs(retry_after=3)  # the knob's old name
        assert running.azure.knobs.lro_retry_after == 3
        with pytest.raises(ValueError):
            running.azure.set_knobs(lro_retry_after=-1)
        assert running.azure.throttle_status()["enabled"] is True
        session = requests.Session()
        session.trust_env = False
        url = f"{running.info['internal_endpoint']}/latency"
        resp = session.post(
            url,
            json={"lro_retry_after": 1},
            headers={"X-Sandbox-Key": running.info["internal_key"]},
            verify=running.info["ca_bundle"],
            timeout=10,
        )
        assert resp.json()["knobs"]["lro_retry_after"] == 1


def test_sandbox_up_takes_throttle_and_lro_options(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    argv = [
        sys.executable,
        "-m",
        "acr_edge.cli",
        "sandbox",
        "up",
        "--state-dir",
        str(tmp_path),
        "--repos",
        "3",
        "--arm-writes",
        "5/0.5",
        "--lro-retry-after",
        "2",
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, text=True, env=env, cwd=Path(__file__).parents[2]
    )
    try:
        assert proc.stdout is not None
        assert "sandbox.json" in proc.stdout.readline()
        info = json.loads((tmp_path / "sandbox.json").read_text())
        session = requests.Session()
        session.trust_env = False
        key = {"X-Sandbox-Key": info["internal_key"]}
        base = info["internal_endpoint"]
        got = session.get(f"{base}/throttle", headers=key, verify=info["ca_bundle"], timeout=10)
        status = got.json()
        assert status["enabled"] is True
        assert status["rates"]["writes"] == {"capacity": 5, "refill_per_second": 0.5}
        assert status["rates"]["reads"] == {"capacity": 250, "refill_per_second": 25}
        knobs = session.post(
            f"{base}/latency", json={}, headers=key, verify=info["ca_bundle"], timeout=10
        ).json()["knobs"]
        assert knobs["lro_retry_after"] == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_sandbox_up_refuses_a_bad_rate(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "acr_edge.cli",
            "sandbox",
            "up",
            "--state-dir",
            str(tmp_path),
            "--arm-reads",
            "250",
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[2],
        timeout=120,
    )
    assert done.returncode == 2
    assert "CAPACITY/REFILL" in done.stderr and "Traceback" not in done.stderr
