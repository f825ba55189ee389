"""Bulk reads: the parent registry's connected registries, tokens and scope maps, listed once.

A fleet run reads these lists (a page per ``nextLink``, ARM's paging) instead of each site
run reading its own resources one GET at a time. Every page goes through the context's
management clients, so the shared ARM rate limit and the pipeline's retries apply as to any
read. Each listed item has the shape the per-resource GET returns (the same api-version, the
same ``rest()`` conversion), so one parser reads both.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from model.arm_facts import CONNECTED_REGISTRIES, KINDS, SCOPE_MAPS, TOKENS, ArmFacts
from model.azure_context import AzureContext
from model.errors import PermanentError, classify
from tasks.azure.arm import Json, rest, rg, send_get

# A registry has at most a few thousand children: a nextLink chain longer than this is a loop.
MAX_PAGES = 1000


def _get_page(ctx: AzureContext, url: str, resource: str) -> Json:
    return send_get(ctx, url, resource, missing_ok=False) or {}


def list_connected_registries(ctx: AzureContext) -> list[Json]:
    """Every connected registry as raw JSON of the pinned preview api-version (the SDK model
    drops ``registrySyncResult``), following ``nextLink`` to the last page."""
    resource = "connectedRegistries (list)"
    url: str | None = f"{ctx.registry_id}/connectedRegistries?api-version={ctx.cr_api_version}"
    items: list[Json] = []
    for _ in range(MAX_PAGES):
        if not url:
            return items
        page = _get_page(ctx, url, resource)
        items += [dict(v) for v in page.get("value") or [] if isinstance(v, dict)]
        url = page.get("nextLink") or None
    raise PermanentError(f"more than {MAX_PAGES} list pages", resource=resource)


def _listed(pager: Iterable[Any]) -> list[Json]:
    return [rest(item) for item in pager]


def list_tokens(ctx: AzureContext) -> list[Json]:
    return _sdk_list(lambda: _listed(ctx.mgmt.tokens.list(*rg(ctx))), "tokens (list)")


def list_scope_maps(ctx: AzureContext) -> list[Json]:
    return _sdk_list(lambda: _listed(ctx.mgmt.scope_maps.list(*rg(ctx))), "scopeMaps (list)")


def _sdk_list(read: Any, resource: str) -> list[Json]:
    try:
        got: list[Json] = read()
    except Exception as exc:
        err = classify(exc, resource=resource)
        if err is exc:
            raise
        raise err from exc
    return got


_READERS = {
    CONNECTED_REGISTRIES: list_connected_registries,
    TOKENS: list_tokens,
    SCOPE_MAPS: list_scope_maps,
}


def read_arm_facts(ctx: AzureContext, kinds: Iterable[str] = KINDS) -> ArmFacts:
    """The lists of ``kinds``, read now; ``read_at`` is taken before the first page, so the
    facts' age never understates how old what they say is."""
    read_at = datetime.now(UTC)
    lists = {kind: _READERS[kind](ctx) for kind in dict.fromkeys(kinds)}
    return ArmFacts.from_lists(ctx.registry_id, read_at, lists)
