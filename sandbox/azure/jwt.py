"""JWT-shaped tokens signed with the sandbox's HMAC key: opaque to clients, checkable by us.

The payload is standard base64 WITH padding: azure-containerregistry 1.2.0 reads the refresh
token's ``exp`` with a plain ``b64decode`` and its own (faulty) padding arithmetic.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    text = text.rstrip("=")
    return base64.b64decode(text + "=" * (-len(text) % 4))


def sign(key: bytes, claims: dict[str, Any]) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
    mac = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(mac)}"


def verify(key: bytes, token: str, *, now: float | None = None) -> dict[str, Any] | None:
    """Claims if ``token`` was signed with ``key`` and has not expired, else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    header, payload, mac = parts
    expected = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(expected, _unb64(mac)):
            return None
        claims: dict[str, Any] = json.loads(_unb64(payload))
    except (ValueError, UnicodeDecodeError):
        return None
    if float(claims.get("exp", 0)) < (time.time() if now is None else now):
        return None
    return claims
