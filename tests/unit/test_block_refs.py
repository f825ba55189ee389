"""flows.block_refs: a site or parent parameter arrives as a picked (saved) block or as a name;
either way the flow goes on with the block's name, and nothing else gets through."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from blocks.edge_site import EdgeSite
from flows.block_refs import block_name, block_names, shown_name
from model.errors import InputError


def _site() -> EdgeSite:
    return EdgeSite(name="plant01", ssh_host="10.0.0.5", ssh_private_key=SecretStr("k"))


def test_a_name_passes_the_block_name_rule() -> None:
    assert block_name("plant01", "site_block") == "plant01"
    with pytest.raises(InputError, match="site_block"):
        block_name("Bad_Name", "site_block")


def test_a_picked_block_gives_its_saved_name() -> None:
    site = _site()
    site._block_document_name = "plant01-block"
    site._is_anonymous = False
    assert block_name(site, "site_block") == "plant01-block"
    assert block_names([site, "plant02"], "sites") == ["plant01-block", "plant02"]
    assert block_names(None, "sites") is None


def test_an_unsaved_block_or_another_value_is_refused_naming_the_fix() -> None:
    with pytest.raises(InputError, match="never saved") as caught:
        block_name(_site(), "site_block")
    assert "save the block" in str(caught.value.fix)
    with pytest.raises(InputError, match="not dict"):
        block_name({"name": "plant01"}, "site_block")


def test_run_names_show_names_for_blocks_and_references() -> None:
    site = _site()
    site._block_document_name = "plant01"
    assert shown_name(site) == "plant01"
    assert shown_name({"$ref": {"block_document_slug": "edge-site/plant02"}}) == "plant02"
    assert shown_name({"$ref": {"block_document_id": "0f1e2d3c-aaaa"}}) == "block-0f1e2d3c"
    assert shown_name(["a", {"$ref": {"block_document_slug": "edge-site/b"}}]) == ["a", "b"]
    assert shown_name(3) == 3
