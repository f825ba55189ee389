"""ARM semantics of connected registries: validation, writes, rendering and list filters.

Runs under the store lock and raises ``ArmError`` for anything ARM refuses, like ``resources``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from sandbox.azure import crstate
from sandbox.azure.http import ArmError, parse_bool
from sandbox.azure.resources import COLLECTIONS, _child_from_id, _props, check_name
from sandbox.azure.store import Child, Registry, Store, utcnow
from sandbox.azure.validation import (
    AUDIT_LOG_STATUSES,
    LOG_LEVELS,
    check_gc_schedule,
    check_notifications,
    check_object,
    check_sync_properties,
    enum_value,
)

MAX_CLIENT_TOKENS = 20
MODES = {
    "readwrite": "ReadWrite",
    "readonly": "ReadOnly",
    "registry": "ReadWrite",
    "mirror": "ReadOnly",
}


def _mode(value: Any) -> str:
    mode = MODES.get(str(value).lower())
    if mode is None:
        raise ArmError(
            400,
            "InvalidConnectedRegistryMode",
            f"Mode '{value}' is invalid; use 'ReadWrite' or 'ReadOnly'.",
            target="properties.mode",
        )
    return mode


def _client_token_ids(store: Store, reg: Registry, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "'clientTokenIds' must be a list.",
            target="properties.clientTokenIds",
        )
    if len(value) > MAX_CLIENT_TOKENS:
        raise ArmError(
            400,
            "ClientTokenLimitExceeded",
            f"A connected registry can have at most {MAX_CLIENT_TOKENS} client tokens;"
            f" {len(value)} were given.",
            target="properties.clientTokenIds",
        )
    ids = []
    for item in value:
        token = _child_from_id(store, reg, item, "tokens", "properties.clientTokenIds")
        ids.append(reg.child_id("tokens", token.name))
    return ids


def _logging(value: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The logging object after a write: on create the swagger's defaults fill what the body
    leaves out; a PATCH changes only the fields it names (UNCONFIRMED: the merge is what the
    az CLI's `update --log-level` relies on)."""
    out = dict(current or {"logLevel": "Information", "auditLogStatus": "Disabled"})
    if value is None:
        return out
    value = check_object(value, "logging")
    if value.get("logLevel") is not None:
        out["logLevel"] = enum_value(value["logLevel"], LOG_LEVELS, "logging.logLevel")
    if value.get("auditLogStatus") is not None:
        out["auditLogStatus"] = enum_value(
            value["auditLogStatus"], AUDIT_LOG_STATUSES, "logging.auditLogStatus"
        )
    return out


def _garbage_collection(value: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """The garbageCollection object after a write. A create without it gets GC off, daily at
    midnight (as the recorded CLI body states them: the service's own default is UNCONFIRMED,
    so a client must ask for GC to get it); a PATCH changes only the fields it names."""
    out = dict(current or {"enabled": False, "schedule": "0 0 * * *"})
    if value is None:
        return out
    value = check_object(value, "garbageCollection")
    if value.get("enabled") is not None:
        out["enabled"] = parse_bool(value["enabled"])
    if value.get("schedule") is not None:
        out["schedule"] = check_gc_schedule(value["schedule"])
    return out


def _sync_properties(value: Any, current: dict[str, Any] | None, *, create: bool) -> dict[str, Any]:
    out = dict(current or {})
    if not isinstance(value, dict):
        if create:
            raise ArmError(
                400,
                "InvalidRequestContent",
                "'parent.syncProperties' is required.",
                target="properties.parent.syncProperties",
            )
        return out
    for key in ("schedule", "messageTtl", "syncWindow"):
        if key in value and value[key] is not None:
            out[key] = str(value[key])
    if create:
        if not value.get("tokenId"):
            raise ArmError(
                400,
                "InvalidRequestContent",
                "'syncProperties.tokenId' is required.",
                target="properties.parent.syncProperties.tokenId",
            )
        if not value.get("messageTtl"):
            raise ArmError(
                400,
                "InvalidRequestContent",
                "'syncProperties.messageTtl' is required.",
                target="properties.parent.syncProperties.messageTtl",
            )
        out.setdefault("schedule", "* * * * *")
    return out


def _check_premium(reg: Registry) -> None:
    if reg.sku != "Premium":
        raise ArmError(
            400,
            "ConnectedRegistryNotSupported",
            f"Connected registries require the Premium SKU; registry '{reg.name}' is "
            f"{reg.sku}. Fix: az acr update -n {reg.name} --sku Premium",
        )
    if not reg.data_endpoint_enabled:
        raise ArmError(
            400,
            "DataEndpointNotEnabled",
            f"The dedicated data endpoint of registry '{reg.name}' is disabled; "
            f"connected registries need it. Fix: az acr update -n {reg.name} "
            f"--data-endpoint-enabled true",
        )


def put_connected_registry(store: Store, reg: Registry, name: str, body: Any) -> tuple[Child, bool]:
    check_name("connectedRegistries", name)
    _check_premium(reg)
    props = _props(body)
    if "mode" not in props:
        raise ArmError(
            400, "InvalidRequestContent", "'mode' is required.", target="properties.mode"
        )
    mode = _mode(props["mode"])
    parent = props.get("parent")
    if not isinstance(parent, dict):
        raise ArmError(
            400, "InvalidRequestContent", "'parent' is required.", target="properties.parent"
        )
    sync = _sync_properties(parent.get("syncProperties"), None, create=True)
    check_sync_properties(sync, "parent.syncProperties")
    token = _child_from_id(
        store,
        reg,
        parent["syncProperties"]["tokenId"],
        "tokens",
        "properties.parent.syncProperties.tokenId",
    )
    sync["tokenId"] = reg.child_id("tokens", token.name)
    parent_id = None
    if parent.get("id"):
        parent_cr = _child_from_id(
            store, reg, parent["id"], "connectedRegistries", "properties.parent.id"
        )
        parent_mode = parent_cr.properties["mode"]
        if parent_mode == "ReadOnly" and mode != "ReadOnly":
            raise ArmError(
                400,
                "InvalidConnectedRegistryMode",
                f"A ReadOnly parent ('{parent_cr.name}') can only have ReadOnly children.",
                target="properties.mode",
            )
        parent_id = reg.child_id("connectedRegistries", parent_cr.name)
    existing = reg.connected_registries.get(name.lower())
    if existing is not None:
        if existing.properties["mode"] != mode:
            raise ArmError(
                400,
                "ConnectedRegistryModeImmutable",
                f"The mode of connected registry '{existing.name}' cannot be changed "
                f"({existing.properties['mode']} -> {mode}); delete and recreate it.",
                target="properties.mode",
            )
        if (existing.properties["parent"].get("id") or "").lower() != (parent_id or "").lower():
            raise ArmError(
                400,
                "ConnectedRegistryParentImmutable",
                f"The parent of connected registry '{existing.name}' cannot be changed.",
                target="properties.parent.id",
            )
    client_ids = _client_token_ids(store, reg, props.get("clientTokenIds"))
    gateway = reg.data_endpoint_host if parent_id is None else ""
    sync["gatewayEndpoint"] = gateway
    new_props: dict[str, Any] = {
        "mode": mode,
        "parent": {"syncProperties": sync},
        "clientTokenIds": client_ids,
        "logging": _logging(props.get("logging")),
        "notificationsList": check_notifications(props.get("notificationsList")),
        "garbageCollection": _garbage_collection(props.get("garbageCollection")),
    }
    if parent_id:
        new_props["parent"]["id"] = parent_id
    if existing is not None:
        # runtime-reported fields survive a PUT of the configuration
        for key in (
            "connectionState",
            "activation",
            "statusDetails",
            "lastActivityTime",
            "version",
            "loginServer",
        ):
            if key in existing.properties:
                new_props[key] = existing.properties[key]
        last_sync = existing.properties["parent"]["syncProperties"].get("lastSyncTime")
        if last_sync:
            sync["lastSyncTime"] = last_sync
        existing.properties = new_props
        _track_client_tokens(existing)
        return existing, False
    new_props.update(
        {
            "connectionState": "Offline",
            "activation": {"status": "Inactive"},
            "statusDetails": [],
            # recorded (CLI-REC): nothing is known about the login server before activation
            "loginServer": {"tls": {"certificate": {}}},
        }
    )
    child = Child(name=name, properties=new_props)
    _track_client_tokens(child)
    reg.connected_registries[name.lower()] = child
    return child, True


def _track_client_tokens(child: Child) -> None:
    """Remember when each client token joined: it reaches the runtime only after propagation."""
    now = utcnow()
    ids = {i.lower() for i in child.properties["clientTokenIds"]}
    child.client_tokens_since = {i: child.client_tokens_since.get(i, now) for i in sorted(ids)}


def patch_connected_registry(store: Store, reg: Registry, child: Child, body: Any) -> None:
    props = _props(body, required=False)
    if "mode" in props and _mode(props["mode"]) != child.properties["mode"]:
        raise ArmError(
            400,
            "ConnectedRegistryModeImmutable",
            f"The mode of connected registry '{child.name}' cannot be changed; "
            f"delete and recreate it.",
            target="properties.mode",
        )
    if "parent" in props:
        parent = props["parent"] or {}
        new_parent = (parent.get("id") or "").lower() if isinstance(parent, dict) else ""
        if new_parent != (child.properties["parent"].get("id") or "").lower():
            raise ArmError(
                400,
                "ConnectedRegistryParentImmutable",
                f"The parent of connected registry '{child.name}' cannot be changed.",
                target="properties.parent",
            )
    merged_sync = None
    if "syncProperties" in props:
        current = child.properties["parent"]["syncProperties"]
        merged_sync = _sync_properties(props["syncProperties"], current, create=False)
        # validated as merged, before anything is changed: a refused PATCH changes nothing
        check_sync_properties(merged_sync, "syncProperties")
    # every setting is validated before any is changed: a refused PATCH changes nothing
    logging_ = _logging(props.get("logging"), child.properties["logging"])
    gc = _garbage_collection(props.get("garbageCollection"), child.properties["garbageCollection"])
    notes = (
        check_notifications(props["notificationsList"]) if "notificationsList" in props else None
    )
    client_ids = (
        _client_token_ids(store, reg, props["clientTokenIds"])
        if "clientTokenIds" in props
        else None
    )
    if client_ids is not None:
        child.properties["clientTokenIds"] = client_ids
        _track_client_tokens(child)
    if merged_sync is not None:
        child.properties["parent"]["syncProperties"] = merged_sync
    child.properties["logging"] = logging_
    child.properties["garbageCollection"] = gc
    if notes is not None:
        child.properties["notificationsList"] = notes


def render_connected_registry(
    store: Store, reg: Registry, child: Child, api: str | None = None
) -> dict[str, Any]:
    state = store.provisioning_state(child.op_id, child.pending_state)
    props = {k: copy.deepcopy(v) for k, v in child.properties.items() if not k.startswith("_")}
    props["provisioningState"] = state
    crstate.render_sync_result(props, child, api)
    return {
        "id": reg.child_id("connectedRegistries", child.name),
        "name": child.name,
        "type": COLLECTIONS["connectedregistries"][1],
        "properties": props,
    }


def deactivate_connected_registry(child: Child) -> None:
    child.properties["activation"] = {"status": "Inactive"}
    child.properties["connectionState"] = "Offline"
    child.instance_id = None


FILTER_FIELDS = {
    "parent.id": ("parent", "id"),
    "mode": ("mode",),
    "connectionstate": ("connectionState",),
}
_FILTER_TERM = re.compile(r"^\s*([A-Za-z.]+)\s+eq\s+'([^']*)'\s*$", re.IGNORECASE)


def parse_cr_filter(text: str) -> list[tuple[tuple[str, ...], str]]:
    terms = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _FILTER_TERM.match(part)
        if not match or match.group(1).lower() not in FILTER_FIELDS:
            raise ArmError(
                400,
                "InvalidFilter",
                f"The $filter '{text}' is not supported: use 'eq' on parent.id, mode "
                f"or connectionState, joined by 'and'.",
                target="$filter",
            )
        terms.append((FILTER_FIELDS[match.group(1).lower()], match.group(2)))
    return terms


def cr_matches(child: Child, terms: list[tuple[tuple[str, ...], str]]) -> bool:
    for path, value in terms:
        current: Any = child.properties
        for key in path:
            current = current.get(key) if isinstance(current, dict) else None
        if str(current or "").lower() != value.lower():
            return False
    return True
