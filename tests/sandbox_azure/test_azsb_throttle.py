"""ARM throttling in the sandbox: the token buckets on a fake clock, then through the real SDK."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError

from sandbox.azure.throttle import (
    ARM_RATES,
    ArmThrottle,
    Rate,
    request_kind,
    throttled_subscription,
)
from sandbox.runner import RunningSandbox
from sandbox.testing import RecordingTransport, azure_sandbox_fixture, credential, mgmt_client

SUB = "5c1b7a3e-0000-4000-8000-0000000000b5"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the buckets, no sleeping ----------------------------------------------------------------


def test_defaults_are_arm_rates() -> None:
    assert ARM_RATES["reads"] == Rate(250, 25)
    assert ARM_RATES["writes"] == Rate(200, 10)
    assert ARM_RATES["deletes"] == Rate(200, 10)
    status = ArmThrottle().status()
    assert status["enabled"] is True
    assert status["remaining"] == {"reads": 250, "writes": 200, "deletes": 200}
    assert status["global_multiplier"] == 15


def test_kinds_and_scoped_paths() -> None:
    assert [request_kind(m) for m in ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")] == [
        "reads",
        "reads",
        "writes",
        "writes",
        "writes",
        "deletes",
    ]
    assert throttled_subscription(f"/subscriptions/{SUB.upper()}/resourceGroups/x") == SUB
    for path in ("/subscriptions", "/tenants", "/metadata/endpoints", "/oauth2/token"):
        assert throttled_subscription(path) is None


def test_a_burst_empties_the_bucket_and_the_refill_sets_retry_after() -> None:
    clock = Clock()
    throttle = ArmThrottle(clock=clock)
    verdicts = [throttle.admit(SUB, "actor", "PUT") for _ in range(201)]
    assert all(v is not None and v.allowed for v in verdicts[:200])
    assert verdicts[199] is not None and verdicts[199].remaining == 0
    refused = verdicts[200]
    assert refused is not None and not refused.allowed
    assert refused.retry_after == 1  # 1 token at 10/s is 0.1 s away: ceil, at least 1
    assert refused.headers()["Retry-After"] == "1"
    clock.now += 0.1
    again = throttle.admit(SUB, "actor", "PUT")
    assert again is not None and again.allowed and again.remaining == 0
    # reads and deletes have buckets of their own
    read = throttle.admit(SUB, "actor", "GET")
    assert read is not None and read.allowed and read.remaining == 249
    assert throttle.status()["throttled"] == {"reads": 0, "writes": 1, "deletes": 0}


def test_retry_after_is_the_ceiling_of_the_wait_for_one_token() -> None:
    clock = Clock()
    throttle = ArmThrottle(rates={"deletes": Rate(1, 0.25)}, clock=clock)
    assert throttle.admit(SUB, "a", "DELETE").allowed  # type: ignore[union-attr]
    clock.now += 1.5  # 0.375 of a token back: 2.5 s more
    refused = throttle.admit(SUB, "a", "DELETE")
    assert refused is not None and not refused.allowed and refused.retry_after == 3
    clock.now += 2.5
    assert throttle.admit(SUB, "a", "DELETE").allowed  # type: ignore[union-attr]


def test_a_refused_request_takes_no_token() -> None:
    clock = Clock()
    throttle = ArmThrottle(rates={"writes": Rate(1, 1)}, clock=clock)
    assert throttle.admit(SUB, "a", "PUT").allowed  # type: ignore[union-attr]
    for _ in range(5):
        assert not throttle.admit(SUB, "a", "PUT").allowed  # type: ignore[union-attr]
    clock.now += 1.0
    assert throttle.admit(SUB, "a", "PUT").allowed  # type: ignore[union-attr]


def test_principal_buckets_are_separate_and_the_global_bucket_is_shared() -> None:
    clock = Clock()
    throttle = ArmThrottle(rates={"reads": Rate(2, 1)}, global_multiplier=2, clock=clock)
    for actor in ("a", "a", "b", "b"):
        assert throttle.admit(SUB, actor, "GET").allowed  # type: ignore[union-attr]
    a_again = throttle.admit(SUB, "a", "GET")
    assert a_again is not None and not a_again.allowed
    # c's own bucket is full, but the subscription's global bucket (2 x 2) is empty
    c_first = throttle.admit(SUB, "c", "GET")
    assert c_first is not None and not c_first.allowed
    assert c_first.remaining == 2 and c_first.global_remaining == 0
    # another subscription is untouched
    assert throttle.admit("other-sub", "a", "GET").allowed  # type: ignore[union-attr]


def test_disabled_throttle_admits_nothing_and_counts_nothing() -> None:
    throttle = ArmThrottle(enabled=False, rates={"reads": Rate(1, 1)}, clock=Clock())
    assert throttle.admit(SUB, "a", "GET") is None
    throttle.configure(enabled=True)
    assert throttle.admit(SUB, "a", "GET").allowed  # type: ignore[union-attr]


def test_configure_validates_and_reset_refills() -> None:
    clock = Clock()
    throttle = ArmThrottle(rates={"reads": Rate(1, 1)}, clock=clock)
    throttle.admit(SUB, "a", "GET")
    throttle.admit(SUB, "a", "GET")
    assert throttle.status()["throttled"]["reads"] == 1
    throttle.configure(reset=True)
    assert throttle.status()["throttled"]["reads"] == 0
    assert throttle.admit(SUB, "a", "GET").allowed  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        Rate(0, 1)
    with pytest.raises(ValueError):
        Rate(1, 0)
    with pytest.raises(ValueError):
        throttle.configure(rates={"lists": Rate(1, 1)})
    with pytest.raises(ValueError):
        throttle.configure(min_retry_after=0)


def test_the_429_body_names_kind_subscription_and_actor() -> None:
    throttle = ArmThrottle(rates={"reads": Rate(1, 1)}, clock=Clock())
    throttle.admit(SUB, "oid-1", "GET")
    refused = throttle.admit(SUB, "oid-1", "GET")
    assert refused is not None
    error = refused.error_body()["error"]
    assert error["code"] == "SubscriptionRequestsThrottled"
    assert error["message"].startswith(
        f"Number of 'read' requests for subscription '{SUB}' actor 'oid-1' exceeded. "
        "Please try again after '1' seconds"
    )


# -- through HTTPS and the real SDK ----------------------------------------------------------


@pytest.fixture
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    yield from azure_sandbox_fixture(tmp_path_factory, propagation_delay=0)


def _internal(sb: RunningSandbox, method: str, body: Any = None) -> dict[str, Any]:
    session = requests.Session()
    session.trust_env = False
    resp = session.request(
        method,
        f"{sb.info['internal_endpoint']}/throttle",
        json=body,
        headers={"X-Sandbox-Key": sb.info["internal_key"]},
        verify=sb.info["ca_bundle"],
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _headers(mgmt: Any, info: dict[str, Any]) -> dict[str, str]:
    return dict(
        mgmt.registries.get(
            info["resource_group"],
            info["registry"],
            cls=lambda pipeline, _model, _headers: pipeline.http_response.headers,
        )
    )


def _oid(sb: RunningSandbox, client_id: str) -> str:
    return sb.azure.store.principals[client_id.lower()].object_id


def test_every_arm_response_carries_the_remaining_tokens_of_its_kind(sb: RunningSandbox) -> None:
    info = sb.info
    mgmt = mgmt_client(info)
    first = _headers(mgmt, info)
    second = _headers(mgmt, info)
    low1 = {k.lower(): v for k, v in first.items()}
    low2 = {k.lower(): v for k, v in second.items()}
    assert low1["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    assert low1["x-ms-ratelimit-remaining-subscription-global-reads"] == "3749"
    assert int(low2["x-ms-ratelimit-remaining-subscription-reads"]) <= 249
    assert "x-ms-ratelimit-remaining-subscription-writes" not in low1
    # a write (LRO included) reports the write bucket
    poller = mgmt.scope_maps.begin_create(
        info["resource_group"],
        info["registry"],
        "throttle-map",
        {"properties": {"actions": ["repositories/hello-world/content/read"]}},
    )
    poller.result()
    status = _internal(sb, "GET")
    assert status["remaining"]["writes"] == 199
    assert status["throttled"] == {"reads": 0, "writes": 0, "deletes": 0}
    # the Entra token endpoint is not ARM: not counted
    assert status["admitted"]["reads"] >= 2


def test_an_empty_bucket_answers_429_with_retry_after_and_arms_body(sb: RunningSandbox) -> None:
    info = sb.info
    _internal(sb, "POST", {"reads": {"capacity": 2, "refill_per_second": 0.5}})
    mgmt = mgmt_client(info, retry_total=0)
    _headers(mgmt, info)
    _headers(mgmt, info)
    with pytest.raises(HttpResponseError) as err:
        _headers(mgmt, info)
    exc = err.value
    assert exc.status_code == 429
    assert exc.error is not None and exc.error.code == "SubscriptionRequestsThrottled"
    actor = _oid(sb, info["client_id"])
    assert f"'read' requests for subscription '{info['subscription_id']}'" in exc.message
    assert f"actor '{actor}'" in exc.message
    assert exc.response is not None
    headers = exc.response.headers  # type: ignore[attr-defined]
    assert int(headers["Retry-After"]) >= 1  # 1 token at 0.5/s is up to 2 s away
    assert headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    status = _internal(sb, "GET")
    assert status["throttled"] == {"reads": 1, "writes": 0, "deletes": 0}
    assert status["rates"]["reads"] == {"capacity": 2, "refill_per_second": 0.5}
    # refused at the front door: the request log shows the 429, no resource provider answer
    assert [e["status"] for e in sb.azure.requests("arm")][-1] == 429


def test_principal_bucket_is_separate_from_the_subscription_bucket(sb: RunningSandbox) -> None:
    info = sb.info
    other = sb.azure.add_principal(["Reader"])
    _internal(sb, "POST", {"reads": {"capacity": 2, "refill_per_second": 0.01}})
    mine = mgmt_client(info, retry_total=0)
    theirs = mgmt_client(
        info,
        retry_total=0,
        credential=credential({**info, "client_id": other["client_id"]}, other["client_secret"]),
    )
    _headers(mine, info)
    _headers(mine, info)
    with pytest.raises(HttpResponseError) as err:
        _headers(mine, info)
    assert err.value.status_code == 429
    # the other principal has a bucket of its own...
    assert _headers(theirs, info)["x-ms-ratelimit-remaining-subscription-reads"] == "1"
    # ... and both share the subscription's: 15 x 2 = 30; at multiplier 1 it is 2, now spent
    _internal(sb, "POST", {"global_multiplier": 1})
    _headers(theirs, info)
    _headers(mine, info)
    with pytest.raises(HttpResponseError) as err:
        _headers(theirs, info)
    assert err.value.status_code == 429
    assert f"actor '{other['object_id']}'" in err.value.message
    assert err.value.response is not None
    got = err.value.response.headers  # type: ignore[attr-defined]
    assert got["x-ms-ratelimit-remaining-subscription-reads"] == "1"
    assert got["x-ms-ratelimit-remaining-subscription-global-reads"] == "0"
    status = _internal(sb, "GET")
    assert status["throttled"]["reads"] == 2
    actors = {row["actor"] for row in status["buckets"] if row["kind"] == "reads"}
    assert actors == {_oid(sb, info["client_id"]), other["object_id"], None}


def test_knob_off_means_no_429_and_no_headers(sb: RunningSandbox) -> None:
    info = sb.info
    tiny = {"capacity": 1, "refill_per_second": 0.01}
    off = _internal(sb, "POST", {"enabled": False, "reads": tiny})
    assert off["enabled"] is False
    mgmt = mgmt_client(info, retry_total=0)
    for _ in range(3):
        headers = {k.lower() for k in _headers(mgmt, info)}
        assert "x-ms-ratelimit-remaining-subscription-reads" not in headers
    assert _internal(sb, "GET")["throttled"]["reads"] == 0
    _internal(sb, "POST", {"enabled": True})
    _headers(mgmt, info)
    with pytest.raises(HttpResponseError):
        _headers(mgmt, info)


def test_internal_endpoint_refuses_bad_knobs(sb: RunningSandbox) -> None:
    session = requests.Session()
    session.trust_env = False
    url = f"{sb.info['internal_endpoint']}/throttle"
    key = {"X-Sandbox-Key": sb.info["internal_key"]}
    for body in (
        {"reads": {"capacity": 0, "refill_per_second": 1}},
        {"reads": {"capacity": 1, "refill_per_second": 0}},
        {"reads": {"burst": 5}},
        {"lists": {"capacity": 1}},
        {"enabled": "maybe"},
        {"min_retry_after": 0},
    ):
        resp = session.post(url, json=body, headers=key, verify=sb.info["ca_bundle"], timeout=10)
        assert resp.status_code == 400, body
    assert session.get(url, verify=sb.info["ca_bundle"], timeout=10).status_code == 401


class SleepingRecorder(RecordingTransport):
    """Records the SDK's waits and really waits them, so the bucket refills meanwhile."""

    def sleep(self, duration: float) -> None:
        super().sleep(duration)
        time.sleep(duration)


def test_the_sdk_waits_retry_after_and_then_succeeds(sb: RunningSandbox) -> None:
    info = sb.info
    _internal(sb, "POST", {"reads": {"capacity": 1, "refill_per_second": 1}})
    transport = SleepingRecorder(connection_verify=info["ca_bundle"])
    mgmt = mgmt_client(info, transport=transport, retry_backoff_factor=0.01)
    _headers(mgmt, info)
    sb.azure.clear_requests()
    transport.sleeps.clear()
    headers = _headers(mgmt, info)  # 429 Retry-After: 1, then 200
    assert headers["x-ms-ratelimit-remaining-subscription-reads"] == "0"
    statuses = [e["status"] for e in sb.azure.requests("arm")]
    assert statuses[0] == 429 and statuses[-1] == 200
    assert transport.sleeps and max(transport.sleeps) >= 1.0
