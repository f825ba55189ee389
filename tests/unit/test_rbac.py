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


def _readme_roles() -> dict[str, dict[str, object]]:
    import json
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = text.split("### 1. The parent registry and its principal", 1)[1].split("### 2.")[0]
    blocks = re.findall(r"```json\n(.*?)```", section, re.DOTALL)
    assert blocks, "README's RBAC section has no custom-role JSON"
    roles = [json.loads(b) for b in blocks]
    return {str(r["Name"]): r for r in roles}


def _readme_custom_role() -> dict[str, object]:
    return _readme_roles()["acr-edge-operator"]


def test_readme_teardown_role_adds_exactly_the_deletes() -> None:
    role = _readme_roles()["acr-edge-teardown"]
    actions = role["Actions"]
    assert isinstance(actions, list)
    assert actions == list(rbac.TEARDOWN_ONLY_ACTIONS)
    assert all(a.endswith(("/delete", "/action", "/operationStatuses/read")) for a in actions)
    assert role["NotActions"] == []
    # The operator role deletes nothing: provisioning never needs to.
    assert not any(a.endswith("/delete") for a in rbac.PROVISION_ACTIONS)
    both = [{"actions": [*_readme_custom_role()["Actions"], *actions]}]  # type: ignore[misc]
    assert rbac.check(both, rbac.TEARDOWN_ACTIONS, catalog=False).ok
    assert not rbac.check(
        [{"actions": _readme_custom_role()["Actions"]}], rbac.TEARDOWN_ACTIONS, catalog=False
    ).ok


def test_the_sandbox_teardown_role_is_readmes() -> None:
    from sandbox.azure.rbac import README_TEARDOWN_ACTIONS

    assert list(README_TEARDOWN_ACTIONS) == _readme_roles()["acr-edge-teardown"]["Actions"]


def test_readme_custom_role_lists_exactly_the_checked_actions() -> None:
    role = _readme_custom_role()
    actions = role["Actions"]
    assert isinstance(actions, list)
    assert actions == list(rbac.PROVISION_ACTIONS)
    assert not any("*" in a for a in actions)  # least privilege: no wildcards
    assert role["NotActions"] == []


def test_operation_status_reads_for_every_polled_resource_are_required() -> None:
    for polled in ("", "tokens/", "scopeMaps/"):
        assert f"{P}/{polled}operationStatuses/read" in rbac.PROVISION_ACTIONS


def test_the_readme_role_alone_passes_except_for_the_catalog() -> None:
    actions = _readme_custom_role()["Actions"]
    assert isinstance(actions, list)
    result = rbac.check([{"actions": actions, "notActions": []}])
    assert result.missing == () and not result.catalog_ok
    assert rbac.check([{"actions": [*actions, f"{P}/pull/read"]}]).ok


def test_the_sandbox_custom_role_is_readmes() -> None:
    from sandbox.azure.rbac import README_ACTIONS

    assert list(README_ACTIONS) == _readme_custom_role()["Actions"]
