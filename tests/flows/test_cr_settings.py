"""provision-site and the operator's connected-registry settings: a fresh site gets the az CLI's
defaults (garbage collection on), debug logging set by the operator survives a run that does
not state a log level, and a run that states one converges it, naming the change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from sandbox.testing import mgmt_client

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("cr-settings"), sites=1)
    try:
        yield box
    finally:
        box.running.stop()


def _settings(fsb: FlowSandbox, cr: str) -> dict[str, Any]:
    props = fsb.azure.resource("connectedRegistries", cr)["properties"]
    return {k: props.get(k) for k in ("logging", "garbageCollection", "notificationsList")}


def _cr_row(result: dict[str, Any]) -> dict[str, Any]:
    rows = [s for s in result["steps"] if s["step"] == "connected-registry"]
    assert len(rows) == 1, result["steps"]
    return rows[0]


def _cr_writes(fsb: FlowSandbox, cr: str) -> list[dict[str, Any]]:
    return [w for w in fsb.arm_writes() if f"/connectedregistries/{cr}" in str(w).lower()]


def test_operator_settings_kept_unless_stated(fsb: FlowSandbox) -> None:
    site, cr = fsb.site_blocks[0], fsb.info["sites"][0]["name"]

    fresh = provision_site(site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    assert fresh["outcome"] == "converged", fresh
    assert _cr_row(fresh)["action"] == "create"
    # the az CLI's defaults for a new connected registry: it enables garbage collection
    assert _settings(fsb, cr) == {
        "logging": {"logLevel": "Information", "auditLogStatus": "Disabled"},
        "garbageCollection": {"enabled": True, "schedule": "0 0 * * *"},
        "notificationsList": [],
    }

    # the operator turns on debug logging to troubleshoot (through the SDK, as `az` does)
    mgmt = mgmt_client(fsb.info)
    mgmt.connected_registries.begin_update(
        fsb.info["resource_group"],
        fsb.info["registry"],
        cr,
        {"properties": {"logging": {"logLevel": "Debug"}}},
    ).result()

    fsb.azure.clear_requests()
    unstated = provision_site(site, fsb.parent_block, ProvisionSpec(**spec()))
    assert unstated["outcome"] == "already converged", unstated
    assert _cr_row(unstated)["action"] == "none"
    assert _cr_writes(fsb, cr) == []
    assert _settings(fsb, cr)["logging"] == {"logLevel": "Debug", "auditLogStatus": "Disabled"}

    # the dry run of a run that states a log level plans exactly that change, naming it
    fsb.azure.clear_requests()
    stated_spec = spec(log_level="Information", gc_schedule="0 3 * * 0")
    plan = provision_site(site, fsb.parent_block, ProvisionSpec(**stated_spec, dry_run=True))
    row = _cr_row(plan)
    assert row["action"] == "update" and row["planned"]
    assert "log level Debug -> Information" in row["message"]
    assert "garbage collection schedule 0 0 * * * -> 0 3 * * 0" in row["message"]
    assert fsb.arm_writes() == []

    stated = provision_site(site, fsb.parent_block, ProvisionSpec(**stated_spec))
    assert stated["outcome"] == "converged", stated
    assert _cr_row(stated)["message"] == row["message"]
    assert len(_cr_writes(fsb, cr)) == 1
    assert _settings(fsb, cr) == {
        "logging": {"logLevel": "Information", "auditLogStatus": "Disabled"},
        "garbageCollection": {"enabled": True, "schedule": "0 3 * * 0"},
        "notificationsList": [],
    }

    fsb.azure.clear_requests()
    again = provision_site(site, fsb.parent_block, ProvisionSpec(**stated_spec))
    assert again["outcome"] == "already converged", again
    assert fsb.arm_writes() == []


def test_bad_settings_are_refused_before_any_side_effect(fsb: FlowSandbox) -> None:
    from prefect.exceptions import ParameterTypeError

    site = fsb.site_blocks[0]
    fsb.azure.clear_requests()
    for bad, field in (
        ({"log_level": "Verbose"}, "log_level"),
        ({"gc_schedule": "0 25 * * *"}, "gc_schedule"),
        ({"notifications": ["hello-world"]}, "notifications"),
    ):
        # a raw dict as the UI/API would send it: Prefect validates it against the model first
        with pytest.raises(ParameterTypeError, match=field):
            provision_site(site, fsb.parent_block, spec(**bad))  # type: ignore[call-overload]
    assert fsb.azure.requests() == []
