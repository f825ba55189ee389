"""Names and scope-map actions: pure rules, checked directly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from model import names
from model.errors import InputError
from tasks.azure import actions


@pytest.mark.parametrize("name", ["site01", "abcde", "a" * 50, "0site9"])
def test_valid_cr_names(name: str) -> None:
    assert names.validate_cr_name(name) == name


@pytest.mark.parametrize("name", ["abcd", "a" * 51, "Site01", "site-01", "site_01", "", "sité1"])
def test_invalid_cr_names_say_why(name: str) -> None:
    with pytest.raises(InputError) as exc:
        names.validate_cr_name(name)
    assert "lowercase" in str(exc.value)


def test_sync_names_equal_cr_name_and_client_default() -> None:
    assert names.sync_scope_map_name("site01") == names.sync_token_name("site01") == "site01"
    assert names.client_token_name("site01") == "site01-client"
    assert names.client_token_name("site01", "pull-team-a") == "pull-team-a"


@pytest.mark.parametrize("bad", ["ab", "has_underscore", "x" * 51, "dot.ted"])
def test_client_token_name_must_fit_token_and_scope_map_patterns(bad: str) -> None:
    with pytest.raises(InputError):
        names.client_token_name("site01", bad)


def test_arm_ids_and_names_from_ids() -> None:
    sub = "5c1b7a3e-0000-4000-8000-0000000000b5"
    tid = names.token_id(sub, "edge-rg", "contosoedge", "site01")
    assert tid == (
        f"/subscriptions/{sub}/resourceGroups/edge-rg/providers/Microsoft.ContainerRegistry"
        "/registries/contosoedge/tokens/site01"
    )
    assert names.name_from_id(tid, "tokens") == "site01"
    assert names.same_id(tid, tid.upper())
    assert not names.same_id(tid, tid + "x")
    assert names.scope_map_id(sub, "edge-rg", "contosoedge", "m").endswith("/scopeMaps/m")
    with pytest.raises(InputError):
        names.name_from_id(tid, "scopeMaps")


def test_subscription_guid() -> None:
    names.validate_subscription_id("5c1b7a3e-0000-4000-8000-0000000000b5")
    for bad in ["", "not-a-guid", "5c1b7a3e00004000800000000000000b5"]:
        with pytest.raises(InputError):
            names.validate_subscription_id(bad)


def test_readonly_sync_actions_in_cli_order() -> None:
    got = actions.sync_actions("site01", ["b/two", "a/one", "a/one"], "readonly")
    assert got == [
        "repositories/a/one/content/read",
        "repositories/a/one/metadata/read",
        "repositories/b/two/content/read",
        "repositories/b/two/metadata/read",
        "gateway/site01/config/read",
        "gateway/site01/config/write",
        "gateway/site01/message/read",
        "gateway/site01/message/write",
    ]


def test_readwrite_has_five_actions_per_repository() -> None:
    got = actions.sync_actions("site01", ["r1", "r2", "r3"], "ReadWrite")
    assert got[:5] == [
        f"repositories/r1/{a}"
        for a in (
            "content/read",
            "content/write",
            "content/delete",
            "metadata/read",
            "metadata/write",
        )
    ]
    assert len(got) == 3 * 5 + 4


def test_mode_aliases_and_rejects() -> None:
    assert actions.normalize_mode("Mirror") == "ReadOnly"
    assert actions.normalize_mode("registry") == "ReadWrite"
    with pytest.raises(InputError):
        actions.normalize_mode("WriteOnly")


def test_client_actions_pull_and_catalog_only() -> None:
    assert actions.client_actions(["x/y"]) == [
        "repositories/x/y/content/read",
        "repositories/x/y/metadata/read",
    ]
    with pytest.raises(InputError):
        actions.client_actions([])


def test_repository_limit_500() -> None:
    repos = [f"r{i:03d}" for i in range(500)]
    assert len(actions.sync_actions("site01", repos, "ReadOnly")) == 1004
    with pytest.raises(InputError, match="500"):
        actions.sync_actions("site01", [*repos, "one-more"], "ReadOnly")
    with pytest.raises(InputError, match="500"):
        actions.client_actions([*repos, "one-more"])


def test_client_token_limit_20() -> None:
    actions.check_client_token_limit(20, "site01")
    with pytest.raises(InputError, match="20"):
        actions.check_client_token_limit(21, "site01")


@given(
    st.lists(st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}", fullmatch=True), max_size=30),
    st.sampled_from(["ReadOnly", "ReadWrite"]),
)
def test_sync_actions_are_lowercase_unique_and_sized(repos: list[str], mode: str) -> None:
    got = actions.sync_actions("site01", repos, mode)
    per = 2 if mode == "ReadOnly" else 5
    assert len(got) == len(set(repos)) * per + 4
    assert len(set(got)) == len(got)
    assert all(a == a.lower() for a in got)
    assert actions.same_actions(got, [a.upper() for a in reversed(got)])


def test_readable_repositories_inverts_client_actions() -> None:
    granted = actions.client_actions(["b/two", "a/one"]) + actions.gateway_actions("site01")
    granted += ["repositories/c/three/metadata/read"]  # catalog only: not pullable
    assert actions.readable_repositories(granted) == ["a/one", "b/two"]
