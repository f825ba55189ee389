"""The connected-registry connection string (spec section 4), built and parsed (pure).

``ConnectedRegistryName=<cr>;SyncTokenName=<token>;SyncTokenPassword=<pw>;
ParentGatewayEndpoint=<host>;ParentEndpointProtocol=<https|http>`` - fixed order, ``;``
separated, no trailing ``;``. The whole string is a secret: it is only ever a ``SecretStr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from model.errors import InputError
from model.patterns import HOST_PORT, matches

KEYS = (
    "ConnectedRegistryName",
    "SyncTokenName",
    "SyncTokenPassword",
    "ParentGatewayEndpoint",
    "ParentEndpointProtocol",
)
Protocol = Literal["https", "http"]


@dataclass(frozen=True)
class SyncConnectionSettings:
    connected_registry: str
    sync_token: str
    password: SecretStr
    gateway_endpoint: str
    protocol: Protocol


def _check_plain(key: str, value: str) -> None:
    # The value of the password is never echoed: only which field is wrong.
    if not value or ";" in value or any(c.isspace() for c in value):
        raise InputError(f"connection string field {key} is empty or contains ';' or whitespace.")


def build_sync_connection_string(
    connected_registry: str,
    sync_token: str,
    password: SecretStr,
    gateway_endpoint: str,
    protocol: Protocol = "https",
) -> SecretStr:
    if not isinstance(password, SecretStr):
        raise InputError("the sync token password must be a SecretStr.")
    values = (
        connected_registry,
        sync_token,
        password.get_secret_value(),
        gateway_endpoint,
        protocol,
    )
    for key, value in zip(KEYS, values, strict=True):
        _check_plain(key, value)
    for key, value in ((KEYS[0], connected_registry), (KEYS[1], sync_token)):
        if "=" in value:
            raise InputError(f"connection string field {key} must not contain '='.")
    if not matches(HOST_PORT, gateway_endpoint):
        raise InputError(
            f"ParentGatewayEndpoint {gateway_endpoint!r} must be a host name (no scheme or path), "
            "e.g. contoso.eastus.data.azurecr.io."
        )
    if protocol not in ("https", "http"):
        raise InputError(f"ParentEndpointProtocol {protocol!r} must be https or http.")
    return SecretStr(";".join(f"{k}={v}" for k, v in zip(KEYS, values, strict=True)))


def parse_sync_connection_string(value: SecretStr | str) -> SyncConnectionSettings:
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    parts = text.split(";")
    if len(parts) != len(KEYS):
        raise InputError(
            f"connection string has {len(parts)} fields; expected {len(KEYS)}: {', '.join(KEYS)}."
        )
    values: list[str] = []
    for expected, part in zip(KEYS, parts, strict=True):
        key, sep, val = part.partition("=")
        if not sep or key != expected:
            raise InputError(f"connection string field {expected} is missing or out of order.")
        values.append(val)
    protocol = values[4]
    if protocol not in ("https", "http"):
        raise InputError(f"ParentEndpointProtocol {protocol!r} must be https or http.")
    settings = SyncConnectionSettings(
        connected_registry=values[0],
        sync_token=values[1],
        password=SecretStr(values[2]),
        gateway_endpoint=values[3],
        protocol=protocol,  # type: ignore[arg-type]
    )
    # Re-building validates every field by the same rules as build.
    build_sync_connection_string(
        settings.connected_registry,
        settings.sync_token,
        settings.password,
        settings.gateway_endpoint,
        settings.protocol,
    )
    return settings
