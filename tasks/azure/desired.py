"""Desired ARM bodies for scope maps, tokens and connected registries, and pure diffs (no I/O).

Each ``diff_*`` takes the actual resource as a REST-shaped dict (or None when absent) and returns
a :class:`Change`: the body to send, or None with the reason nothing needs doing. Conflicts that
cannot be fixed by writing (immutable fields, resources acr-edge does not own) raise
PermanentError naming the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from model.errors import InputError, PermanentError
from model.names import name_from_id, same_id, validate_cr_name
from tasks.azure import actions as act
from tasks.azure.schedule import (
    CONTINUOUS,
    parse_duration,
    validate_cron,
    validate_message_ttl,
    validate_sync_window,
)

__all__ = [
    "CLIENT_MAP_MARKER",
    "Change",
    "ConnectedRegistrySpec",
    "diff_client_token_ids",
    "diff_connected_registry",
    "diff_scope_map",
    "diff_token",
    "sync_map_description",
    "validate_cron",
    "validate_message_ttl",
    "validate_sync_window",
]

Json = dict[str, Any]
CLIENT_MAP_MARKER = "acr-edge"


def sync_map_description(cr_name: str) -> str:
    # The az CLI's own description: a CLI-made sync map for this CR is adopted, nothing else is.
    return f"Created by connected registry sync token: {cr_name}"


def client_map_description(name: str) -> str:
    return f"Managed by {CLIENT_MAP_MARKER}: client scope map {name}"


@dataclass(frozen=True)
class Change:
    """What an ensure-step must do: ``op`` create/update with ``body``, or nothing and why."""

    op: Literal["create", "update", "none"]
    body: Json | None
    reason: str

    @classmethod
    def none(cls, reason: str) -> Change:
        return cls("none", None, reason)


@dataclass(frozen=True)
class ConnectedRegistrySpec:
    """Desired settings of one connected registry; validated on construction."""

    name: str
    mode: str = "ReadOnly"
    sync_schedule: str = "30 * * * *"
    sync_window: str | None = "PT1H"
    message_ttl: str = "P2D"
    log_level: str = "Information"
    audit_log_status: str = "Disabled"
    gc_enabled: bool = False
    gc_schedule: str = "0 0 * * *"
    client_token_ids: tuple[str, ...] = field(default_factory=tuple)
    parent_id: str | None = None

    def __post_init__(self) -> None:
        validate_cr_name(self.name)
        object.__setattr__(self, "mode", act.normalize_mode(self.mode))
        object.__setattr__(self, "sync_schedule", validate_cron(self.sync_schedule))
        object.__setattr__(self, "gc_schedule", validate_cron(self.gc_schedule))
        validate_message_ttl(self.message_ttl)
        if self.sync_window is not None:
            validate_sync_window(self.sync_window)
        elif self.sync_schedule != CONTINUOUS:
            raise InputError(
                "a sync window is required when the sync schedule is not continuous "
                f"({self.sync_schedule!r}).",
                resource="sync_window",
            )
        if self.log_level not in ("Debug", "Information", "Warning", "Error", "None"):
            raise InputError(f"log level {self.log_level!r} is invalid.", resource="log_level")
        if self.audit_log_status not in ("Enabled", "Disabled"):
            raise InputError(
                f"audit log status {self.audit_log_status!r} is invalid.", resource="audit_log"
            )
        ids = tuple(dict.fromkeys(self.client_token_ids))
        act.check_client_token_limit(len(ids), self.name)
        for tid in ids:
            name_from_id(tid, "tokens")
        object.__setattr__(self, "client_token_ids", ids)


# ---- scope maps ---------------------------------------------------------------------------


def desired_scope_map(description: str, actions: list[str]) -> Json:
    return {"properties": {"description": description, "actions": list(actions)}}


def diff_scope_map(actual: Json | None, desired: Json, *, name: str) -> Change:
    """Create when absent; update when actions differ; refuse a map acr-edge did not create."""
    want = desired["properties"]
    if actual is None:
        return Change("create", desired, f"scope map {name} does not exist")
    props = actual.get("properties") or {}
    if props.get("type") == "SystemDefined" or props.get("description") != want["description"]:
        raise PermanentError(
            f"scope map {name} exists but was not created by acr-edge "
            f"(description {props.get('description')!r}); refusing to overwrite its actions.",
            resource=f"scopeMaps/{name}",
            fix="choose another connected registry / client token name, or delete or rename "
            "the existing scope map if it is unused.",
        )
    have = props.get("actions") or []
    if act.same_actions(have, want["actions"]):
        return Change.none(f"scope map {name} already has its {len(want['actions'])} actions")
    added = len({a.lower() for a in want["actions"]} - {a.lower() for a in have})
    removed = len({a.lower() for a in have} - {a.lower() for a in want["actions"]})
    return Change(
        "update",
        {"properties": {"actions": list(want["actions"])}},
        f"scope map {name}: {added} actions to add, {removed} to remove",
    )


# ---- tokens -------------------------------------------------------------------------------


def desired_token(scope_map_id: str) -> Json:
    # No passwords at create, like the CLI: generation is a separate, slot-aware step.
    return {"properties": {"scopeMapId": scope_map_id, "status": "enabled"}}


def diff_token(actual: Json | None, scope_map_id: str, *, name: str) -> Change:
    if actual is None:
        return Change("create", desired_token(scope_map_id), f"token {name} does not exist")
    props = actual.get("properties") or {}
    if not same_id(props.get("scopeMapId"), scope_map_id):
        raise PermanentError(
            f"token {name} exists but uses scope map {props.get('scopeMapId')!r}, not "
            f"{scope_map_id}; acr-edge only manages tokens bound to its own scope maps.",
            resource=f"tokens/{name}",
            fix="choose another connected registry / client token name, or delete the token "
            "if it is unused.",
        )
    if str(props.get("status", "enabled")).lower() != "enabled":
        return Change(
            "update",
            {"properties": {"status": "enabled"}},
            f"token {name} is disabled; enabling it",
        )
    return Change.none(f"token {name} already exists, enabled, bound to its scope map")


# ---- connected registry -------------------------------------------------------------------


def desired_connected_registry(spec: ConnectedRegistrySpec, sync_token_id: str) -> Json:
    sync: Json = {
        "tokenId": sync_token_id,
        "schedule": spec.sync_schedule,
        "messageTtl": spec.message_ttl,
    }
    if spec.sync_window is not None:
        sync["syncWindow"] = spec.sync_window
    parent: Json = {"syncProperties": sync}
    if spec.parent_id:
        parent["id"] = spec.parent_id
    props: Json = {
        "mode": spec.mode,
        "parent": parent,
        "logging": {"logLevel": spec.log_level, "auditLogStatus": spec.audit_log_status},
        "garbageCollection": {"enabled": spec.gc_enabled, "schedule": spec.gc_schedule},
    }
    if spec.client_token_ids:
        props["clientTokenIds"] = list(spec.client_token_ids)
    return {"properties": props}


def _same_duration(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return parse_duration(str(a)) == parse_duration(str(b))
    except InputError:
        return str(a) == str(b)


def union_ids(current: list[str], extra: list[str]) -> list[str]:
    """Keep every current id (in order), append the missing ones; ids compare case-insensitively."""
    merged = list(current)
    for tid in extra:
        if not any(same_id(tid, c) for c in merged):
            merged.append(tid)
    return merged


def diff_connected_registry(
    actual: Json | None, spec: ConnectedRegistrySpec, sync_token_id: str
) -> Change:
    name = spec.name
    if actual is None:
        return Change(
            "create",
            desired_connected_registry(spec, sync_token_id),
            f"connected registry {name} does not exist",
        )
    props = actual.get("properties") or {}
    resource = f"connectedRegistries/{name}"
    have_mode = act.normalize_mode(props.get("mode") or "ReadOnly")
    if have_mode != spec.mode:
        raise PermanentError(
            f"connected registry {name} is {have_mode}; its mode cannot change to {spec.mode}.",
            resource=resource,
            fix=f"keep mode {have_mode}, or delete the connected registry (deactivate it first) "
            "and provision it again, or use a new name.",
        )
    parent = props.get("parent") or {}
    if not same_id(parent.get("id"), spec.parent_id) and (parent.get("id") or spec.parent_id):
        raise PermanentError(
            f"connected registry {name} has parent {parent.get('id')!r}; the parent cannot change "
            f"to {spec.parent_id!r}.",
            resource=resource,
            fix="delete and re-create the connected registry under the new parent, or use a new "
            "name.",
        )
    sync = parent.get("syncProperties") or {}
    if not same_id(sync.get("tokenId"), sync_token_id):
        raise PermanentError(
            f"connected registry {name} syncs with token {sync.get('tokenId')!r}, not acr-edge's "
            f"sync token {sync_token_id}.",
            resource=resource,
            fix="delete the connected registry and provision it again, or use a new name.",
        )
    patch: Json = {}
    reasons: list[str] = []
    sync_patch: Json = {}
    if sync.get("schedule") != spec.sync_schedule:
        sync_patch["schedule"] = spec.sync_schedule
    if not _same_duration(sync.get("messageTtl"), spec.message_ttl):
        sync_patch["messageTtl"] = spec.message_ttl
    if spec.sync_window is not None and not _same_duration(
        sync.get("syncWindow"), spec.sync_window
    ):
        sync_patch["syncWindow"] = spec.sync_window
    if sync_patch:
        patch["syncProperties"] = sync_patch
        reasons.append("sync " + ", ".join(sorted(sync_patch)))
    logging_ = props.get("logging") or {}
    want_logging = {"logLevel": spec.log_level, "auditLogStatus": spec.audit_log_status}
    if any(logging_.get(k) != v for k, v in want_logging.items()):
        patch["logging"] = want_logging
        reasons.append("logging")
    gc = props.get("garbageCollection") or {}
    want_gc = {"enabled": spec.gc_enabled, "schedule": spec.gc_schedule}
    if bool(gc.get("enabled", False)) != spec.gc_enabled or gc.get("schedule") != spec.gc_schedule:
        patch["garbageCollection"] = want_gc
        reasons.append("garbage collection")
    ids_change = diff_client_token_ids(
        props.get("clientTokenIds") or [], list(spec.client_token_ids), name=name
    )
    if ids_change.body is not None:
        patch["clientTokenIds"] = ids_change.body["properties"]["clientTokenIds"]
        reasons.append("client tokens")
    if not patch:
        return Change.none(f"connected registry {name} already matches its settings")
    return Change(
        "update",
        {"properties": patch},
        f"connected registry {name}: updating " + ", ".join(reasons),
    )


def diff_client_token_ids(current: list[str], add: list[str], *, name: str) -> Change:
    """Union ``add`` into the CR's clientTokenIds (full-list replace, others kept)."""
    merged = union_ids(current, add)
    act.check_client_token_limit(len(merged), name)
    if len(merged) == len(current):
        return Change.none(
            f"connected registry {name} already lists "
            + (", ".join(name_from_id(t, "tokens") for t in add) or "no extra client tokens")
        )
    new = [name_from_id(t, "tokens") for t in merged[len(current) :]]
    return Change(
        "update",
        {"properties": {"clientTokenIds": merged}},
        f"connected registry {name}: attaching client token(s) {', '.join(new)}",
    )
