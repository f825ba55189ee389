"""Names acr-edge derives for Azure resources, and the rules they must follow (pure).

The connected registry (CR) name drives every other name: its sync scope map and sync token share
it (as the az CLI does), and the client token/scope map default to ``<cr>-client``.
"""

from __future__ import annotations

import re
import uuid

from model.errors import InputError

# ARM allows mixed case (^[a-zA-Z0-9]*$, 5-50) but we insist on lowercase: gateway actions are
# lower-cased by the service, older CLIs refused uppercase, and runtime <= 0.6 failed to activate
# a mixed-case CR.
CR_NAME_RE = re.compile(r"^[a-z0-9]{5,50}$")
REGISTRY_NAME_RE = re.compile(r"^[a-zA-Z0-9]{5,50}$")
SCOPE_MAP_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{5,50}$")
TOKEN_NAME_RE = re.compile(r"^[a-zA-Z0-9-]{5,50}$")
RESOURCE_GROUP_RE = re.compile(r"^[-\w.()]{1,90}$")

PROVIDER = "Microsoft.ContainerRegistry"


def validate_cr_name(name: str) -> str:
    if not isinstance(name, str) or not CR_NAME_RE.match(name):
        raise InputError(
            f"connected registry name {name!r} is invalid: use 5-50 lowercase letters and digits. "
            "Lowercase is safest: ARM accepts mixed case, but gateway actions are lower-cased and "
            "runtime versions before 0.7.0 failed to activate mixed-case names.",
            resource=f"connectedRegistries/{name}",
        )
    return name


def validate_registry_name(name: str) -> str:
    if not isinstance(name, str) or not REGISTRY_NAME_RE.match(name):
        raise InputError(
            f"registry name {name!r} is invalid: 5-50 letters and digits (^[a-zA-Z0-9]*$).",
            resource=f"registries/{name}",
        )
    return name


def validate_token_name(name: str) -> str:
    if not isinstance(name, str) or not TOKEN_NAME_RE.match(name):
        raise InputError(
            f"token name {name!r} is invalid: 5-50 letters, digits and '-' (^[a-zA-Z0-9-]*$).",
            resource=f"tokens/{name}",
        )
    return name


def validate_scope_map_name(name: str) -> str:
    if not isinstance(name, str) or not SCOPE_MAP_NAME_RE.match(name):
        raise InputError(
            f"scope map name {name!r} is invalid: 5-50 letters, digits, '-' and '_' "
            "(^[a-zA-Z0-9-_]*$).",
            resource=f"scopeMaps/{name}",
        )
    return name


def validate_subscription_id(value: str) -> str:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        parsed = None
    if parsed is None or str(parsed) != value.lower():
        raise InputError(
            f"subscription id {value!r} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx).",
            resource="subscription_id",
        )
    return value


def validate_resource_group(name: str) -> str:
    if not isinstance(name, str) or not RESOURCE_GROUP_RE.match(name) or name.endswith("."):
        raise InputError(
            f"resource group {name!r} is invalid: 1-90 letters, digits, '-', '_', '.', '(' "
            "or ')', not ending in '.'.",
            resource="resource_group",
        )
    return name


def sync_scope_map_name(cr_name: str) -> str:
    return validate_cr_name(cr_name)


def sync_token_name(cr_name: str) -> str:
    return validate_cr_name(cr_name)


def client_token_name(cr_name: str, override: str | None = None) -> str:
    """Client token (and its scope map) name: ``<cr>-client`` unless overridden.

    The name must satisfy both the token and the scope-map pattern, since both share it.
    """
    name = override if override is not None else f"{validate_cr_name(cr_name)}-client"
    validate_token_name(name)
    validate_scope_map_name(name)
    return name


def registry_id(subscription_id: str, resource_group: str, registry: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/{PROVIDER}/registries/{registry}"
    )


def scope_map_id(subscription_id: str, resource_group: str, registry: str, name: str) -> str:
    return f"{registry_id(subscription_id, resource_group, registry)}/scopeMaps/{name}"


def token_id(subscription_id: str, resource_group: str, registry: str, name: str) -> str:
    return f"{registry_id(subscription_id, resource_group, registry)}/tokens/{name}"


def connected_registry_id(
    subscription_id: str, resource_group: str, registry: str, name: str
) -> str:
    return f"{registry_id(subscription_id, resource_group, registry)}/connectedRegistries/{name}"


def same_id(a: str | None, b: str | None) -> bool:
    """ARM ids compare case-insensitively (the service may normalise casing)."""
    if a is None or b is None:
        return a is b
    return a.rstrip("/").lower() == b.rstrip("/").lower()


def name_from_id(resource_id: str, kind: str) -> str:
    """Last segment after ``/<kind>/`` (e.g. the token name of a tokenId)."""
    parts = resource_id.rstrip("/").split("/")
    lowered = [p.lower() for p in parts]
    try:
        idx = len(lowered) - 1 - lowered[::-1].index(kind.lower())
    except ValueError:
        raise InputError(f"{resource_id!r} is not a {kind} resource id.") from None
    if idx + 1 >= len(parts):
        raise InputError(f"{resource_id!r} has no name after /{kind}/.")
    return parts[idx + 1]
