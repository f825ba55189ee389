"""The Azure actions acr-edge needs on the parent registry, and whether a principal has them.

One list, read by preflight (before the first write it asks ARM for the principal's effective
permissions on the registry and names every missing action) and by README's RBAC section (a
test keeps the two equal). Exact actions, no wildcards: the least that works.

ARM's permissions answer is a list of ``{actions, notActions, dataActions, notDataActions}``
entries; an action is granted when some entry's ``actions`` match it and the same entry's
``notActions`` do not. Patterns may hold ``*`` and compare case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_P = "Microsoft.ContainerRegistry/registries"

# Control plane: what provision-site, rotate-client-token and site-status call.
PROVISION_ACTIONS: tuple[str, ...] = (
    f"{_P}/read",
    f"{_P}/write",  # only to enable the dedicated data endpoint when asked to
    f"{_P}/scopeMaps/read",
    f"{_P}/scopeMaps/write",
    f"{_P}/tokens/read",
    f"{_P}/tokens/write",
    f"{_P}/connectedRegistries/read",
    f"{_P}/connectedRegistries/write",
    f"{_P}/generateCredentials/action",
    # Polling a long-running operation needs the operation-status read of the resource polled
    # (Azure provider operations: "Gets a token async operation status"): the registry's
    # (data endpoint PATCH, generateCredentials), a token's (token PUT/PATCH) and a scope
    # map's (its PUT, when ARM answers it asynchronously).
    f"{_P}/operationStatuses/read",
    f"{_P}/tokens/operationStatuses/read",
    f"{_P}/scopeMaps/operationStatuses/read",
)

# Teardown and re-home, on top of the reads above: the only deletes acr-edge ever makes (its
# connected registry, its tokens and their scope maps) and the deactivation the service
# requires before a connected registry may be deleted. Kept out of PROVISION_ACTIONS so the
# principal the schedules use (provision, rotation, status) cannot delete anything.
TEARDOWN_ACTIONS: tuple[str, ...] = (
    f"{_P}/read",
    f"{_P}/scopeMaps/read",
    f"{_P}/tokens/read",
    f"{_P}/connectedRegistries/read",
    f"{_P}/operationStatuses/read",
    f"{_P}/tokens/operationStatuses/read",
    f"{_P}/scopeMaps/operationStatuses/read",
    # Deactivate and delete answer as long-running operations polled under the connected
    # registry (UNCONFIRMED: no provider-operations list names this action; docs/design.md).
    f"{_P}/connectedRegistries/operationStatuses/read",
    f"{_P}/connectedRegistries/deactivate/action",
    f"{_P}/connectedRegistries/delete",
    f"{_P}/tokens/delete",
    f"{_P}/scopeMaps/delete",
)
# What README's second custom role adds to the first (the deletes, nothing else).
TEARDOWN_ONLY_ACTIONS: tuple[str, ...] = tuple(
    a for a in TEARDOWN_ACTIONS if a not in PROVISION_ACTIONS
)

# Listing repositories: AcrPull's action in "RBAC Registry Permissions" mode, or the catalog
# data action of "Container Registry Repository Catalog Lister" in the ABAC mode. Either does.
CATALOG_ALTERNATIVES: tuple[tuple[str, str], ...] = (
    ("action", f"{_P}/pull/read"),
    ("dataAction", f"{_P}/catalog/read"),
)


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "*" else re.escape(c) for c in text), re.IGNORECASE | re.ASCII
    )


def _matches(patterns: Iterable[str], action: str) -> bool:
    return any(_pattern(str(p)).fullmatch(action) for p in patterns)


def granted(permissions: Sequence[Mapping[str, Any]], action: str, *, data: bool = False) -> bool:
    """True when one permission entry grants ``action`` and does not exclude it."""
    allow, deny = ("dataActions", "notDataActions") if data else ("actions", "notActions")
    return any(
        _matches(entry.get(allow) or (), action) and not _matches(entry.get(deny) or (), action)
        for entry in permissions
    )


@dataclass(frozen=True)
class PermissionCheck:
    missing: tuple[str, ...]
    catalog_ok: bool

    @property
    def ok(self) -> bool:
        return not self.missing and self.catalog_ok

    def message(self) -> str:
        parts = []
        if self.missing:
            parts.append("missing actions: " + ", ".join(self.missing))
        if not self.catalog_ok:
            parts.append(
                "cannot list repositories: needs "
                + " or ".join(f"{kind} {name}" for kind, name in CATALOG_ALTERNATIVES)
            )
        return "; ".join(parts) or "every required action is granted"


def check(
    permissions: Sequence[Mapping[str, Any]],
    required: Iterable[str] = PROVISION_ACTIONS,
    *,
    catalog: bool = True,
) -> PermissionCheck:
    """Which of ``required`` are missing; with ``catalog``, also whether repositories can be
    listed (teardown lists none, so it does not ask)."""
    missing = tuple(a for a in required if not granted(permissions, a))
    catalog_ok = not catalog or any(
        granted(permissions, name, data=kind == "dataAction") for kind, name in CATALOG_ALTERNATIVES
    )
    return PermissionCheck(missing=missing, catalog_ok=catalog_ok)
