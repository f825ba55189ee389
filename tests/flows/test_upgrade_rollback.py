"""A chart upgrade that never becomes Ready, or whose connected registry never comes back
Online, is rolled back to the previous revision and the run fails saying so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.models import ProvisionSpec
from flows.provision_site import provision_site

pytestmark = pytest.mark.prefect
NS = REL = "connected-registry"


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    from blocks.edge_site import EdgeSite

    box = start(tmp_path_factory.mktemp("upgrade"), sites=1)
    try:
        name = box.site_blocks[0]
        block: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
        block.ready_timeout = 4  # the failing upgrade's wait: short, for the test
        block.save(name, overwrite=True)
        yield box
    finally:
        box.running.stop()


def _history(fsb: FlowSandbox) -> list[tuple[int, str, str]]:
    release = fsb.site().helm.releases[(NS, REL)]
    return [(r.revision, r.status, r.description) for r in release.revisions]


def _values(fsb: FlowSandbox) -> dict[str, Any]:
    values: dict[str, Any] = fsb.site().helm.releases[(NS, REL)].current.values
    return values


def _edit(fsb: FlowSandbox, **fields: Any) -> None:
    from blocks.edge_site import EdgeSite

    name = fsb.site_blocks[0]
    block: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
    for key, value in fields.items():
        setattr(block, key, value)
    block.save(name, overwrite=True)


def _assert_serving(fsb: FlowSandbox) -> None:
    """Ready, Online, and a real pull through the node's mirror works (site-status's canary)."""
    from flows.site_status import site_status

    cr = fsb.info["sites"][0]["name"]
    assert fsb.site().runtime.ready_release_for(NS, REL) is not None
    state = fsb.azure.resource("connectedRegistries", cr)["properties"]["connectionState"]
    assert state == "Online"
    status = site_status(fsb.site_blocks[0], fsb.parent_block)
    assert status["healthy"] is True, status
    checks = {c["check"]: c["status"] for c in status["checks"]}
    assert checks["canary pull"] == "ok" and checks[f"canary pull on {cr}"] == "ok", checks


def test_failing_values_upgrade_is_rolled_back_then_converges_once_disarmed(
    fsb: FlowSandbox,
) -> None:
    from model.errors import PermanentError

    site_name, node = fsb.site_blocks[0], fsb.site()
    first = provision_site(
        site_name, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True))
    )
    assert first["outcome"] == "converged", first
    good = node.helm_revision(NS, REL)
    good_values = json.dumps(_values(fsb), sort_keys=True)
    passwords = fsb.azure.resource("tokens", fsb.info["sites"][0]["name"])["properties"]

    _edit(fsb, chart_values={"logLevel": "debug"})
    node.knobs.fail_upgrade = True
    try:
        with pytest.raises(PermanentError) as err:
            provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec()))
        message = str(err.value)
        failed, back = good + 1, good + 2
        assert f"release {NS}/{REL}" in message, message
        assert "not ready after 4s" in message, message  # why
        assert f"rolled back from revision {failed} to revision {good}" in message, message
        assert f"now revision {back}" in message and "Fix:" in message, message
        for secret in fsb.azure.secrets():
            assert secret not in message
        # Helm's record: the bad revision superseded by the rollback, which is deployed.
        assert _history(fsb)[-2:] == [
            (failed, "superseded", "Upgrade complete"),
            (back, "deployed", f"Rollback to {good}"),
        ]
        # The previous revision's values (same connection string, no logLevel), Ready, Online.
        assert json.dumps(_values(fsb), sort_keys=True) == good_values
        assert "logLevel" not in _values(fsb)
        _assert_serving(fsb)
        # The sync credential was kept: no password was generated for the upgrade.
        after = fsb.azure.resource("tokens", fsb.info["sites"][0]["name"])["properties"]
        assert after["credentials"] == passwords["credentials"]
    finally:
        node.knobs.fail_upgrade = False

    again = provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec()))
    assert again["outcome"] == "converged", again
    assert node.helm_revision(NS, REL) == good + 3
    assert _values(fsb)["logLevel"] == "debug"
    _assert_serving(fsb)
    third = provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec()))
    assert third["outcome"] == "already converged" and third["writes"] == 0, third


def test_chart_version_upgrade_whose_registry_stays_offline_is_rolled_back(
    fsb: FlowSandbox,
) -> None:
    """The pods get Ready but the connected registry never comes back Online in ARM (held
    Offline by the Azure sandbox from the moment helm upgrades): rolled back, naming why."""
    from flows import checkpoints
    from model.errors import PermanentError

    site_name, node = fsb.site_blocks[0], fsb.site()
    cr = fsb.info["sites"][0]["name"]
    provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    good = node.helm_revision(NS, REL)
    version = node.helm.releases[(NS, REL)].current.chart_version

    def offline_on_upgrade(flow: str, site: str, step: str) -> None:
        if step == "sync-credential":  # the next write is the upgrade
            fsb.azure.set_connected_registry_state(cr, "Offline", code="PARENT_UNREACHABLE")

    _edit(fsb, chart_version="9.9.9")
    try:
        with checkpoints.on_step(offline_on_upgrade), pytest.raises(PermanentError) as err:
            provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec()))
    finally:
        fsb.azure.set_connected_registry_state(cr, "Online")
        _edit(fsb, chart_version=None)
    message = str(err.value)
    assert "not Online 4s after the upgrade (connectionState Offline)" in message, message
    assert f"rolled back from revision {good + 1} to revision {good}" in message, message
    assert node.helm.releases[(NS, REL)].current.chart_version == version
    assert _history(fsb)[-1] == (good + 2, "deployed", f"Rollback to {good}")
    _assert_serving(fsb)


def test_failed_fresh_install_is_uninstalled_because_this_run_created_it(
    fsb: FlowSandbox,
) -> None:
    """A release this run installed, whose registry never comes Online: uninstalled, said so."""
    from flows import checkpoints
    from model.errors import PermanentError

    site_name, node = fsb.site_blocks[0], fsb.site()
    cr = fsb.info["sites"][0]["name"]
    other = "cr-fresh"
    _edit(fsb, release_name=other)

    def offline(flow: str, site: str, step: str) -> None:
        if step == "sync-credential":
            fsb.azure.set_connected_registry_state(cr, "Offline", code="PARENT_UNREACHABLE")

    try:
        with checkpoints.on_step(offline), pytest.raises(PermanentError) as err:
            provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec()))
    finally:
        fsb.azure.set_connected_registry_state(cr, "Online")
        _edit(fsb, release_name=REL)
    message = str(err.value)
    assert f"release {NS}/{other}" in message and "created by this run" in message, message
    assert "uninstalled it" in message, message
    assert (NS, other) not in node.helm.releases
    assert (NS, REL) in node.helm.releases  # the other release was not touched
