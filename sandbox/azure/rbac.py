"""Azure RBAC as ARM applies it: role definitions, assignments at scopes, 403 AuthorizationFailed.

Every ARM request under a subscription is authorized (reads too, as ARM does) against the
principal's role assignments at the request's scope or any parent scope. Built-in role actions
follow Microsoft's built-in-roles reference (Owner, Contributor, Reader, AcrPull, Container
Registry Repository Catalog Lister; Contributor's notActions abridged to the Microsoft.Authorization
ones that matter here). ``acr-edge-operator`` and ``acr-edge-teardown`` are the custom roles with
exactly the actions README's "The parent registry and its principal" lists.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from sandbox.azure.http import GatewayError
from sandbox.azure.store import Principal

CR = "Microsoft.ContainerRegistry/registries"
PULL = f"{CR}/pull/read"
CATALOG_DATA_ACTION = f"{CR}/catalog/read"


@dataclass(frozen=True)
class RoleDefinition:
    name: str
    id: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = field(default=())

    def permission(self) -> dict[str, list[str]]:
        return {
            "actions": list(self.actions),
            "notActions": list(self.not_actions),
            "dataActions": list(self.data_actions),
            "notDataActions": list(self.not_data_actions),
        }


# The README's custom role: exactly its list, nothing more (no pull/read: AcrPull is separate).
README_ACTIONS = (
    f"{CR}/read",
    f"{CR}/write",
    f"{CR}/scopeMaps/read",
    f"{CR}/scopeMaps/write",
    f"{CR}/tokens/read",
    f"{CR}/tokens/write",
    f"{CR}/connectedRegistries/read",
    f"{CR}/connectedRegistries/write",
    f"{CR}/generateCredentials/action",
    f"{CR}/operationStatuses/read",
    f"{CR}/tokens/operationStatuses/read",
    f"{CR}/scopeMaps/operationStatuses/read",
)
# README's second custom role: the deletes teardown (and re-home's deactivation) need on top.
README_TEARDOWN_ACTIONS = (
    f"{CR}/connectedRegistries/operationStatuses/read",
    f"{CR}/connectedRegistries/deactivate/action",
    f"{CR}/connectedRegistries/delete",
    f"{CR}/tokens/delete",
    f"{CR}/scopeMaps/delete",
)
CUSTOM_ROLE = "acr-edge-operator"
TEARDOWN_ROLE = "acr-edge-teardown"

ROLES: dict[str, RoleDefinition] = {
    r.name.lower(): r
    for r in (
        RoleDefinition("Owner", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", ("*",)),
        RoleDefinition(
            "Contributor",
            "b24988ac-6180-42a0-ab88-20f7382dd24c",
            ("*",),
            (
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ),
        ),
        RoleDefinition("Reader", "acdd72a7-3385-48ef-bd42-f606fba81ae7", ("*/read",)),
        RoleDefinition("AcrPull", "7f951dda-4ed3-4680-a7ca-43fe172d538d", (PULL,)),
        RoleDefinition(
            "Container Registry Repository Catalog Lister",
            "bfdb9389-c9a5-478a-bb2f-ba9ca092c3c7",
            (),
            data_actions=(CATALOG_DATA_ACTION,),
        ),
        RoleDefinition(CUSTOM_ROLE, "1b2c3d4e-0000-4000-8000-00000000ed9e", README_ACTIONS),
        RoleDefinition(
            TEARDOWN_ROLE, "1b2c3d4e-0000-4000-8000-00000000ed9f", README_TEARDOWN_ACTIONS
        ),
    )
}
BUILT_IN = frozenset(ROLES) - {CUSTOM_ROLE, TEARDOWN_ROLE}
ROLE_NAMES = tuple(r.name for r in ROLES.values())

_COLLECTIONS = {
    "scopemaps": "scopeMaps",
    "tokens": "tokens",
    "connectedregistries": "connectedRegistries",
}
_VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}
_POLL = ("operationstatuses", "operationresults")


def define_role(
    name: str, actions: list[str] | tuple[str, ...], data_actions: list[str] | tuple[str, ...] = ()
) -> RoleDefinition:
    """A custom role (tests: e.g. exactly the actions a preflight asks for)."""
    if name.lower() in BUILT_IN:
        raise ValueError(f"{name!r} is a built-in role")
    definition = RoleDefinition(
        name, str(uuid.uuid5(uuid.NAMESPACE_URL, name)), tuple(actions), (), tuple(data_actions)
    )
    ROLES[name.lower()] = definition
    return definition


def role(name: str) -> RoleDefinition:
    found = ROLES.get(name.lower())
    if found is None:
        raise ValueError(f"unknown role {name!r}; use one of {ROLE_NAMES}")
    return found


def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(p) for p in text.split("*")), re.IGNORECASE | re.ASCII)


def _granted(action: str, allow: tuple[str, ...], deny: tuple[str, ...]) -> bool:
    return any(_pattern(a).fullmatch(action) for a in allow) and not any(
        _pattern(d).fullmatch(action) for d in deny
    )


def _applies(assignment_scope: str, scope: str) -> bool:
    a, s = assignment_scope.rstrip("/").lower(), scope.rstrip("/").lower()
    return s == a or s.startswith(a + "/")


def definitions_at(principal: Principal | None, scope: str) -> list[RoleDefinition]:
    if principal is None:
        return []
    return [role(name) for at, name in principal.assignments if _applies(at, scope)]


def allowed(principal: Principal | None, action: str, scope: str, *, data: bool = False) -> bool:
    for definition in definitions_at(principal, scope):
        if data and _granted(action, definition.data_actions, definition.not_data_actions):
            return True
        if not data and _granted(action, definition.actions, definition.not_actions):
            return True
    return False


def permissions(principal: Principal | None, scope: str) -> list[dict[str, list[str]]]:
    """ARM's ``Microsoft.Authorization/permissions`` answer: one entry per applicable role."""
    return [d.permission() for d in definitions_at(principal, scope)]


def arm_action(method: str, segs: list[str]) -> str | None:
    """The RBAC action of an ARM request on ``/subscriptions/...`` segments (None: not checked)."""
    low = [s.lower() for s in segs]
    if len(low) == 4 and low[2] == "resourcegroups":
        return "Microsoft.Resources/subscriptions/resourceGroups/read" if method == "GET" else None
    if "microsoft.containerregistry" not in low or "registries" not in low:
        return None
    rest = low[low.index("registries") + 1 :]
    verb = _VERBS.get(method, "action")
    if len(rest) <= 1:
        return f"{CR}/{verb}"
    sub = rest[1:]
    if sub[0] in _POLL:
        return f"{CR}/operationStatuses/read"
    if sub[0] == "generatecredentials":
        return f"{CR}/generateCredentials/action"
    collection = _COLLECTIONS.get(sub[0])
    if collection is None:
        return f"{CR}/{segs[-1]}/{verb}"
    base = f"{CR}/{collection}"
    if len(sub) >= 3 and sub[2] in _POLL:
        return f"{base}/operationStatuses/read"
    if len(sub) >= 3 and method == "POST":
        return f"{base}/{segs[-1]}/action"
    return f"{base}/{verb}"


def authorization_failed(claims: dict[str, Any], action: str, scope: str) -> GatewayError:
    """ARM's 403 (message text as ARM words it)."""
    return GatewayError(
        403,
        "AuthorizationFailed",
        f"The client '{claims.get('appid', '')}' with object id '{claims.get('oid', '')}' does "
        f"not have authorization to perform action '{action}' over scope '{scope}' or the "
        f"scope is invalid. If access was recently granted, please refresh your credentials.",
    )


def new_object_id() -> str:
    return str(uuid.uuid4())
