"""Which repositories a site syncs: namespace matching (pure) and catalog listing (I/O)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from model.errors import InputError, classify
from model.names import normalize_namespace

if TYPE_CHECKING:
    from model.azure_context import AzureContext

log = logging.getLogger("acr_edge.azure")

CATALOG_PAGE_SIZE = 100


def in_namespace(repository: str, namespace: str) -> bool:
    """Exact path-segment prefix: ``samples`` holds ``samples`` and ``samples/a/b``, not
    ``samplesx/a``."""
    return repository == namespace or repository.startswith(namespace + "/")


def match_namespaces(
    repositories: Iterable[str], namespaces: Iterable[str], *, allow_empty: bool = False
) -> list[str]:
    """Sorted, deduplicated repositories under any namespace.

    A namespace matching nothing is an error (likely a typo) unless ``allow_empty``.
    """
    wanted = list(dict.fromkeys(normalize_namespace(n) for n in namespaces))
    if not wanted:
        raise InputError("at least one namespace is required.", resource="namespaces")
    repos = sorted(set(repositories))
    matched: set[str] = set()
    empty: list[str] = []
    for ns in wanted:
        hits = [r for r in repos if in_namespace(r, ns)]
        if not hits:
            empty.append(ns)
        matched.update(hits)
    if empty and not allow_empty:
        raise InputError(
            f"namespace(s) {', '.join(empty)} match no repository in the registry.",
            resource="namespaces",
            fix="check the spelling, push the images first, or pass allow_empty=True.",
        )
    return sorted(matched)


def list_repositories(
    ctx: AzureContext, namespaces: Iterable[str], *, allow_empty: bool = False
) -> list[str]:
    """Every repository under ``namespaces``, reading all catalog pages.

    Each page is one request, retried on its own by the client's pipeline (the block's
    WriteSafeRetryPolicy): a failed page is asked again, the pages already read are kept.
    """
    wanted = [normalize_namespace(n) for n in namespaces]  # refuse bad input before any call
    try:
        every = list(ctx.catalog.list_repository_names(results_per_page=CATALOG_PAGE_SIZE))
    except Exception as exc:
        err = classify(exc, resource=f"registries/{ctx.registry}/catalog")
        if err is exc:
            raise
        raise err from exc
    result = match_namespaces(every, wanted, allow_empty=allow_empty)
    log.info("catalog: %d repositories, %d under %s", len(every), len(result), ", ".join(wanted))
    return result
