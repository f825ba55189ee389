"""Pure plans for the parent registry, scope maps, tokens, connected registries and passwords.

Each ``plan_*`` takes the actual resource as a REST-shaped dict (or None when absent) and
returns a :class:`model.plan.Change`: the step, the resource, the action and its reason, with
the body to send as its payload (an :class:`ArmWrite`). A no-op says why. Conflicts that cannot
be fixed by writing (immutable fields, resources acr-edge does not own) raise PermanentError
naming the fix. No I/O here: the read and apply halves live in the per-resource modules
(registry, scope_maps, tokens, connected_registry, passwords).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model.errors import InputError, PermanentError
from model.names import name_from_id, same_id
from model.plan import Change
from tasks.azure import actions as act
from tasks.azure.schedule import (
    parse_duration,
    validate_cron,
    validate_message_ttl,
    validate_sync_window,
)
from tasks.azure.spec import ConnectedRegistrySpec, create_settings, settings_patch

__all__ = [
    "CLIENT_MAP_MARKER",
    "ArmWrite",
    "ConnectedRegistrySpec",
    "plan_client_token_ids",
    "plan_connected_registry",
    "plan_data_endpoint",
    "plan_scope_map",
    "plan_token",
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
class ArmWrite:
    """A planned ARM write's payload: the resource's name and the body to PUT or PATCH."""

    name: str
    body: Json = field(repr=False)


# ---- the parent registry ------------------------------------------------------------------


def plan_data_endpoint(registry: Json | None, *, name: str, enable: bool) -> Change:
    """Preflight: the registry exists, is Premium, and has its dedicated data endpoint (which
    is enabled here only when the caller allows it)."""
    resource = f"registries/{name}"
    if registry is None:
        raise PermanentError(
            "registry not found.",
            resource=resource,
            fix="check subscription, resource group and registry name in the ParentRegistry block.",
        )
    sku = str((registry.get("sku") or {}).get("name", ""))
    if sku.lower() != "premium":
        raise PermanentError(
            f"connected registries need the Premium SKU; this registry is {sku or 'unknown'}.",
            resource=resource,
            fix=f"az acr update -n {name} --sku Premium",
        )
    props = registry.get("properties") or {}
    hosts = list(props.get("dataEndpointHostNames") or [])
    if props.get("dataEndpointEnabled"):
        return Change.none(
            "preflight-parent",
            resource,
            f"registry {name} is Premium with its dedicated data endpoint enabled",
            login_server=str(props.get("loginServer") or ""),
            data_endpoint_host_names=hosts,
        )
    if not enable:
        raise PermanentError(
            "the dedicated data endpoint is disabled; connected registries sync through it.",
            resource=resource,
            fix=f"az acr update -n {name} --data-endpoint-enabled true, or run with "
            "enable_data_endpoint=True to let acr-edge enable it.",
        )
    return Change(
        "preflight-parent",
        resource,
        "update",
        f"registry {name}: enabling the dedicated data endpoint",
        payload=ArmWrite(name, {"properties": {"dataEndpointEnabled": True}}),
        shown={"login_server": str(props.get("loginServer") or "")},
    )


# ---- scope maps ---------------------------------------------------------------------------


def desired_scope_map(description: str, actions: list[str]) -> Json:
    return {"properties": {"description": description, "actions": list(actions)}}


def plan_scope_map(actual: Json | None, desired: Json, *, step: str, name: str) -> Change:
    """Create when absent; update when actions differ; refuse a map acr-edge did not create."""
    want = desired["properties"]
    resource = f"scopeMaps/{name}"
    count = len(want["actions"])
    if actual is None:
        return Change(
            step,
            resource,
            "create",
            f"scope map {name} does not exist",
            payload=ArmWrite(name, desired),
            shown={"actions": count},
        )
    props = actual.get("properties") or {}
    if props.get("type") == "SystemDefined" or props.get("description") != want["description"]:
        raise PermanentError(
            f"scope map {name} exists but was not created by acr-edge "
            f"(description {props.get('description')!r}); refusing to overwrite its actions.",
            resource=resource,
            fix="choose another connected registry / client token name, or delete or rename "
            "the existing scope map if it is unused.",
        )
    have = props.get("actions") or []
    if act.same_actions(have, want["actions"]):
        return Change.none(
            step, resource, f"scope map {name} already has its {count} actions", actions=count
        )
    added = len({a.lower() for a in want["actions"]} - {a.lower() for a in have})
    removed = len({a.lower() for a in have} - {a.lower() for a in want["actions"]})
    return Change(
        step,
        resource,
        "update",
        f"scope map {name}: {added} actions to add, {removed} to remove",
        payload=ArmWrite(name, {"properties": {"actions": list(want["actions"])}}),
        shown={"actions": count},
    )


# ---- tokens -------------------------------------------------------------------------------


def desired_token(scope_map_id: str) -> Json:
    # No passwords at create, like the CLI: generation is a separate, slot-aware step.
    return {"properties": {"scopeMapId": scope_map_id, "status": "enabled"}}


def plan_token(actual: Json | None, scope_map_id: str, *, step: str, name: str) -> Change:
    resource = f"tokens/{name}"
    if actual is None:
        return Change(
            step,
            resource,
            "create",
            f"token {name} does not exist",
            payload=ArmWrite(name, desired_token(scope_map_id)),
        )
    props = actual.get("properties") or {}
    if not same_id(props.get("scopeMapId"), scope_map_id):
        raise PermanentError(
            f"token {name} exists but uses scope map {props.get('scopeMapId')!r}, not "
            f"{scope_map_id}; acr-edge only manages tokens bound to its own scope maps.",
            resource=resource,
            fix="choose another connected registry / client token name, or delete the token "
            "if it is unused.",
        )
    if str(props.get("status", "enabled")).lower() != "enabled":
        return Change(
            step,
            resource,
            "update",
            f"token {name} is disabled; enabling it",
            payload=ArmWrite(name, {"properties": {"status": "enabled"}}),
        )
    return Change.none(
        step, resource, f"token {name} already exists, enabled, bound to its scope map"
    )


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
    # the operator's settings: each stated one, else the az CLI's default for a new registry
    props: Json = {"mode": spec.mode, "parent": parent, **create_settings(spec)}
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


def plan_connected_registry(
    actual: Json | None, spec: ConnectedRegistrySpec, sync_token_id: str
) -> Change:
    name = spec.name
    step, resource = "connected-registry", f"connectedRegistries/{name}"
    if actual is None:
        return Change(
            step,
            resource,
            "create",
            f"connected registry {name} does not exist",
            payload=ArmWrite(name, desired_connected_registry(spec, sync_token_id)),
            shown={"mode": spec.mode},
        )
    props = actual.get("properties") or {}
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
    patch, reasons = _settings_patch(props, sync, spec)
    if not patch:
        return Change.none(
            step,
            resource,
            f"connected registry {name} already matches its settings",
            mode=spec.mode,
        )
    return Change(
        step,
        resource,
        "update",
        f"connected registry {name}: updating " + ", ".join(reasons),
        payload=ArmWrite(name, {"properties": patch}),
        shown={"mode": spec.mode},
    )


def _settings_patch(props: Json, sync: Json, spec: ConnectedRegistrySpec) -> tuple[Json, list[str]]:
    """The PATCH body of the mutable settings that differ, and a reason for each."""
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
    # only the settings the spec states: an operator's debug logging is not reverted
    settings, setting_reasons = settings_patch(props, spec)
    patch.update(settings)
    reasons.extend(setting_reasons)
    current = list(props.get("clientTokenIds") or [])
    merged = union_ids(current, list(spec.client_token_ids))
    if len(merged) != len(current):
        act.check_client_token_limit(len(merged), spec.name)
        patch["clientTokenIds"] = merged
        reasons.append("client tokens")
    return patch, reasons


def plan_client_token_ids(
    actual: Json | None, add: list[str], *, name: str, absent_is_empty: bool = False
) -> Change:
    """Union ``add`` into the CR's clientTokenIds (full-list replace, others kept).

    A connected registry that does not exist yet is an error, unless ``absent_is_empty``: a
    dry run plans the attach against the registry the run would create (it has no ids yet).
    """
    step, resource = "attach-client-token", f"connectedRegistries/{name}"
    if actual is None and not absent_is_empty:
        raise PermanentError(
            "connected registry not found; cannot attach a client token.",
            resource=resource,
            fix="run ensure_connected_registry first.",
        )
    current = list(((actual or {}).get("properties") or {}).get("clientTokenIds") or [])
    tokens = [name_from_id(t, "tokens") for t in add]
    merged = union_ids(current, add)
    act.check_client_token_limit(len(merged), name)
    if len(merged) == len(current):
        return Change.none(
            step,
            resource,
            f"connected registry {name} already lists "
            + (", ".join(tokens) or "no extra client tokens"),
            token=", ".join(tokens),
        )
    new = [name_from_id(t, "tokens") for t in merged[len(current) :]]
    return Change(
        step,
        resource,
        "update",
        f"connected registry {name}: attaching client token(s) {', '.join(new)}",
        payload=ArmWrite(name, {"properties": {"clientTokenIds": merged}}),
        shown={"token": ", ".join(tokens)},
    )
