"""The shared error vocabulary: what is retried, what fails fast, and what a retry waits."""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import paramiko
import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
)
from azure.core.pipeline.transport import HttpResponse
from kubernetes.client.exceptions import ApiException

from model.errors import PermanentError, TransientError, classify, redact
from model.retry import call_with_retry, is_transient, parse_retry_after


class _Response(HttpResponse):  # the smallest real azure-core response carrying a status
    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        super().__init__(request=None, internal_response=None)  # type: ignore[arg-type]
        self.status_code = status
        self.headers = headers or {}
        self.reason = "x"

    def body(self) -> bytes:
        return b""


def http_error(status: int, retry_after: str | None = None) -> HttpResponseError:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return HttpResponseError(message=f"status {status}", response=_Response(status, headers))


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_transient_http_statuses_are_retried(status: int) -> None:
    assert is_transient(http_error(status))


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_permanent_http_statuses_fail_fast(status: int) -> None:
    err = classify(http_error(status), resource="scope map site01", fix="do X")
    assert isinstance(err, PermanentError)
    assert "scope map site01" in str(err) and "Fix: do X" in str(err)


def test_retry_after_is_carried_from_the_response() -> None:
    err = classify(http_error(429, "7"))
    assert isinstance(err, TransientError) and err.retry_after == 7.0


def test_retry_after_accepts_http_dates() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    seconds = parse_retry_after(format_datetime(when, usegmt=True))
    assert seconds is not None and 25 <= seconds <= 31
    assert parse_retry_after("garbage") is None and parse_retry_after(None) is None


def test_client_errors_by_kind() -> None:
    assert isinstance(classify(ClientAuthenticationError("no")), PermanentError)
    assert isinstance(classify(ServiceRequestError("reset")), TransientError)
    assert isinstance(classify(ApiException(status=503, reason="down")), TransientError)
    assert isinstance(classify(ApiException(status=422, reason="Invalid")), PermanentError)
    assert isinstance(classify(TimeoutError("slow")), TransientError)
    assert isinstance(classify(ConnectionResetError(104, "reset")), TransientError)
    assert isinstance(classify(ssl.SSLCertVerificationError("bad cert")), PermanentError)
    assert isinstance(classify(ValueError("bug")), PermanentError)


def test_plain_requests_errors_by_status() -> None:
    import requests

    def failed(status: int, retry_after: str | None = None) -> requests.HTTPError:
        response = requests.Response()
        response.status_code = status
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        return requests.HTTPError(f"{status} error", response=response)

    for status in (429, 500, 503):
        assert isinstance(classify(failed(status)), TransientError), status
    throttled = classify(failed(429, "4"))
    assert isinstance(throttled, TransientError) and throttled.retry_after == 4.0
    assert isinstance(classify(failed(404), resource="metadata"), PermanentError)
    assert isinstance(classify(requests.ConnectionError("aborted")), TransientError)
    assert isinstance(classify(requests.Timeout("slow")), TransientError)


def test_ssh_host_key_problems_are_permanent_with_a_fix() -> None:
    key = paramiko.RSAKey.generate(1024)
    err = classify(paramiko.BadHostKeyException("node", key, key), resource="site01")
    assert isinstance(err, PermanentError) and "known_hosts" in str(err)
    unknown = classify(paramiko.SSHException("Server '[h]:22' not found in known_hosts"))
    assert isinstance(unknown, PermanentError)
    assert isinstance(classify(paramiko.SSHException("Error reading SSH banner")), TransientError)


def test_call_with_retry_backs_off_and_honours_retry_after() -> None:
    waits: list[float] = []
    outcomes: list[Exception | str] = [http_error(503), http_error(429, "3"), "done"]

    def call() -> str:
        item = outcomes.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    assert call_with_retry(call, what="token x", sleep=waits.append, base_delay=0.1) == "done"
    assert len(waits) == 2
    assert waits[0] < 1.0
    assert waits[1] >= 3.0  # Retry-After wins over a shorter backoff


def test_call_with_retry_stops_at_once_on_permanent_errors() -> None:
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise http_error(409)

    with pytest.raises(PermanentError):
        call_with_retry(call, what="token x", sleep=lambda _: None)
    assert calls == 1


def test_call_with_retry_gives_up_after_its_attempts() -> None:
    calls = 0

    def call() -> None:
        nonlocal calls
        calls += 1
        raise http_error(500)

    with pytest.raises(TransientError):
        call_with_retry(call, what="x", attempts=3, sleep=lambda _: None)
    assert calls == 3


def test_redact_hides_every_secret_longest_first() -> None:
    text = "pw=abc123 and abc123456 and abc"
    assert redact(text, ["abc", "abc123", "abc123456", ""]) == "pw=*** and *** and ***"
