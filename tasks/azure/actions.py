"""Scope-map action lists for sync and client tokens (pure), in the az CLI's order."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from model.errors import InputError
from model.limits import MAX_CLIENT_TOKENS_PER_CR, MAX_REPOSITORIES_PER_SCOPE_MAP
from model.names import validate_cr_name

Mode = Literal["ReadOnly", "ReadWrite"]

REPOSITORY_ACTIONS: dict[str, tuple[str, ...]] = {
    "ReadOnly": ("content/read", "metadata/read"),
    "ReadWrite": (
        "content/read",
        "content/write",
        "content/delete",
        "metadata/read",
        "metadata/write",
    ),
}
CLIENT_REPOSITORY_ACTIONS = ("content/read", "metadata/read")
GATEWAY_ACTIONS = ("config/read", "config/write", "message/read", "message/write")

# The service (and the CLI) accept legacy names; Mirror is the old ReadOnly, Registry ReadWrite.
_MODE_ALIASES = {
    "readonly": "ReadOnly",
    "mirror": "ReadOnly",
    "readwrite": "ReadWrite",
    "registry": "ReadWrite",
}


def normalize_mode(mode: str) -> Mode:
    canonical = _MODE_ALIASES.get(str(mode).lower())
    if canonical is None:
        raise InputError(
            f"connected registry mode {mode!r} is invalid: use ReadOnly or ReadWrite.",
            resource="mode",
        )
    return canonical  # type: ignore[return-value]


def unique_repositories(repositories: Iterable[str]) -> list[str]:
    """Sorted, deduplicated, lower-cased repository names (ACR repository names are lowercase)."""
    repos = sorted({r.strip().strip("/").lower() for r in repositories})
    if "" in repos:
        raise InputError("an empty repository name was given.", resource="repositories")
    return repos


def check_repository_limit(repositories: Iterable[str], what: str) -> None:
    count = len(unique_repositories(repositories))
    if count > MAX_REPOSITORIES_PER_SCOPE_MAP:
        raise InputError(
            f"{count} repositories exceed the limit of {MAX_REPOSITORIES_PER_SCOPE_MAP} per "
            "scope map.",
            resource=what,
            fix="narrow the namespaces or split the site across several connected registries.",
        )


def check_client_token_limit(count: int, cr_name: str) -> None:
    if count > MAX_CLIENT_TOKENS_PER_CR:
        raise InputError(
            f"{count} client tokens exceed the limit of {MAX_CLIENT_TOKENS_PER_CR} per connected "
            "registry.",
            resource=f"connectedRegistries/{cr_name}",
            fix="detach unused client tokens first.",
        )


def repository_actions(repositories: Iterable[str], per_repo: Iterable[str]) -> list[str]:
    per = tuple(per_repo)
    return [
        f"repositories/{repo}/{action}"
        for repo in unique_repositories(repositories)
        for action in per
    ]


def gateway_actions(cr_name: str) -> list[str]:
    validate_cr_name(cr_name)
    return [f"gateway/{cr_name}/{action}" for action in GATEWAY_ACTIONS]


def sync_actions(cr_name: str, repositories: Iterable[str], mode: str) -> list[str]:
    """Per repository the mode's actions, then the four gateway actions of the CR itself."""
    repos = unique_repositories(repositories)
    check_repository_limit(repos, f"scopeMaps/{cr_name}")
    per_repo = REPOSITORY_ACTIONS[normalize_mode(mode)]
    return repository_actions(repos, per_repo) + gateway_actions(cr_name)


def client_actions(repositories: Iterable[str], *, scope_map_name: str = "client") -> list[str]:
    """Pull (content/read) and catalog (metadata/read) per repository."""
    repos = unique_repositories(repositories)
    check_repository_limit(repos, f"scopeMaps/{scope_map_name}")
    if not repos:
        raise InputError(
            "a client scope map needs at least one repository.",
            resource=f"scopeMaps/{scope_map_name}",
        )
    return repository_actions(repos, CLIENT_REPOSITORY_ACTIONS)


def same_actions(a: Iterable[str], b: Iterable[str]) -> bool:
    """The service lower-cases and may reorder actions: compare as case-insensitive sets."""
    return {x.lower() for x in a} == {x.lower() for x in b}


def readable_repositories(actions: Iterable[str]) -> list[str]:
    """Repositories a scope map lets a client pull (``repositories/<r>/content/read``)."""
    prefix, suffix = "repositories/", "/content/read"
    return sorted(
        {
            a[len(prefix) : -len(suffix)]
            for a in actions
            if a.startswith(prefix) and a.endswith(suffix)
        }
    )
