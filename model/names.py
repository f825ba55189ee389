"""Names acr-edge derives for Azure resources, and the rules they must follow (pure).

The connected registry (CR) name drives every other name: its sync scope map and sync token share
it (as the az CLI does), and the client token/scope map default to ``<cr>-client``.
"""

from __future__ import annotations

import uuid

from model import limits, patterns
from model.errors import InputError
from model.patterns import matches

PROVIDER = "Microsoft.ContainerRegistry"


def validate_cr_name(name: str) -> str:
    if not matches(patterns.CR_NAME, name):
        raise InputError(
            f"connected registry name {name!r} is invalid: use 5-50 lowercase letters and digits. "
            "Lowercase is safest: ARM accepts mixed case, but gateway actions are lower-cased and "
            "runtime versions before 0.7.0 failed to activate mixed-case names.",
            resource=f"connectedRegistries/{name}",
        )
    return name


def validate_registry_name(name: str) -> str:
    if not matches(patterns.REGISTRY_NAME, name):
        raise InputError(
            f"registry name {name!r} is invalid: 5-50 letters and digits (^[a-zA-Z0-9]*$).",
            resource=f"registries/{name}",
        )
    return name


def validate_token_name(name: str) -> str:
    if not matches(patterns.TOKEN_NAME, name):
        raise InputError(
            f"token name {name!r} is invalid: 5-50 letters, digits and '-' (^[a-zA-Z0-9-]*$).",
            resource=f"tokens/{name}",
        )
    return name


def validate_scope_map_name(name: str) -> str:
    if not matches(patterns.SCOPE_MAP_NAME, name):
        raise InputError(
            f"scope map name {name!r} is invalid: 5-50 letters, digits, '-' and '_' "
            "(^[a-zA-Z0-9-_]*$).",
            resource=f"scopeMaps/{name}",
        )
    return name


def validate_block_name(value: str, what: str) -> str:
    """A Prefect block document name (also the tags sites are picked by)."""
    if not matches(patterns.BLOCK_NAME, value):
        raise InputError(
            f"{what} {value!r} is not a Prefect block name",
            resource=what,
            fix="pass the block's name (1-63 lowercase letters, digits and dashes, e.g. "
            "sandbox-site-1), never its content",
        )
    return value


def validate_dns_label(value: str, what: str) -> str:
    """A Kubernetes namespace, Helm release or secret name (RFC 1123 label, 1-63 characters)."""
    if not matches(patterns.DNS1123_LABEL, value):
        raise InputError(
            f"{what} {value!r} is not a DNS-1123 label (1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit)",
            resource=what,
        )
    return value


def validate_dns_labels(values: list[str], what: str) -> list[str]:
    """Each a DNS-1123 label, none twice."""
    for value in values:
        validate_dns_label(value, what)
    if len(set(values)) != len(values):
        raise InputError(f"{what} has duplicate names: {values!r}", resource=what)
    return values


def normalize_namespace(namespace: str) -> str:
    """A repository namespace ('samples', 'team/app') without surrounding '/' or spaces."""
    ns = namespace.strip().strip("/") if isinstance(namespace, str) else ""
    if len(ns) > limits.MAX_NAMESPACE_LENGTH or not matches(patterns.OCI_NAMESPACE, ns):
        raise InputError(
            f"namespace {namespace!r} is not a repository path (lowercase components separated "
            "by '/', e.g. 'samples' or 'team/app').",
            resource="namespaces",
        )
    return ns


def validate_ssh_user(value: str) -> str:
    if not matches(patterns.SSH_USER, value):
        raise InputError(
            f"ssh_user {value!r} is not a POSIX user name (lowercase letters, digits, '_', '.', "
            "'-'; at most 32; not starting with a digit or '-')",
            resource="ssh_user",
        )
    return value


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
    if not matches(patterns.RESOURCE_GROUP, name):
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
