"""Which stored spec applies to a site, the shrink decision, and the spec block's fields."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.site_spec import EdgeSiteSpec
from flows.models import ProvisionSpec
from model.errors import InputError
from model.scope_shrink import decide, removals
from model.site_spec import StoredSpec, covered_sites, resolve, unknown_sites


def _spec(name: str, *, sites: tuple[str, ...] = (), tags: tuple[str, ...] = (), **body: Any):
    return StoredSpec(name, sites, tags, {"namespaces": ["samples"], **body})


def test_a_spec_naming_the_site_wins_over_specs_by_tag() -> None:
    specs = [
        _spec("north", tags=("north",), namespaces=["edge/apps"]),
        _spec("plant01-only", sites=("plant01",)),
    ]
    got = resolve("plant01", ["north"], specs)
    assert got.spec.name == "plant01-only" and "names the site" in got.why
    other = resolve("plant02", ["north"], specs)
    assert other.spec.name == "north" and "'north'" in other.why


def test_two_specs_by_tag_that_differ_are_an_error_naming_both() -> None:
    specs = [
        _spec("north", tags=("north",)),
        _spec("lines", tags=("line-a",), namespaces=["library"]),
    ]
    with pytest.raises(InputError) as err:
        resolve("plant01", ["north", "line-a"], specs)
    text = str(err.value)
    assert "north" in text and "lines" in text and "namespaces" in text
    assert err.value.fix and "plant01" in err.value.fix  # type: ignore[attr-defined]


def test_two_specs_by_tag_with_the_same_contents_agree() -> None:
    specs = [_spec("b", tags=("north",)), _spec("a", tags=("line-a",))]
    assert resolve("plant01", ["north", "line-a"], specs).spec.name == "a"


def test_a_site_named_by_two_specs_is_an_error() -> None:
    specs = [_spec("one", sites=("plant01",)), _spec("two", sites=("plant01",))]
    with pytest.raises(InputError, match="one, two"):
        resolve("plant01", [], specs)


def test_no_spec_is_an_error_naming_the_site_and_the_fix() -> None:
    with pytest.raises(InputError) as err:
        resolve("plant01", ["south"], [_spec("north", tags=("north",))])
    assert "plant01" in str(err.value) and "south" in str(err.value)
    fix = err.value.fix  # type: ignore[attr-defined]
    assert "edge-site-spec" in fix and "spec" in fix


def test_covered_and_unknown_sites() -> None:
    specs = [_spec("n", tags=("north",)), _spec("p", sites=("plant09", "ghost"))]
    sites = {"plant01": ["north"], "plant02": [], "plant09": ["south"]}
    assert covered_sites(sites, specs) == ["plant01", "plant09"]
    assert unknown_sites(sites, specs) == ["ghost"]


def test_shrink_keeps_what_is_not_approved_and_adds_what_is_new() -> None:
    current = ["samples/a", "samples/b", "edge/apps/x"]
    desired = ["samples/a", "samples/b", "samples/c"]
    assert removals(current, desired) == ("edge/apps/x",)
    kept = decide(current, desired)
    assert kept.kept == ("edge/apps/x",) and kept.removed == () and kept.added == ("samples/c",)
    assert set(kept.repositories) == {"samples/a", "samples/b", "samples/c", "edge/apps/x"}
    gone = decide(current, desired, approved=["edge/apps/x"])
    assert gone.removed == ("edge/apps/x",) and gone.kept == ()
    assert set(gone.repositories) == set(desired)
    assert decide(None, desired).repositories == tuple(sorted(desired))  # a new site
    # the service lower-cases actions: a case difference is no removal
    assert removals(["Samples/A"], ["samples/a"]) == ()


def test_spec_block_fields_mirror_the_provision_spec() -> None:
    block = EdgeSiteSpec(tags=["north"], namespaces=["samples/"])
    fields = block.provision_fields()
    assert set(fields) == set(ProvisionSpec.model_fields) - {"dry_run"}
    assert fields["namespaces"] == ["samples"]
    assert ProvisionSpec(**fields).namespaces == ["samples"]
    for name, info in EdgeSiteSpec.model_fields.items():
        text = info.description or ""
        assert info.title and ("Default" in text or "Required" in text), name
        assert "Example" in text, name


def test_spec_block_refuses_what_the_form_refuses() -> None:
    with pytest.raises(ValueError, match="applies to no site"):
        EdgeSiteSpec(namespaces=["samples"])
    with pytest.raises(ValueError):
        EdgeSiteSpec(tags=["north"], namespaces=["Bad Name"])
    with pytest.raises(ValueError):
        EdgeSiteSpec(tags=["North_1"], namespaces=["samples"])
    with pytest.raises(ValueError):
        EdgeSiteSpec(tags=["north"], namespaces=["samples"], sync_window="PT1M")
