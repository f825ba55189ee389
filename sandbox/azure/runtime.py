"""What the ACR service does when a connected-registry runtime activates or serves a pull.

The simulated sites call these through ``/_sandbox/runtime/*``; the outcome is written to the
ARM state exactly where the service reports it (connectionState, activation, statusDetails).
"""

from __future__ import annotations

from typing import Any

from sandbox.azure import crstate
from sandbox.azure.credentials import grants, matching_password, scope_map_actions
from sandbox.azure.store import Child, Registry, Store, utcnow

TOKEN_INVALID = "SYNC_TOKEN_INVALID"
UNREACHABLE = "PARENT_UNREACHABLE"
CS_KEYS = (
    "ConnectedRegistryName",
    "SyncTokenName",
    "SyncTokenPassword",
    "ParentGatewayEndpoint",
    "ParentEndpointProtocol",
)


def parse_connection_string(text: str) -> dict[str, str]:
    """Key=value pairs split on ';' (a password never contains ';': ACR uses base64 chars)."""
    out: dict[str, str] = {}
    for part in text.strip().split(";"):
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError("connection string parts must be Key=Value")
        out[key.strip()] = value
    missing = [k for k in CS_KEYS if not out.get(k)]
    if missing:
        raise ValueError(f"connection string lacks {', '.join(missing)}")
    return out


class Runtime:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _find_cr(self, name: str, registry: str | None = None) -> tuple[Registry, Child] | None:
        for reg in self.store.all_registries():
            if registry and reg.name.lower() != registry.lower():
                continue
            child = reg.connected_registries.get(name.lower())
            if child is not None:
                return reg, child
        return None

    def _fail(self, child: Child | None, code: str, description: str) -> dict[str, Any]:
        # codes as crstate names them (the service's vocabulary), never the sandbox's own
        if code == TOKEN_INVALID:
            description = f"Unauthorized: {description}"  # the parent's 401, as the pod logs it
        if child is not None and child.properties["activation"]["status"] != "Active":
            crstate.take_down(child, code, description)
        return {"ok": False, "code": code, "description": description}

    def activate(
        self,
        connection_string: str,
        instance_id: str | None = None,
        login_server: str | None = None,
    ) -> dict[str, Any]:
        try:
            cs = parse_connection_string(connection_string)
        except ValueError as exc:
            return {"ok": False, "code": "InvalidConnectionString", "description": str(exc)}
        found = self._find_cr(cs["ConnectedRegistryName"])
        if found is None:
            return {
                "ok": False,
                "code": "ConnectedRegistryNotFound",
                "description": f"connected registry '{cs['ConnectedRegistryName']}' does not exist",
            }
        reg, child = found
        props = child.properties
        sync = props["parent"]["syncProperties"]
        sync_token_name = sync["tokenId"].rstrip("/").rsplit("/", 1)[-1]
        if props["activation"]["status"] == "Active" and child.instance_id != (instance_id or ""):
            return {
                "ok": False,
                "code": "AlreadyActivated",
                "description": f"connected registry '{child.name}' is already activated by "
                f"another instance; deactivate it first",
            }
        token = reg.tokens.get(cs["SyncTokenName"].lower())
        if token is None:
            return self._fail(
                child, TOKEN_INVALID, f"sync token '{cs['SyncTokenName']}' does not exist"
            )
        if token.name.lower() != sync_token_name.lower():
            return self._fail(
                child,
                TOKEN_INVALID,
                f"token '{token.name}' is not the sync token of '{child.name}'",
            )
        if token.properties.get("status") != "enabled":
            return self._fail(child, TOKEN_INVALID, f"sync token '{token.name}' is disabled")
        # No propagation delay here: the sync token authenticates to the parent, where its
        # password was generated (propagation is to connected registries; UNCONFIRMED).
        slot, reason = matching_password(token, cs["SyncTokenPassword"], utcnow())
        if slot is None:
            return self._fail(child, TOKEN_INVALID, reason)
        gateway = sync.get("gatewayEndpoint") or ""
        if gateway and cs["ParentGatewayEndpoint"].lower() != gateway.lower():
            return self._fail(
                child,
                UNREACHABLE,
                f"ParentGatewayEndpoint '{cs['ParentGatewayEndpoint']}' is not the "
                f"parent's gateway '{gateway}'",
            )
        if cs["ParentEndpointProtocol"].lower() not in ("https", "http"):
            return self._fail(child, UNREACHABLE, "ParentEndpointProtocol must be https or http")
        props["activation"] = {"status": "Active"}
        props["version"] = "0.9.0"
        crstate.report_healthy(child)
        if login_server:
            props["loginServer"] = {
                "host": login_server,
                **{k: v for k, v in props.get("loginServer", {}).items() if k != "host"},
            }
        child.instance_id = instance_id or ""
        return {
            "ok": True,
            "connected_registry": child.name,
            "connection_state": props["connectionState"],
        }

    def pull_check(
        self,
        connected_registry: str,
        username: str,
        password: str,
        repository: str,
        tag: str = "latest",
    ) -> dict[str, Any]:
        found = self._find_cr(connected_registry)
        if found is None:
            return {"ok": False, "reason": f"connected registry '{connected_registry}' not found"}
        reg, child = found
        props = child.properties
        if props["activation"]["status"] != "Active":
            return {"ok": False, "reason": f"connected registry '{child.name}' is not activated"}
        token = reg.tokens.get(username.lower())
        if token is None:
            return {"ok": False, "reason": f"unauthorized: token '{username}' does not exist"}
        if token.properties.get("status") != "enabled":
            return {"ok": False, "reason": f"unauthorized: token '{token.name}' is disabled"}
        client_names = {i.rstrip("/").rsplit("/", 1)[-1].lower() for i in props["clientTokenIds"]}
        if token.name.lower() not in client_names:
            return {
                "ok": False,
                "reason": f"unauthorized: token '{token.name}' is not a client "
                f"token of connected registry '{child.name}'",
            }
        delay = self.store.knobs.propagation_delay
        joined = child.client_tokens_since.get(reg.child_id("tokens", token.name).lower())
        if delay and joined is not None and (utcnow() - joined).total_seconds() < delay:
            return {
                "ok": False,
                "reason": f"unauthorized: client token '{token.name}' has not propagated to "
                f"connected registry '{child.name}' yet",
            }
        slot, reason = matching_password(token, password, utcnow(), min_age=delay)
        if slot is None:
            return {"ok": False, "reason": f"unauthorized: {reason}"}
        actions = scope_map_actions(reg.scope_maps, token.properties["scopeMapId"])
        if not grants(actions, repository, "content/read"):
            return {
                "ok": False,
                "reason": f"denied: insufficient scopes: token '{token.name}' "
                f"lacks repositories/{repository}/content/read",
            }
        sync_token = reg.tokens.get(
            props["parent"]["syncProperties"]["tokenId"].rstrip("/").rsplit("/", 1)[-1].lower()
        )
        sync_actions = (
            scope_map_actions(reg.scope_maps, sync_token.properties["scopeMapId"])
            if sync_token
            else []
        )
        if not grants(sync_actions, repository, "content/read"):
            return {
                "ok": False,
                "reason": f"not found: repository '{repository}' is not synced "
                f"by connected registry '{child.name}'",
            }
        if repository.lower() not in {r.lower() for r in reg.repositories}:
            return {
                "ok": False,
                "reason": f"not found: repository '{repository}' does not exist "
                f"in registry '{reg.name}'",
            }
        return {
            "ok": True,
            "reason": f"pulled {repository}:{tag} with token '{token.name}' ({slot.name})",
        }
