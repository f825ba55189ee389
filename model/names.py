"""Names acr-edge derives for Azure resources, and the rules they must follow (pure).

The connected registry (CR) name drives every other name: its sync scope map and sync token share
it (as the az CLI does), and the client token/scope map default to ``<cr>-client``.
"""

from __future__ import annotations

import re
import uuid

from model import limits, patterns
from model.errors import InputError
from model.patterns import matches

PROVIDER = "Microsoft.ContainerRegistry"


# Why each name was refused (the value is quoted before it).
_CR_NAME_WHY = (
    "is not a valid connected registry name: use 5-50 lowercase letters and digits. "
    "Lowercase is safest: ARM accepts mixed case, but gateway actions are lower-cased and "
    "runtime versions before 0.7.0 failed to activate mixed-case names."
)
_REGISTRY_NAME_WHY = "is not a valid registry name: 5-50 letters and digits (^[a-zA-Z0-9]*$)."
_TOKEN_NAME_WHY = "is not a valid token name: 5-50 letters, digits and '-' (^[a-zA-Z0-9-]*$)."
_SCOPE_MAP_NAME_WHY = (
    "is not a valid scope map name: 5-50 letters, digits, '-' and '_' (^[a-zA-Z0-9-_]*$)."
)
_BLOCK_NAME_WHY = "is not a Prefect block name ({what})"
_DNS1123_LABEL_WHY = (
    "is not a DNS-1123 label ({what}: 1-63 lowercase letters, digits and '-', starting "
    "and ending with a letter or digit)"
)
_SSH_USER_WHY = (
    "is not a POSIX user name for ssh_user (lowercase letters, digits, '_', '.', '-'; at "
    "most 32; not starting with a digit or '-')"
)
_RESOURCE_GROUP_WHY = (
    "is not a valid resource group: 1-90 letters, digits, '-', '_', '.', '(' or ')', not "
    "ending in '.'."
)


def _check(pattern: re.Pattern[str], value: str, why: str, resource: str, fix: str = "") -> str:
    """``value`` when ``pattern`` matches all of it, else InputError ``<value!r> <why>``."""
    if not matches(pattern, value):
        raise InputError(f"{value!r} {why}", resource=resource, fix=fix)
    return value


def validate_cr_name(name: str) -> str:
    return _check(patterns.CR_NAME, name, _CR_NAME_WHY, f"connectedRegistries/{name}")


def validate_registry_name(name: str) -> str:
    return _check(patterns.REGISTRY_NAME, name, _REGISTRY_NAME_WHY, f"registries/{name}")


def validate_token_name(name: str) -> str:
    return _check(patterns.TOKEN_NAME, name, _TOKEN_NAME_WHY, f"tokens/{name}")


def validate_scope_map_name(name: str) -> str:
    return _check(patterns.SCOPE_MAP_NAME, name, _SCOPE_MAP_NAME_WHY, f"scopeMaps/{name}")


def validate_block_name(value: str, what: str) -> str:
    """A Prefect block document name (also the tags sites are picked by)."""
    return _check(
        patterns.BLOCK_NAME,
        value,
        _BLOCK_NAME_WHY.format(what=what),
        what,
        "pass the block's name (1-63 lowercase letters, digits and dashes, e.g. "
        "sandbox-site-1), never its content",
    )


def validate_dns_label(value: str, what: str) -> str:
    """A Kubernetes namespace, Helm release or secret name (RFC 1123 label, 1-63 characters)."""
    return _check(patterns.DNS1123_LABEL, value, _DNS1123_LABEL_WHY.format(what=what), what)


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
    return _check(patterns.SSH_USER, value, _SSH_USER_WHY, "ssh_user")


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
    return _check(patterns.RESOURCE_GROUP, name, _RESOURCE_GROUP_WHY, "resource_group")


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


# A user is a word of its own (not a repository path) and what follows is not a digest.
_USER_AT_HOST = re.compile(r"(?<![\w/:.-])[A-Za-z_][\w.-]*@(?!sha\d+:)(?=[A-Za-z0-9\[])")


def short_label(resource: str) -> str:
    """A resource as a table cell: the SSH user dropped from ``user@host`` (the site's block
    names it, and the UI renders ``edge@127.0.0.1`` as a mailto link) and whitespace folded."""
    return " ".join(_USER_AT_HOST.sub("", resource).split())
