"""Data types the Azure steps hand to flows: password slots, connected-registry facts, parent.

They live here (below tasks and flows) so that flows and the pure decision modules
(``tasks.rotation``) share one definition without importing an I/O module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import SecretStr

from model.errors import InputError

Slot = Literal["password1", "password2"]
SLOTS: tuple[Slot, Slot] = ("password1", "password2")

Json = dict[str, Any]


def slot_of(name: str) -> Slot:
    """``password1``/``Password2`` as a slot; anything else is refused before a call."""
    lowered = str(name).lower()
    if lowered == "password1":
        return "password1"
    if lowered == "password2":
        return "password2"
    raise InputError(f"password slot {name!r} is invalid: use password1 or password2.")


@dataclass(frozen=True)
class ParentInfo:
    """The parent registry after preflight: what the connection string and plan need."""

    registry_id: str
    login_server: str
    location: str
    sku: str
    data_endpoint_host_names: list[str]


@dataclass(frozen=True)
class PasswordMeta:
    """One live token password: slot and times, never the value."""

    slot: Slot
    creation_time: datetime | None
    expiry: datetime | None


@dataclass(frozen=True)
class GeneratedPassword:
    username: str
    password: SecretStr
    meta: PasswordMeta


@dataclass(frozen=True)
class ConnectedRegistryInfo:
    name: str
    id: str
    mode: str
    provisioning_state: str | None
    connection_state: str | None
    activation_status: str | None
    gateway_endpoint: str | None
    last_sync_time: datetime | None
    last_activity_time: datetime | None
    sync_token_id: str | None
    sync_schedule: str | None
    sync_window: str | None
    message_ttl: str | None
    client_token_ids: list[str] = field(default_factory=list)
    status_details: list[Json] = field(default_factory=list)
    version: str | None = None
    # registrySyncResult (preview api-versions; SDK 15 drops it, so it is read from the JSON)
    sync_state: str | None = None
    last_sync_end_time: datetime | None = None
    last_successful_sync_time: datetime | None = None
    # loginServer.host (read-only; set once a runtime reports it): a SAN of the server cert
    login_host: str | None = None
