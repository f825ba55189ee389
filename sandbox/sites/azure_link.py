"""How a node's runtime and kubelet reach the Azure sandbox: its internal endpoints only.

``AzureLink`` is the seam: the HTTPS client below is what sites use (TLS verified with the
sandbox CA, header ``X-Sandbox-Key``); tests may pass any object with the same two methods.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Activation:
    ok: bool
    connected_registry: str = ""
    code: str = ""
    description: str = ""


@dataclass(frozen=True)
class PullCheck:
    ok: bool
    reason: str = ""


class AzureLink(Protocol):
    def activate(self, connection_string: str, instance_id: str) -> Activation: ...

    def pull_check(
        self, connected_registry: str, username: str, password: str, repository: str, tag: str
    ) -> PullCheck: ...


class HttpAzureLink:
    """Client of ``POST {internal_endpoint}/runtime/activate`` and ``/runtime/pull-check``."""

    def __init__(
        self, internal_endpoint: str, internal_key: str, ca_bundle: str, *, timeout: float = 10
    ) -> None:
        self._base = internal_endpoint.rstrip("/")
        self._key = internal_key
        self._ctx = ssl.create_default_context(cafile=ca_bundle)
        self._timeout = timeout

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> HttpAzureLink:
        return cls(info["internal_endpoint"], info["internal_key"], info["ca_bundle"])

    def _post(self, path: str, body: dict[str, str], attempts: int = 4) -> dict[str, Any]:
        data = json.dumps(body).encode()
        last = ""
        for attempt in range(attempts):
            request = urllib.request.Request(
                f"{self._base}{path}",
                data=data,
                method="POST",
                headers={"Content-Type": "application/json", "X-Sandbox-Key": self._key},
            )
            try:
                with urllib.request.urlopen(request, context=self._ctx, timeout=self._timeout) as r:
                    result: dict[str, Any] = json.loads(r.read() or b"{}")
                    return result
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code not in (429, 500, 502, 503, 504):
                    break
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                last = type(exc).__name__
            time.sleep(0.2 * (2**attempt))
        raise ConnectionError(f"Azure sandbox internal endpoint {path} unreachable: {last}")

    def activate(self, connection_string: str, instance_id: str) -> Activation:
        try:
            body = self._post(
                "/runtime/activate",
                {"connection_string": connection_string, "instance_id": instance_id},
            )
        except ConnectionError as exc:
            return Activation(ok=False, code="ConnectivityError", description=str(exc))
        return Activation(
            ok=bool(body.get("ok")),
            connected_registry=str(body.get("connected_registry", "")),
            code=str(body.get("code", "")),
            description=str(body.get("description", "")),
        )

    def pull_check(
        self, connected_registry: str, username: str, password: str, repository: str, tag: str
    ) -> PullCheck:
        try:
            body = self._post(
                "/runtime/pull-check",
                {
                    "connected_registry": connected_registry,
                    "username": username,
                    "password": password,
                    "repository": repository,
                    "tag": tag,
                },
            )
        except ConnectionError as exc:
            return PullCheck(ok=False, reason=str(exc))
        return PullCheck(ok=bool(body.get("ok")), reason=str(body.get("reason", "")))
