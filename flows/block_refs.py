"""Block-valued flow parameters: a site or a parent arrives as a saved block or as its name.

The run form offers the saved blocks as a picker: the deployment's schema types `site_block`
and `parent_block` as the block (deployments/block_pickers.py), the UI sends
``{"$ref": {"block_document_id": ...}}`` and Prefect loads the block before the flow starts.
Fleets, schedules, tests and the CLI pass names. Every flow turns either into the block's name
first, so locks, run names, events and artifacts key on one name per site.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeAlias

from prefect.blocks.core import Block

from blocks.edge_site import EdgeSite
from blocks.parent_registry import ParentRegistry
from model import names
from model.errors import InputError

SiteBlock: TypeAlias = str | EdgeSite
ParentBlock: TypeAlias = str | ParentRegistry


def block_name(value: object, what: str) -> str:
    """The block's name, checked by the block-name rule; InputError for anything else (an
    unsaved block, a value of another type), before any side effect."""
    if isinstance(value, Block):
        saved = value._block_document_name
        if not saved or value._is_anonymous:
            raise InputError(
                f"the {type(value).__name__} block given as {what} was never saved.",
                resource=what,
                fix="save the block, then choose it in the run form or pass its name.",
            )
        value = saved
    if not isinstance(value, str):
        raise InputError(
            f"{what} must be a saved block or a block name, not {type(value).__name__}.",
            resource=what,
            fix="choose the block in the run form, or pass its name.",
        )
    names.validate_block_name(value, what)
    return value


def block_names(values: Iterable[object] | None, what: str) -> list[str] | None:
    """:func:`block_name` of each value; None stays None (no selection)."""
    return None if values is None else [block_name(v, what) for v in values]


def shown_name(value: Any) -> Any:
    """What a run name shows for a parameter value: a block's name, a picked block's
    reference by its document id's first part (the name is not at hand before the run loads
    it), anything else as it is. Never raises: a run name must not fail a run."""
    if isinstance(value, Block):
        return value._block_document_name or type(value).__name__
    if isinstance(value, dict) and isinstance(value.get("$ref"), dict):
        ref = value["$ref"]
        slug = ref.get("block_document_slug")
        if isinstance(slug, str):
            return slug.rpartition("/")[2]
        return f"block-{str(ref.get('block_document_id', ''))[:8]}"
    if isinstance(value, list):
        return [shown_name(v) for v in value]
    return value
