"""bench.screenshots: the pure parts (pages, routes, URLs, Chromium's arguments, README);
taking the pictures needs Chromium and a server and is the script's own run."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote, urlsplit

from bench.screenshots import (
    COMMAND,
    DETERMINISTIC,
    Page,
    chromium_argv,
    page_path,
    page_url,
    pages,
    readme,
    site_artifact_key,
)
from flows.report import artifact_key


def test_routes_are_the_prefect_ui_pages() -> None:
    assert page_path("deployment-run", "d1") == "/deployments/deployment/d1/run"
    assert page_path("block-create", "edge-site") == "/blocks/catalog/edge-site/create"
    assert page_path("block-edit", "b1") == "/blocks/block/b1/edit"
    assert page_path("artifact", "a1") == "/artifacts/artifact/a1"
    assert page_path("progress", "a2") == "/artifacts/artifact/a2"


def test_url_joins_the_ui_and_the_route() -> None:
    assert page_url("http://127.0.0.1:4321/", "/blocks/block/b1/edit") == (
        "http://127.0.0.1:4321/blocks/block/b1/edit"
    )
    assert page_url("http://h:1", "/x") == "http://h:1/x"


def test_prefilled_parameters_are_uri_encoded_json() -> None:
    params = {"site_block": "plant01", "spec": {"namespaces": ["samples", "edge/apps"]}}
    url = page_url("http://h:1", "/deployments/deployment/d/run", params)
    parts = urlsplit(url)
    assert parts.path == "/deployments/deployment/d/run"
    key, _, value = parts.query.partition("=")
    assert key == "parameters"
    # One encoded value: no raw separators the router would split on.
    assert not set(value) & set('&=/?#{}" ')
    assert json.loads(unquote(value)) == params  # as the UI's JSON.parse(decodeURIComponent)


def test_page_list_covers_the_issue_and_names_distinct_files() -> None:
    got = pages("sandbox-site-1")
    files = [p.file for p in got]
    assert len(files) == len(set(files))
    assert all(f.endswith(".png") and "/" not in f for f in files)
    kinds = {(p.kind, p.ref) for p in got}
    assert ("deployment-run", "provision-site/provision-site") in kinds
    for slug in ("edge-site", "parent-registry"):
        assert ("block-create", slug) in kinds
    assert ("block-edit", "edge-site/sandbox-site-1") in kinds
    assert ("block-edit", "parent-registry/parent-registry") in kinds
    for key in (
        "fleet-status-overview",
        "provision-plan-sandbox-site-1",
        "site-status-sandbox-site-1",
    ):
        assert ("artifact", key) in kinds
    assert ("progress", "fleet-status") in kinds
    assert all(p.height >= 1400 for p in got)
    prefilled = [p for p in got if p.parameters is not None]
    assert prefilled and all(p.kind == "deployment-run" for p in prefilled)
    assert prefilled[0].parameters is not None
    # picked as the form's block picker does: a reference, by slug without an id at hand
    assert prefilled[0].parameters["site_block"] == {
        "$ref": {"block_document_slug": "edge-site/sandbox-site-1"}
    }
    [by_id] = [p for p in pages("sandbox-site-1", "d0c-1d") if p.parameters is not None]
    assert by_id.parameters is not None
    assert by_id.parameters["site_block"] == {"$ref": {"block_document_id": "d0c-1d"}}


def test_site_artifact_keys_match_the_flows() -> None:
    for site in ("site1", "Plant_01", "edge.north-2"):
        assert site_artifact_key("site-status", site) == artifact_key("site-status", site)


def test_chromium_argv() -> None:
    argv = chromium_argv(
        "http://h:1/x", Path("/o/a.png"), profile=Path("/p"), height=3000, chromium="/c"
    )
    assert argv[0] == "/c"
    assert argv[-1] == "http://h:1/x"
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        DETERMINISTIC,
        "--user-data-dir=/p",
        "--window-size=1600,3000",
        "--virtual-time-budget=20000",
        "--screenshot=/o/a.png",
    ):
        assert flag in argv


def test_readme_has_a_line_per_picture_and_the_command() -> None:
    shots = [
        Page("a.png", "first page", "artifact", "k"),
        Page("b.png", "second page", "block-create", "edge-site"),
    ]
    text = readme(shots)
    assert COMMAND in text
    assert "- [a.png](a.png): first page" in text
    assert "- [b.png](b.png): second page" in text
