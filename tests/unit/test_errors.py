"""The shared error vocabulary: what is retried, what fails fast, and what a retry waits."""

from __future__ import annotations

import base64
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


# -- redaction: every secret, each of its parts, every form it is printed back in ----------------

PW = "Xq7+Lm/9Zr2Tk8Wc4Vb6Np1Hs3Jd5Fg0="  # the shape of an ACR token password (base64 chars)
CS = (
    f"ConnectedRegistryName=site01;SyncTokenName=site01;SyncTokenPassword={PW};"
    "ParentGatewayEndpoint=parent.westus.data.azurecr.io;ParentEndpointProtocol=https"
)


def _b64(text: str, *, urlsafe: bool = False, pad: bool = True) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    out = encode(text.encode()).decode()
    return out if pad else out.rstrip("=")


def _leaks(text: str, secret: str) -> bool:
    """Whether any 12-character run of the secret survives in the text."""
    return any(secret[i : i + 12] in text for i in range(len(secret) - 11))


def test_a_connection_string_is_redacted_whole_and_its_password_alone() -> None:
    assert redact(f"helm: invalid {CS}", [CS]) == "helm: invalid ***"
    # Helm or the runtime prints the password alone (e.g. a failed login): still hidden.
    out = redact(f"login failed for site01 with password {PW}.", [CS])
    assert PW not in out and "***" in out
    assert "site01" in out  # names are not secrets: the message stays readable
    assert "ConnectedRegistryName=site01" in redact("ConnectedRegistryName=site01 x", [CS])


@pytest.mark.parametrize("urlsafe", [False, True])
@pytest.mark.parametrize("pad", [False, True])
def test_base64_of_a_password_is_redacted_in_each_alphabet_with_and_without_padding(
    urlsafe: bool, pad: bool
) -> None:
    encoded = _b64(PW, urlsafe=urlsafe, pad=pad)
    for secrets in ([PW], [CS]):
        out = redact(f"value: {encoded}\n", secrets)
        assert encoded not in out and not _leaks(out, encoded[4:-4]), (secrets, out)


@pytest.mark.parametrize("user", ["site01-client", "u", "ab", "a-much-longer-token-name"])
def test_docker_auth_of_user_and_password_is_redacted_for_any_user(user: str) -> None:
    """docker's ``auth`` is base64(user:password): its password part sits at any alignment."""
    auth = _b64(f"{user}:{PW}")
    out = redact(f'{{"auths":{{"h":{{"auth":"{auth}"}}}}}}', [PW])
    assert not _leaks(out, auth[len(user) + 4 :]), out
    # Given the whole registries.yaml-like text, the exact auth goes too.
    doc = f"username: {user}\npassword: {PW}\n"
    assert redact(auth, [doc]) == "***"


def test_kubectl_printing_a_dockerconfigjson_secret_is_redacted() -> None:
    """``kubectl get secret -o yaml`` shows data: base64 of the JSON holding base64(u:p)."""
    user = "site01-client"
    auth = _b64(f"{user}:{PW}")
    doc = f'{{"auths":{{"10.43.0.9":{{"username":"{user}","auth":"{auth}"}}}}}}'
    config = _b64(doc)
    out = redact(f"data:\n  .dockerconfigjson: {config}\n", [PW])
    # Where the password's bytes land: in auth, then in the JSON, then in its base64.
    first, last = -(-(len(user) + 1) * 4 // 3), (len(user) + 1 + len(PW)) * 4 // 3
    at = doc.index(auth)
    start, end = -(-(at + first) * 4 // 3), (at + last) * 4 // 3
    assert end - start > 40
    assert not _leaks(out, config[start + 4 : end - 4]), out
    assert config[:20] in out  # the JSON's start (no secret) is left readable


def test_values_file_parts_and_escaped_forms_are_redacted() -> None:
    values = f'connectedRegistry:\n  connectionString: "{CS}"\nlogLevel: "info"\n'
    assert PW not in redact(f"Error: bad value {PW!r}", [values])
    assert redact('"pw":"a<b&c>d-123"', ['"pw":"a<b&c>d-123"']) == "***"
    go = "a\\u003cb\\u0026c\\u003ed-123"  # Go's JSON escaping, as Helm prints it
    assert go not in redact(f"x {go} y", ["password: a<b&c>d-123"])
    assert "%2B" not in redact(f"https://u:{PW.replace('+', '%2B')}@h", [PW]).split("@")[0][-10:]


def test_shell_echo_of_a_quoted_secret_is_redacted() -> None:
    secret = "it's-a-secret-value"
    import shlex

    line = f"+ printf %s {shlex.quote(secret)}"
    assert "secret-value" not in redact(line, [secret])


def test_short_and_empty_values_are_not_treated_as_secrets() -> None:
    # A values text's short, non-secret values are not parts (only the text as a whole is).
    text = "pw abc, enabled: true, port: 443"
    assert redact(text, ["password: abc\nenabled: true\nport: 443", ""]) == text


def test_command_result_redacts_every_form_before_cutting_its_error_text() -> None:
    from tasks.site.commands import CommandResult

    auth = _b64(f"site01-client:{PW}")
    result = CommandResult(
        stdout="",
        stderr=f"Error: {PW} rejected; auth {auth}; " + "x" * 30,
        exit_status=1,
        _secrets=(CS,),
    )
    text = result.error_text(limit=len(PW) + 40)
    assert not _leaks(text, PW) and not _leaks(text, auth[20:])
    assert PW not in result.redacted(f"echo {PW}")
    with pytest.raises(PermanentError) as err:
        result.check("helm upgrade")
    assert PW not in str(err.value) and not _leaks(str(err.value), auth[20:])
