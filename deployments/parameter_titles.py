"""Run-form titles for flow parameters, set on the schema a deployment stores.

Prefect titles every flow parameter with its Python name (``site_block``), ignoring a
``Field(title=...)`` in the signature, while the spec's fields beside them read "Dry run": the
run form mixed the two. The deployment's stored schema is what the UI renders, so the titles
are set there, in the block forms' rule (sentence case; acronyms and block types as named).
"""

from __future__ import annotations

from typing import Any

from blocks.forms import TITLE_WORDS

# Parameters whose name alone would not say what to enter.
TITLES = {
    "site_block": "Site (EdgeSite block)",
    "site_blocks": "Sites (EdgeSite block names)",
    "sites": "Sites (EdgeSite blocks)",
    "parent_block": "Parent registry (ParentRegistry block)",
    "spec": "Provision spec",
    "tag": "Site tag",
    "kind": "Fleet operation",
    "label": "Shard label",
    "lock_names": "Site lock names",
    "arm_facts": "ARM facts (filled in by fleet-status; leave empty)",
}
_WORDS = {w.lower(): w for w in TITLE_WORDS}


def title(name: str) -> str:
    """``expiry_warning_days`` -> ``Expiry warning days``; listed names as written above."""
    if name in TITLES:
        return TITLES[name]
    words = [_WORDS.get(w, w) for w in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def apply(schema: Any) -> None:
    """Title every top-level property of a deployment's parameter schema (in place)."""
    for name, prop in schema.properties.items():
        if isinstance(prop, dict) and prop.get("title") in (None, name):
            prop["title"] = title(name)
