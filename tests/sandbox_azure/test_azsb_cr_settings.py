"""The sandbox's ARM takes and returns a connected registry's runtime settings (logging, garbage
collection, notificationsList) as ARM does, and refuses invalid ones with nothing changed."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError


def _sync_token(mgmt: Any, info: dict[str, Any], name: str) -> Any:
    rg, reg = info["resource_group"], info["registry"]
    sm = mgmt.scope_maps.begin_create(
        rg,
        reg,
        name,
        {
            "properties": {
                "actions": [f"gateway/{name}/config/read", f"gateway/{name}/message/read"],
                "description": f"Created by connected registry sync token: {name}",
            }
        },
    ).result()
    return mgmt.tokens.begin_create(rg, reg, name, {"properties": {"scopeMapId": sm.id}}).result()


def _body(token_id: str, **props: Any) -> dict[str, Any]:
    return {
        "properties": {
            "mode": "ReadOnly",
            "parent": {
                "syncProperties": {
                    "tokenId": token_id,
                    "schedule": "* * * * *",
                    "messageTtl": "P2D",
                }
            },
            **props,
        }
    }


def _settings(cr: Any) -> tuple[Any, Any, Any]:
    return (
        (cr.logging.log_level, cr.logging.audit_log_status),
        (cr.garbage_collection.enabled, cr.garbage_collection.schedule),
        list(cr.notifications_list or []),
    )


def test_settings_are_stored_and_returned_as_sent(
    mgmt: Any, info: dict[str, Any], name: str
) -> None:
    rg, reg = info["resource_group"], info["registry"]
    token = _sync_token(mgmt, info, name)
    created = mgmt.connected_registries.begin_create(
        rg,
        reg,
        name,
        _body(
            token.id,
            logging={"logLevel": "debug", "auditLogStatus": "Enabled"},
            garbageCollection={"enabled": True, "schedule": "0 5 * * *"},
            notificationsList=["hello-world:*:*", "sample/repo/*:1.0:*"],
        ),
    ).result()
    # enum values come back in the service's spelling
    assert _settings(created) == (
        ("Debug", "Enabled"),
        (True, "0 5 * * *"),
        ["hello-world:*:*", "sample/repo/*:1.0:*"],
    )
    # a PATCH changes only the fields it names (what `az acr connected-registry update` relies on)
    updated = mgmt.connected_registries.begin_update(
        rg,
        reg,
        name,
        {
            "properties": {
                "logging": {"logLevel": "Warning"},
                "garbageCollection": {"enabled": False},
            }
        },
    ).result()
    assert _settings(updated) == (
        ("Warning", "Enabled"),
        (False, "0 5 * * *"),
        ["hello-world:*:*", "sample/repo/*:1.0:*"],
    )
    cleared = mgmt.connected_registries.begin_update(
        rg, reg, name, {"properties": {"notificationsList": []}}
    ).result()
    assert list(cleared.notifications_list or []) == []


def test_a_create_without_settings_gets_the_swagger_defaults_and_no_gc(
    mgmt: Any, info: dict[str, Any], name: str
) -> None:
    token = _sync_token(mgmt, info, name)
    cr = mgmt.connected_registries.begin_create(
        info["resource_group"], info["registry"], name, _body(token.id)
    ).result()
    # logging defaults are the swagger's; GC is off unless asked for (the stricter choice)
    assert _settings(cr) == (("Information", "Disabled"), (False, "0 0 * * *"), [])


@pytest.mark.parametrize(
    "props",
    [
        {"logging": {"logLevel": "Verbose"}},
        {"logging": {"logLevel": 3}},
        {"logging": {"auditLogStatus": "On"}},
        {"logging": "Debug"},
        {"garbageCollection": {"enabled": "sometimes"}},
        {"garbageCollection": {"schedule": "61 * * * *"}},
        {"garbageCollection": {"schedule": "every day"}},
        {"garbageCollection": True},
        {"notificationsList": "hello-world:*:*"},
        {"notificationsList": ["hello-world"]},
        {"notificationsList": [7]},
    ],
)
def test_invalid_settings_are_refused_on_create_and_on_patch_changing_nothing(
    mgmt: Any, info: dict[str, Any], name: str, props: dict[str, Any]
) -> None:
    rg, reg = info["resource_group"], info["registry"]
    token = _sync_token(mgmt, info, name)
    with pytest.raises(HttpResponseError) as refused:
        mgmt.connected_registries.begin_create(rg, reg, name, _body(token.id, **props)).result()
    assert refused.value.status_code == 400
    with pytest.raises(HttpResponseError):
        mgmt.connected_registries.get(rg, reg, name)  # nothing was created

    cr = mgmt.connected_registries.begin_create(rg, reg, name, _body(token.id)).result()
    before = _settings(cr)
    # a valid change beside the invalid one is not applied either
    patch = {"logging": {"logLevel": "Error"}, "notificationsList": ["a/*:*:*"], **props}
    with pytest.raises(HttpResponseError) as refused:
        mgmt.connected_registries.begin_update(rg, reg, name, {"properties": patch}).result()
    assert refused.value.status_code == 400
    assert _settings(mgmt.connected_registries.get(rg, reg, name)) == before
