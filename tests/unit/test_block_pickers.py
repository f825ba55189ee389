"""deployments.block_pickers on the flows' own parameter schemas (as Prefect builds them for a
deployment): the site and parent parameters become block pickers, nothing else changes, and
block names in defaults become references."""

from __future__ import annotations

import copy
from typing import Any

from prefect.utilities.callables import parameter_schema

from deployments import block_pickers
from flows.fleet import fleet_status
from flows.fleet_shard import fleet_shard
from flows.provision_site import provision_site


def _schema(flow: Any) -> Any:
    return parameter_schema(flow.fn)


def test_site_and_parent_become_pickers_of_their_block_types() -> None:
    schema = _schema(provision_site)
    before = copy.deepcopy(schema.properties)
    assert block_pickers.apply(schema) == {
        "site_block": "edge-site",
        "parent_block": "parent-registry",
    }
    props = schema.properties
    assert props["site_block"]["$ref"] == "#/definitions/EdgeSite"
    assert "anyOf" not in props["site_block"]  # no free-text branch left
    assert props["parent_block"]["$ref"] == "#/definitions/ParentRegistry"
    assert schema.definitions["EdgeSite"]["block_type_slug"] == "edge-site"  # what the UI keys on
    for name in ("spec", "dry_run"):
        assert props[name] == before[name]
    assert props["site_block"]["description"] == before["site_block"]["description"]


def test_a_list_of_sites_becomes_a_list_of_pickers_and_stays_optional() -> None:
    schema = _schema(fleet_status)
    assert block_pickers.apply(schema) == {"parent_block": "parent-registry", "sites": "edge-site"}
    options = schema.properties["sites"]["anyOf"]
    assert {"type": "array", "items": {"$ref": "#/definitions/EdgeSite"}} in options
    assert {"type": "null"} in options
    assert schema.properties["tag"]["anyOf"] == [{"type": "string"}, {"type": "null"}]


def test_the_internal_shard_flow_keeps_its_names() -> None:
    schema = _schema(fleet_shard)
    before = copy.deepcopy(schema.properties)
    assert block_pickers.apply(schema) == {}
    assert schema.properties == before


def test_names_in_defaults_become_references_by_id_or_by_slug() -> None:
    saved = {("parent-registry", "parent-registry"): "11111111-2222-3333-4444-555555555555"}

    def lookup(slug: str, name: str) -> str | None:
        return saved.get((slug, name))

    params, unsaved = block_pickers.as_references(
        {"parent_block": "parent-registry", "sites": ["plant01"], "tag": None},
        {"parent_block": "parent-registry", "sites": "edge-site", "site_block": "edge-site"},
        lookup,
    )
    assert params == {
        "parent_block": {
            "$ref": {"block_document_id": saved["parent-registry", "parent-registry"]}
        },
        "sites": [{"$ref": {"block_document_slug": "edge-site/plant01"}}],
        "tag": None,
    }
    assert unsaved == ["edge-site/plant01"]  # site_block had no default: nothing added
    again, none = block_pickers.as_references(params, {"parent_block": "parent-registry"}, lookup)
    assert again == params and none == []  # references stay as they are
