"""The one retry policy: what waits how long, and what the Azure pipeline retries.

``delay_for`` is pure. The pipeline policy (``blocks.azure_pipeline.WriteSafeRetryPolicy``) is
driven through the block's real clients against the Azure sandbox, with scripted faults.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from model.errors import TransientError, classify, parse_retry_after
from model.retry import RetryPolicy, call_with_retry, delay_for
from sandbox.runner import RunningSandbox
from sandbox.testing import RecordingTransport, azure_sandbox_fixture

POLICY = RetryPolicy(attempts=5, base_delay=0.1, max_delay=2.0, jitter=0.0)


# -- delay_for: the one backoff / Retry-After clamp ------------------------------------------


def test_backoff_doubles_and_stops_at_the_cap() -> None:
    assert [delay_for(None, n, POLICY) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


def test_jitter_stays_within_its_band_and_under_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=1.1, jitter=0.2)
    waits = [delay_for(None, 0, policy) for _ in range(200)]
    assert all(0.8 <= w <= 1.1 for w in waits)


def test_retry_after_seconds_win_over_a_shorter_backoff_up_to_the_cap() -> None:
    assert delay_for(1.5, 0, POLICY) == 1.5
    assert delay_for(TransientError("429", retry_after=1.5), 0, POLICY) == 1.5
    assert delay_for(3600.0, 0, POLICY) == 2.0  # an hour's Retry-After is the cap
    assert delay_for(0.0, 2, POLICY) == 0.4  # "now" still backs off


def test_retry_after_dates_are_honoured_up_to_the_cap() -> None:
    soon = parse_retry_after(format_datetime(datetime.now(UTC) + timedelta(seconds=1), usegmt=True))
    late = parse_retry_after(format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True))
    past = parse_retry_after(format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True))
    assert soon is not None and 0 <= soon <= 1.0
    assert delay_for(soon, 0, POLICY) == max(0.1, soon)
    assert delay_for(late, 0, POLICY) == 2.0
    assert past == 0.0 and delay_for(past, 0, POLICY) == 0.1


def test_call_with_retry_waits_with_delay_for() -> None:
    waits: list[float] = []
    errors = [TransientError("503"), TransientError("429", retry_after=9.0)]

    def call() -> str:
        if errors:
            raise errors.pop(0)
        return "ok"

    assert call_with_retry(call, what="x", policy=POLICY, sleep=waits.append) == "ok"
    assert waits == [0.1, 2.0]  # backoff, then Retry-After clamped to the cap


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


# -- the Azure pipeline: per request, writes only when the server did not act ----------------


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    yield from azure_sandbox_fixture(tmp_path_factory)


@pytest.fixture
def sb(sandbox: RunningSandbox) -> Iterator[RunningSandbox]:
    sandbox.azure.clear_faults()
    yield sandbox
    sandbox.azure.clear_faults()


def _block(sb: RunningSandbox, **fields: Any) -> Any:
    from acr_edge.sandbox_blocks import parent_block

    block = parent_block(sb.info)
    for name, value in {"retry_base_delay": 0.01, "retry_max_delay": 0.05, **fields}.items():
        setattr(block, name, value)
    return block


def _mgmt(sb: RunningSandbox, **fields: Any) -> tuple[Any, RecordingTransport]:
    transport = RecordingTransport(connection_verify=sb.info["ca_bundle"])
    mgmt = _block(sb, **fields).management_client(polling_interval=0, transport=transport)
    info = sb.info
    mgmt.registries.get(info["resource_group"], info["registry"])  # token, warm connection
    sb.azure.clear_requests()
    transport.sleeps.clear()
    return mgmt, transport


def _calls(sb: RunningSandbox, method: str, path_end: str) -> list[int]:
    return [
        e["status"]
        for e in sb.azure.requests()
        if e["method"] == method and e["path"].split("?")[0].endswith(path_end)
    ]


def _create_map(mgmt: Any, sb: RunningSandbox, name: str) -> Any:
    info = sb.info
    body = {"properties": {"actions": ["repositories/a/content/read"]}}
    return mgmt.scope_maps.begin_create(info["resource_group"], info["registry"], name, body)


@pytest.mark.parametrize("kind", ["429", "500", "503", "drop"])
def test_reads_are_retried_on_every_transient_failure(sb: RunningSandbox, kind: str) -> None:
    mgmt, _ = _mgmt(sb)
    sb.azure.add_fault(path="/scopeMaps$", method="GET", sequence=[kind, kind])
    assert list(mgmt.scope_maps.list(sb.info["resource_group"], sb.info["registry"])) == []
    assert _calls(sb, "GET", "/scopeMaps")[-1] == 200
    assert len(_calls(sb, "GET", "/scopeMaps")) == 3


@pytest.mark.parametrize("kind", ["500", "drop"])
def test_an_ambiguous_write_failure_is_not_replayed(sb: RunningSandbox, kind: str) -> None:
    mgmt, _ = _mgmt(sb)
    sb.azure.add_fault(path="/scopeMaps/amb" + kind + "$", method="PUT", sequence=[kind])
    with pytest.raises((HttpResponseError, ServiceResponseError)) as info:
        _create_map(mgmt, sb, "amb" + kind).result()
    assert isinstance(classify(info.value), TransientError)  # for converge's re-read loop
    assert len(_calls(sb, "PUT", "/scopeMaps/amb" + kind)) == 1  # asked once, not replayed


@pytest.mark.parametrize("kind", ["429", "503"])
def test_a_write_the_server_refused_with_retry_after_is_retried(
    sb: RunningSandbox, kind: str
) -> None:
    mgmt, _ = _mgmt(sb)
    sb.azure.add_fault(path="/scopeMaps/shed" + kind + "$", method="PUT", sequence=[kind])
    assert _create_map(mgmt, sb, "shed" + kind).result().name == "shed" + kind
    statuses = _calls(sb, "PUT", "/scopeMaps/shed" + kind)
    assert statuses[0] == int(kind) and statuses[1] in (200, 201) and len(statuses) == 2


def test_retry_after_is_honoured_up_to_the_cap(sb: RunningSandbox) -> None:
    path = r"/registries/[^/]+$"
    mgmt, transport = _mgmt(sb, retry_max_delay=30.0)
    sb.azure.add_fault("429", path=path, method="GET", times=1, retry_after=7)
    mgmt.registries.get(sb.info["resource_group"], sb.info["registry"])
    assert transport.sleeps == [7.0]
    capped, transport = _mgmt(sb, retry_max_delay=1.5)
    sb.azure.add_fault("429", path=path, method="GET", times=1, retry_after=7)
    capped.registries.get(sb.info["resource_group"], sb.info["registry"])
    assert transport.sleeps == [1.5]


def test_attempts_come_from_the_block_and_then_the_error_surfaces(sb: RunningSandbox) -> None:
    mgmt, _ = _mgmt(sb, retry_attempts=3)
    sb.azure.add_fault("503", path="/scopeMaps$", method="GET", times=None)
    with pytest.raises(HttpResponseError):
        list(mgmt.scope_maps.list(sb.info["resource_group"], sb.info["registry"]))
    assert _calls(sb, "GET", "/scopeMaps") == [503, 503, 503]


def test_a_failed_catalog_page_is_asked_again_alone(sb: RunningSandbox) -> None:
    repos = [f"samples/r{i:03d}" for i in range(250)]
    sb.azure.set_repositories(repos)
    catalog = _block(sb).catalog_client()
    assert sorted(catalog.list_repository_names(results_per_page=100)) == repos  # warm up
    sb.azure.clear_requests()
    # Every page is asked twice (ACR's 401 challenge, then with a token). Page 1's authorized
    # ask drops; page 2's first ask answers 500.
    sb.azure.add_fault(path="/acr/v1/_catalog", method="GET", sequence=["ok", "drop", "ok", "500"])
    assert sorted(catalog.list_repository_names(results_per_page=100)) == repos
    asks = [
        (e["status"], e["query"]) for e in sb.azure.requests() if e["path"].endswith("_catalog")
    ]
    first_page = asks[0][1]
    answered = [query for status, query in asks if status == 200]
    assert len(answered) == 3 and len(set(answered)) == 3  # each page answered once
    failed = [i for i, (status, _) in enumerate(asks) if status in (0, 500)]
    assert len(failed) == 2
    # After page 2 failed, page 1 was not asked again: the listing did not start over.
    assert all(query != first_page for _, query in asks[failed[1] :])
    catalog.close()


def test_token_requests_are_retried(sb: RunningSandbox) -> None:
    """Entra ID's token POST and ACR's token exchanges trade tokens: safe to ask again."""
    block = _block(sb)
    sb.azure.clear_requests()
    sb.azure.add_fault(path="/oauth2/v2.0/token$", method="POST", sequence=["drop", "500"])
    sb.azure.add_fault(path="^/oauth2/exchange$", method="POST", sequence=["drop"])
    sb.azure.add_fault(path="^/oauth2/token$", method="POST", sequence=["500"])
    catalog = block.catalog_client()
    list(catalog.list_repository_names())
    catalog.close()
    for end in ("/oauth2/v2.0/token", "/oauth2/exchange"):
        statuses = _calls(sb, "POST", end)
        assert statuses[-1] == 200 and len(statuses) >= 2, (end, statuses)
    assert [s for s in _calls(sb, "POST", "/oauth2/token") if s != 200] == [500]
