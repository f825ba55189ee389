"""Pure: the connected registry's connection string as the chart and runtime read it (spec §4)."""

from __future__ import annotations

from dataclasses import dataclass

FIELDS = (
    "ConnectedRegistryName",
    "SyncTokenName",
    "SyncTokenPassword",
    "ParentGatewayEndpoint",
    "ParentEndpointProtocol",
)


@dataclass(frozen=True)
class ConnectionString:
    connected_registry: str
    token: str
    password: str
    gateway: str
    protocol: str

    def __repr__(self) -> str:  # the password never reaches a log through repr
        return f"ConnectionString({self.connected_registry!r}, token={self.token!r}, ...)"


def parse(value: str) -> ConnectionString:
    """Parse the five fields in their fixed order; errors never echo the value."""
    parts = value.split(";")
    if len(parts) != len(FIELDS):
        raise ValueError(f"expected {len(FIELDS)} ';'-separated fields, got {len(parts)}")
    found = []
    for expected, part in zip(FIELDS, parts, strict=True):
        key, sep, val = part.partition("=")
        if key != expected or not sep or not val:
            raise ValueError(f"field {expected} missing or out of order")
        found.append(val)
    if found[4] not in ("http", "https"):
        raise ValueError("ParentEndpointProtocol must be http or https")
    return ConnectionString(*found)
