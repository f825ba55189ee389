"""Sites and parents are picked from the saved blocks in the run form, never typed.

A flow takes ``site_block: str | EdgeSite`` (flows/block_refs.py): names for fleets, schedules
and code, the block itself for a form. Prefect's schema for that union is ``anyOf [string,
EdgeSite]``, which the UI shows as a type switch with a free-text box. The deployment's stored
schema is what the UI renders, so `acr-edge deploy` keeps only the block branch there: the UI
then renders its block-document picker, submits ``{"$ref": {"block_document_id": ...}}``, the
server checks that shape, and Prefect loads the block before the flow starts.

Defaults and schedule parameters that name a block become references too, by document id when
the block is saved (the picker shows it chosen) and by slug when it is not yet (a run resolves
``edge-site/NAME`` when it starts; deploying again after saving the block shows it chosen).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# A saved block's document id by (block type slug, name); None when no such block is saved.
Lookup = Callable[[str, str], str | None]

_DEFS = "#/definitions/"


def _block_ref(option: Any, blocks: Mapping[str, str]) -> str | None:
    """The block definition an anyOf option refers to, or None."""
    if isinstance(option, dict) and isinstance(option.get("$ref"), str):
        ref: str = option["$ref"]
        if ref.startswith(_DEFS) and ref[len(_DEFS) :] in blocks:
            return ref
    return None


def _only_blocks(options: list[Any], blocks: Mapping[str, str]) -> list[Any] | None:
    """``[string, <block>]`` -> ``[<block>]``; None when the options are not that union."""
    refs = [o for o in options if _block_ref(o, blocks)]
    rest = [o for o in options if not _block_ref(o, blocks)]
    if len(refs) == 1 and rest == [{"type": "string"}]:
        return refs
    return None


def block_definitions(definitions: Mapping[str, Any]) -> dict[str, str]:
    """Definition name -> block type slug, for the definitions that are block types."""
    return {
        name: str(d["block_type_slug"])
        for name, d in definitions.items()
        if isinstance(d, dict) and d.get("block_type_slug")
    }


def picker(prop: dict[str, Any], blocks: Mapping[str, str]) -> str | None:
    """Rewrite one parameter's schema (in place) so the form shows a block picker: a single
    block, or a list of blocks (optionally nullable). Returns the block type's slug, or None
    when the property is not a name-or-block union (left as it is)."""
    options = prop.get("anyOf")
    if not isinstance(options, list):
        return None
    single = _only_blocks(options, blocks)
    if single is not None:
        del prop["anyOf"]
        prop["$ref"] = single[0]["$ref"]
        return blocks[single[0]["$ref"][len(_DEFS) :]]
    for option in options:
        if isinstance(option, dict) and option.get("type") == "array":
            items = option.get("items")
            inner = items.get("anyOf") if isinstance(items, dict) else None
            picked = _only_blocks(inner, blocks) if isinstance(inner, list) else None
            if picked is not None:
                option["items"] = {"$ref": picked[0]["$ref"]}
                return blocks[picked[0]["$ref"][len(_DEFS) :]]
    return None


def apply(schema: Any) -> dict[str, str]:
    """Turn every name-or-block parameter of a deployment's parameter schema into a picker
    (in place); returns parameter name -> block type slug of those it turned."""
    blocks = block_definitions(schema.definitions or {})
    turned = {}
    for name, prop in schema.properties.items():
        if isinstance(prop, dict) and (slug := picker(prop, blocks)) is not None:
            turned[name] = slug
    return turned


def reference(slug: str, name: str, lookup: Lookup) -> tuple[dict[str, Any], bool]:
    """A block name as a parameter value the picker shows: (``{"$ref": ...}``, saved?)."""
    document_id = lookup(slug, name)
    if document_id is not None:
        return {"$ref": {"block_document_id": document_id}}, True
    return {"$ref": {"block_document_slug": f"{slug}/{name}"}}, False


def as_references(
    parameters: Mapping[str, Any], pickers: Mapping[str, str], lookup: Lookup
) -> tuple[dict[str, Any], list[str]]:
    """``parameters`` with each picked parameter's names as block references; and the names
    of blocks not saved yet (referenced by slug), for a warning."""
    out, unsaved = dict(parameters), []
    for name, slug in pickers.items():
        value = out.get(name)
        values = value if isinstance(value, list) else [value]
        refs = []
        for v in values:
            if not isinstance(v, str):
                refs.append(v)  # already a reference, or None
                continue
            ref, saved = reference(slug, v, lookup)
            refs.append(ref)
            if not saved:
                unsaved.append(f"{slug}/{v}")
        if name in out:
            out[name] = refs if isinstance(value, list) else refs[0]
    return out, unsaved


def saved_blocks_lookup() -> Lookup:
    """A lookup through the configured Prefect API (one read per block type, cached)."""
    from prefect.client.orchestration import get_client

    cache: dict[str, dict[str, str]] = {}

    def lookup(slug: str, name: str) -> str | None:
        if slug not in cache:
            with get_client(sync_client=True) as client:
                docs = client.read_block_documents_by_type(slug, include_secrets=False)
            cache[slug] = {str(d.name): str(d.id) for d in docs if d.name}
        return cache[slug].get(name)

    return lookup
