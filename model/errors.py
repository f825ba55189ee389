"""One error vocabulary for every step: transient errors are retried, permanent ones fail fast.

Every I/O wrapper converts what its client raised with :func:`classify`, so the retry policy
(:mod:`model.retry`) never needs to know which SDK a failure came from.
"""

from __future__ import annotations

import base64
import email.utils
import json
import re
import shlex
import socket
import ssl
import time
import urllib.parse
from collections.abc import Iterable
from typing import Any

TRANSIENT_HTTP = frozenset({408, 429, 500, 502, 503, 504})


class AcrEdgeError(Exception):
    """Base of every error acr-edge raises on purpose."""


class TransientError(AcrEdgeError):
    """Worth retrying: timeouts, 429, 5xx, dropped connections, a resource still converging."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(AcrEdgeError):
    """Retrying cannot help: validation, auth, conflicts, host-key mismatch.

    The message names the resource and the fix, so the run's failure reads as an instruction.
    """

    def __init__(self, message: str, *, resource: str = "", fix: str = "") -> None:
        text = message
        if resource and resource not in message:
            text = f"{resource}: {text}"
        if fix:
            text = f"{text} Fix: {fix}"
        super().__init__(text)
        self.resource = resource
        self.fix = fix


class InputError(PermanentError):
    """Bad input, refused before any side effect."""


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when
    absent or unreadable. A date in the past is 0."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _http_status_and_retry_after(exc: BaseException) -> tuple[int | None, float | None]:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(exc, "status", None)
    response = getattr(exc, "response", None)
    headers: Any = getattr(response, "headers", None)
    if headers is None:
        headers = getattr(exc, "headers", None)
    retry_after = None
    if headers is not None:
        try:
            raw = headers.get("Retry-After") or headers.get("retry-after")
            retry_after = parse_retry_after(raw)
        except AttributeError:
            retry_after = None
    if status is None and response is not None:
        status = getattr(response, "status_code", None)
    return (int(status) if isinstance(status, int) else None), retry_after


def classify(exc: BaseException, *, resource: str = "", fix: str = "") -> AcrEdgeError:
    """Map any client exception onto TransientError or PermanentError.

    Unknown exceptions are permanent: retrying a bug only hides it.
    """
    if isinstance(exc, AcrEdgeError):
        return exc
    text = _safe_text(exc)
    # Imports are local so that pure modules importing this file stay light.
    try:
        import paramiko

        if isinstance(exc, paramiko.BadHostKeyException):
            return PermanentError(
                "SSH host key does not match the pinned key.",
                resource=resource,
                fix="verify the node's host key out of band and update the site's known_hosts.",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            return PermanentError(
                "SSH authentication failed.",
                resource=resource,
                fix=fix or "check the site's SSH user and private key.",
            )
        if isinstance(exc, paramiko.ChannelException | paramiko.SSHException | EOFError):
            if "not found in known_hosts" in text:
                return PermanentError(
                    "SSH host key is not pinned.",
                    resource=resource,
                    fix="add the node's known_hosts line to the site block "
                    "(or enable trust_on_first_use once).",
                )
            return TransientError(f"{resource}: SSH connection problem: {text}")
    except ImportError:  # pragma: no cover - paramiko is a hard dependency
        pass
    try:
        from azure.core import exceptions as az

        if isinstance(exc, az.ClientAuthenticationError):
            return PermanentError(
                f"authentication refused: {text}",
                resource=resource,
                fix=fix or "check the ParentRegistry credentials and the principal's RBAC role.",
            )
        if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError):
            return TransientError(f"{resource}: connection problem: {text}")
        if isinstance(exc, az.HttpResponseError):
            status, retry_after = _http_status_and_retry_after(exc)
            if status in TRANSIENT_HTTP:
                return TransientError(f"{resource}: HTTP {status}: {text}", retry_after=retry_after)
            return PermanentError(f"HTTP {status}: {text}", resource=resource, fix=fix)
    except ImportError:  # pragma: no cover
        pass
    try:
        from kubernetes.client.exceptions import ApiException

        if isinstance(exc, ApiException):
            status, retry_after = _http_status_and_retry_after(exc)
            if status in TRANSIENT_HTTP or status == 0 or status is None:
                return TransientError(
                    f"{resource}: Kubernetes API {status}: {exc.reason}", retry_after=retry_after
                )
            return PermanentError(
                f"Kubernetes API {status} {exc.reason}", resource=resource, fix=fix
            )
    except ImportError:  # pragma: no cover
        pass
    # Plain HTTP reads (cloud metadata discovery) go through requests; matched by class name
    # so that this module does not import it (pure modules import this one).
    requests_kinds = {c.__name__ for c in type(exc).__mro__ if c.__module__.startswith("requests")}
    if "HTTPError" in requests_kinds:
        status, retry_after = _http_status_and_retry_after(exc)
        if status in TRANSIENT_HTTP:
            return TransientError(f"{resource}: HTTP {status}: {text}", retry_after=retry_after)
        return PermanentError(f"HTTP {status}: {text}", resource=resource, fix=fix)
    if requests_kinds & {"ConnectionError", "Timeout"}:
        return TransientError(f"{resource}: connection problem: {text}")
    try:
        import urllib3.exceptions as u3

        if isinstance(exc, u3.HTTPError):
            return TransientError(f"{resource}: connection problem: {text}")
    except ImportError:  # pragma: no cover
        pass
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentError(
            f"TLS certificate verification failed: {text}",
            resource=resource,
            fix="point the block's CA bundle at the CA that issued the server certificate.",
        )
    if isinstance(exc, TimeoutError | socket.timeout | ConnectionError | EOFError):
        return TransientError(f"{resource}: {type(exc).__name__}: {text}")
    if isinstance(exc, OSError) and exc.errno is not None:
        return TransientError(f"{resource}: {type(exc).__name__}: {text}")
    return PermanentError(f"{type(exc).__name__}: {text}", resource=resource, fix=fix)


def _safe_text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 500 else text[:500] + "..."


# A secret's parts: the values of secret-looking keys inside it (a connection string's
# SyncTokenPassword, a values file's password or connectionString parts, a docker config's auth).
_PAIR = re.compile(r"([A-Za-z_][\w.-]*)[\"']?\s*[:=]\s*[\"']?([^\s\"';,]+)")
_SECRET_KEY = re.compile(r"pass|secret|key|auth|credential", re.IGNORECASE)
_USER_KEY = re.compile(r"^(user(name)?|login|SyncTokenName)$", re.IGNORECASE)
_MIN_PART = 6  # shorter "values" (true, 443) are not secrets and would blank readable text
_MIN_CORE = 8  # a base64 run shorter than this could match unrelated text


def secret_parts(value: str) -> set[str]:
    """The value, and each secret it carries on its own: every value of a password/secret/
    key/auth key (a connection string split at ``;``, YAML or JSON pairs), and ``user:password``
    for each user and password it names (what docker's ``auth`` encodes)."""
    parts = {value, value.strip()}
    users: list[str] = []
    passwords: list[str] = []
    for key, part in _PAIR.findall(value):
        if _USER_KEY.match(key):
            users.append(part)
        elif _SECRET_KEY.search(key) and len(part) >= _MIN_PART:
            passwords.append(part)
    parts.update(passwords)
    parts.update(f"{user}:{pw}" for user in users for pw in passwords)
    return {p for p in parts if len(p) >= 4} | {value}


def _b64(data: bytes, urlsafe: bool) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()


def base64_cores(value: str) -> set[str]:
    """Runs of base64 text that appear wherever ``value`` is base64-encoded inside anything,
    at any of the three byte alignments, standard or URL-safe, padded or not: the 4-character
    groups made of the value's bytes alone. So ``base64(user:password)`` (docker's ``auth``,
    for any user) shows the password's core whatever the prefix."""
    data = value.encode()
    cores: set[str] = set()
    for shift in range(3):
        total = shift + len(data)
        first, last = (1 if shift else 0), total // 3
        for urlsafe in (False, True):
            core = _b64(b"\0" * shift + data, urlsafe)[4 * first : 4 * last]
            if len(core) >= _MIN_CORE:
                cores.add(core)
    return cores


def secret_forms(secrets: Iterable[str]) -> set[str]:
    """Every text form in which a secret or one of its parts can be printed back: as is,
    JSON/Go-escaped, shell-quoted, URL-encoded, base64 (standard and URL-safe, with and without
    padding, at any alignment: a docker ``auth``) and base64 of base64 (a Kubernetes Secret's
    ``data`` of a dockerconfigjson, as ``kubectl get -o yaml`` prints it)."""
    secrets = list(secrets)
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        for part in secret_parts(secret):
            forms.add(part)
            go = json.dumps(part)[1:-1]
            forms.add(go.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
            forms.update((go, shlex.quote(part), urllib.parse.quote(part, safe="")))
            for urlsafe in (False, True):
                encoded = _b64(part.encode(), urlsafe)
                forms.update((encoded, encoded.rstrip("=")))
            for core in base64_cores(part):
                forms.add(core)
                forms.update(base64_cores(core))
    given = {s for s in secrets if s}  # a secret as given is redacted at any length
    return {f for f in forms if len(f) >= 4} | given


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every form of every secret in ``text`` (:func:`secret_forms`; longest first, so
    a shorter part never leaves the tail of a longer form behind)."""
    for value in sorted(secret_forms(secrets), key=len, reverse=True):
        text = text.replace(value, "***")
    return text
