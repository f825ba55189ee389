"""Effective-permission rules as ARM evaluates them: wildcards, notActions, data actions."""

from __future__ import annotations

from model import rbac

P = "Microsoft.ContainerRegistry/registries"
CONTRIBUTOR = [
    {
        "actions": ["*"],
        "notActions": [
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ],
        "dataActions": [],
        "notDataActions": [],
    }
]
READER = [{"actions": ["*/read"], "notActions": [], "dataActions": [], "notDataActions": []}]
ACRPULL = [{"actions": [f"{P}/pull/read"], "notActions": []}]


def test_contributor_has_everything_provisioning_needs() -> None:
    result = rbac.check(CONTRIBUTOR)
    assert result.ok, result.message()


def test_reader_misses_every_write_and_names_them() -> None:
    result = rbac.check(READER)
    assert not result.ok
    assert f"{P}/scopeMaps/write" in result.missing
    assert f"{P}/generateCredentials/action" in result.missing
    assert f"{P}/scopeMaps/read" not in result.missing
    assert result.catalog_ok  # "*/read" includes pull/read: Reader can list and pull
    assert "missing actions" in result.message()


def test_reader_wildcard_read_matches_pull_read() -> None:
    # "*/read" matches ".../pull/read": ARM wildcards span slashes.
    assert rbac.granted(READER, f"{P}/pull/read")


def test_acrpull_alone_can_list_but_not_write() -> None:
    result = rbac.check(ACRPULL)
    assert result.catalog_ok
    assert set(result.missing) == set(rbac.PROVISION_ACTIONS)


def test_not_actions_exclude_within_the_same_entry_only() -> None:
    perms = [
        {"actions": [f"{P}/*"], "notActions": [f"{P}/tokens/write"]},
        {"actions": [f"{P}/tokens/*"], "notActions": []},
    ]
    assert rbac.granted(perms, f"{P}/tokens/write")  # the second entry grants it
    assert not rbac.granted(perms[:1], f"{P}/tokens/write")


def test_matching_is_case_insensitive_and_whole_string() -> None:
    perms = [{"actions": ["microsoft.containerregistry/registries/READ"]}]
    assert rbac.granted(perms, f"{P}/read")
    assert not rbac.granted(perms, f"{P}/read/extra")


def test_catalog_data_action_counts_in_abac_mode() -> None:
    perms = [{"actions": [], "dataActions": [f"{P}/catalog/read"]}]
    assert rbac.check(perms, required=()).ok
