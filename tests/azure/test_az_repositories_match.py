"""Namespace matching: exact path-segment prefixes, sorted and deduplicated."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model.errors import InputError
from tasks.azure.repositories import in_namespace, match_namespaces

REPOS = ["samples", "samples/a", "samples/a/b", "samplesx/a", "sample", "other/x", "edge/apps/y"]


def test_segment_prefix_only() -> None:
    assert match_namespaces(REPOS, ["samples"]) == ["samples", "samples/a", "samples/a/b"]
    assert match_namespaces(REPOS, ["samples/a"]) == ["samples/a", "samples/a/b"]
    assert match_namespaces(REPOS, ["sample"]) == ["sample"]


def test_union_sorted_deduplicated() -> None:
    got = match_namespaces(REPOS, ["samples/a", "samples", "/other/", "samples"])
    assert got == ["other/x", "samples", "samples/a", "samples/a/b"]


def test_namespace_matching_nothing_is_an_error_unless_allowed() -> None:
    with pytest.raises(InputError, match="missing"):
        match_namespaces(REPOS, ["samples", "missing"])
    assert match_namespaces(REPOS, ["samples", "missing"], allow_empty=True)[0] == "samples"
    assert match_namespaces(REPOS, ["missing"], allow_empty=True) == []


@pytest.mark.parametrize("bad", ["", "UPPER", "a//b", "a b", "-x"])
def test_bad_namespaces_refused(bad: str) -> None:
    with pytest.raises(InputError):
        match_namespaces(REPOS, [bad])


def test_no_namespaces_refused() -> None:
    with pytest.raises(InputError):
        match_namespaces(REPOS, [])


_seg = st.from_regex(r"[a-z]{1,3}", fullmatch=True)
_repo = st.lists(_seg, min_size=1, max_size=3).map("/".join)


@given(st.lists(_repo, max_size=40), _repo)
def test_match_agrees_with_segment_definition(repos: list[str], ns: str) -> None:
    got = match_namespaces(repos, [ns], allow_empty=True)
    assert got == sorted(set(got))
    for repo in set(repos):
        segs, nsegs = repo.split("/"), ns.split("/")
        assert (repo in got) == (segs[: len(nsegs)] == nsegs)
        assert in_namespace(repo, ns) == (repo in got)
