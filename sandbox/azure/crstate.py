"""Connected-registry health as the service reports it: connectionState, statusDetails, sync result.

Codes (Azure/acr ``docs/preview/connected-registry/connected-registry-error-codes.md``):
``DISK_PERMISSION_DENIED``, ``DISK_STORAGE_FULL`` and ``DISK_ERROR`` are documented, with the
rule that ``Unhealthy`` means "a critical error on the instance while it is online" and
``Offline`` means "not connected". ``SYNC_TOKEN_INVALID`` and ``PARENT_UNREACHABLE`` are not in
that list (UNCONFIRMED names, in the documented style); both report ``Offline``, since the
instance cannot reach or authenticate to its parent.

``registrySyncResult`` (2025-06-01-preview and later; example in
``contracts/arm/2026-01-01-preview/ConnectedRegistryGet.json``) is kept on the resource and only
rendered for api-versions that have it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.azure.store import Child, Registry, iso, utcnow

DOCUMENTED_CODES: dict[str, tuple[str, str]] = {
    # code: (connectionState, description); the descriptions are the documented ones
    "DISK_PERMISSION_DENIED": (
        "Unhealthy",
        "The connected registry was unable to write any file to the disk because it did not "
        "have sufficient permissions.",
    ),
    "DISK_STORAGE_FULL": (
        "Unhealthy",
        "The connected registry was unable to write files to the local host because there was "
        "no storage available on disk.",
    ),
    "DISK_ERROR": (
        "Unhealthy",
        "The connected registry is unable to create, write, or delete a file on the local disk.",
    ),
}
UNCONFIRMED_CODES: dict[str, tuple[str, str]] = {
    "SYNC_TOKEN_INVALID": (
        "Offline",
        "The sync token of the connected registry is disabled, deleted or its password is no "
        "longer valid.",
    ),
    "PARENT_UNREACHABLE": (
        "Offline",
        "The connected registry cannot reach the gateway endpoint of its parent.",
    ),
}
STATUS_CODES = {**DOCUMENTED_CODES, **UNCONFIRMED_CODES}
CONNECTION_STATES = ("Online", "Offline", "Syncing", "Unhealthy")
# api-versions whose ConnectedRegistryProperties have registrySyncResult
SYNC_RESULT_API_VERSIONS = frozenset(
    {"2025-06-01-preview", "2025-09-01-preview", "2025-12-01-preview", "2026-01-01-preview"}
    | {"2026-09-01-preview"}
)


def status_detail(code: str, description: str | None = None) -> dict[str, Any]:
    default = STATUS_CODES.get(code, ("Unhealthy", code))[1]
    return {
        "type": "Storage" if code.startswith("DISK_") else "Sync",
        "code": code,
        "description": description or default,
        "timestamp": iso(utcnow()),
        "correlationId": str(uuid.uuid4()),
    }


def sync_token_name(child: Child) -> str:
    return str(child.properties["parent"]["syncProperties"]["tokenId"]).rstrip("/").rsplit("/")[-1]


def users_of_sync_token(reg: Registry, token: Child) -> list[Child]:
    return [
        cr
        for cr in reg.connected_registries.values()
        if sync_token_name(cr).lower() == token.name.lower()
    ]


def set_sync_result(child: Child, state: str, *, trigger: str = "InitialSync") -> None:
    now = iso(utcnow())
    result = dict(child.properties.get("_registrySyncResult") or {})
    result["syncTrigger"] = result.get("syncTrigger") or trigger
    result["syncState"] = state
    if state == "Syncing":
        result["lastSyncStartTime"] = now
    elif state in ("Succeeded", "Failed", "TimedOut"):
        result.setdefault("lastSyncStartTime", now)
        result["lastSyncEndTime"] = now
        if state == "Succeeded":
            result["lastSuccessfulSyncEndTime"] = now
    child.properties["_registrySyncResult"] = result


def take_down(child: Child, code: str, description: str | None = None) -> None:
    """The service's view after a failure it knows of (e.g. its sync token was disabled)."""
    state = STATUS_CODES.get(code, ("Unhealthy", code))[0]
    child.properties["connectionState"] = state
    child.properties["statusDetails"] = [status_detail(code, description)]
    set_sync_result(child, "Failed")


def report_healthy(child: Child) -> None:
    """What a successful sync reports, unless a test holds the registry in another state."""
    if child.held_state is not None:
        apply_held(child)
        return
    now = iso(utcnow())
    child.properties["connectionState"] = "Online"
    child.properties["statusDetails"] = []
    child.properties["lastActivityTime"] = now
    child.properties["parent"]["syncProperties"]["lastSyncTime"] = now
    set_sync_result(child, "Succeeded")


def hold(child: Child, state: str, code: str | None, description: str | None) -> None:
    """Knob: keep a connected registry ``Syncing`` or ``Unhealthy``/``Offline`` with a code."""
    if state not in CONNECTION_STATES:
        raise ValueError(f"unknown connectionState {state!r}; use one of {CONNECTION_STATES}")
    if state == "Online":
        child.held_state = None
        if child.properties["activation"]["status"] == "Active":
            report_healthy(child)
        return
    if state in ("Unhealthy", "Offline") and code is None and state == "Unhealthy":
        raise ValueError("an Unhealthy connected registry needs a statusDetails code")
    child.held_state = {"state": state, "code": code, "description": description}
    apply_held(child)


def apply_held(child: Child) -> None:
    held = child.held_state or {}
    state = str(held.get("state"))
    child.properties["connectionState"] = state
    code = held.get("code")
    child.properties["statusDetails"] = (
        [status_detail(code, held.get("description"))] if code else []
    )
    if state == "Syncing":
        set_sync_result(child, "Syncing")
    elif code:
        set_sync_result(child, "Failed")


def render_sync_result(props: dict[str, Any], child: Child, api: str | None) -> None:
    if api is None or api in SYNC_RESULT_API_VERSIONS:
        props["registrySyncResult"] = dict(
            child.properties.get("_registrySyncResult") or {"syncState": "NotActivated"}
        )
