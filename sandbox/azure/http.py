"""Transport-neutral request/response values and ARM-shaped error bodies."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str  # decoded path, no query
    raw_query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    query: dict[str, str] = field(default_factory=dict)  # first value, lower-cased keys

    @classmethod
    def build(cls, method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
        parsed = urllib.parse.urlsplit(target)
        query: dict[str, str] = {}
        for key, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
            query.setdefault(key.lower(), value)
        return cls(
            method=method.upper(),
            path=urllib.parse.unquote(parsed.path),
            raw_query=parsed.query,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            query=query,
        )

    def json(self) -> Any:
        if not self.body.strip():
            return None
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (fault injection)

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        hdrs = {"Content-Type": "application/json; charset=utf-8"}
        hdrs.update(headers or {})
        return cls(status=status, body=json.dumps(payload).encode(), headers=hdrs)

    @classmethod
    def empty(cls, status: int, headers: dict[str, str] | None = None) -> Response:
        return cls(status=status, body=b"", headers=dict(headers or {}))


class ArmError(Exception):
    """Raised inside handlers; rendered as ``{"error": {"code", "message", "target"}}``.

    ``gateway=True`` marks refusals of the ARM front door (api-version, authentication,
    subscription/resource group lookup): those carry ``x-ms-failure-cause: gateway``. Everything
    else is the ACR resource provider answering, whose recorded error body (the 409
    ``AlreadyInUse`` recording) also has a top-level ``"status": "Failed"``.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        target: str | None = None,
        *,
        gateway: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.target = target
        self.gateway = gateway

    def response(self) -> Response:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.gateway:
            return Response.json(self.status, {"error": error}, {"x-ms-failure-cause": "gateway"})
        return Response.json(self.status, {"error": error, "status": "Failed"})


def parse_bool(value: Any) -> bool:
    """ARM accepts JSON booleans and their string spellings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ArmError(400, "InvalidRequestContent", f"Could not convert '{value}' to a boolean.")


class GatewayError(ArmError):
    """An ``ArmError`` raised by the ARM front door rather than the resource provider."""

    def __init__(self, status: int, code: str, message: str, target: str | None = None) -> None:
        super().__init__(status, code, message, target, gateway=True)
