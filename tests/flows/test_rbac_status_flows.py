"""Issue 8, product side: permissions preflight, failed LROs, the status vocabulary, propagation.

Real flows against the strict sandbox: principals with the README custom role, Reader or
AcrPull alone; an LRO that ends Failed; connected registries held Unhealthy/Syncing; a sync
token disabled; a propagation delay for new passwords and client tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, parent_as, spec, start

from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from model import names, rbac
from model.errors import PermanentError
from sandbox.testing import mgmt_client

pytestmark = pytest.mark.prefect

CR_ACTIONS = "Microsoft.ContainerRegistry/registries"
EXACT_ROLE = "acr-edge-exact-preflight"
DOCUMENTED_CODES = ("DISK_STORAGE_FULL", "DISK_PERMISSION_DENIED", "DISK_ERROR")


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    # No propagation delay unless a test sets one (the propagation test does).
    box = start(tmp_path_factory.mktemp("rbac-status"), sites=2, propagation_delay=0)
    try:
        yield box
    finally:
        box.running.stop()


def cr_name(fsb: FlowSandbox, i: int) -> str:
    return str(fsb.info["sites"][i]["name"])


@pytest.fixture(scope="module")
def provisioned(fsb: FlowSandbox) -> str:
    """Site 1 provisioned (a converged no-op if an earlier test did it); its block name."""
    site = fsb.site_blocks[0]
    done = provision_site(site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    assert done["outcome"] in ("converged", "already converged"), done
    return site


def test_the_exact_custom_role_provisions_and_rotates(fsb: FlowSandbox) -> None:
    from flows.rotate_client_token import rotate_client_token

    fsb.azure.define_role(EXACT_ROLE, list(rbac.PROVISION_ACTIONS), [f"{CR_ACTIONS}/catalog/read"])
    parent = parent_as(fsb, [EXACT_ROLE])
    site = fsb.site_blocks[0]
    fsb.azure.clear_requests()
    first = provision_site(site, parent, ProvisionSpec(**spec(enable_data_endpoint=True)))
    assert first["outcome"] == "converged", first
    assert first["steps"][0]["step"] == "preflight-permissions"
    assert "required actions" in first["steps"][0]["message"]
    refused = [r for r in fsb.azure.requests("arm") if r.get("status") == 403]
    assert refused == []
    rotated = rotate_client_token(site, parent, force=True)
    assert rotated["outcome"].startswith("rotated"), rotated
    again = provision_site(site, parent, ProvisionSpec(**spec()))
    assert again["outcome"] == "already converged" and again["writes"] == 0, again


@pytest.mark.parametrize(
    ("roles", "catalog_ok"),
    [
        (["Reader"], True),
        (["AcrPull"], True),
        (["Container Registry Repository Catalog Lister"], True),
    ],
)
def test_a_principal_without_the_actions_is_refused_before_any_write(
    fsb: FlowSandbox, roles: list[str], catalog_ok: bool
) -> None:
    parent = parent_as(fsb, roles)
    fsb.azure.clear_requests()
    with pytest.raises(PermanentError) as err:
        provision_site(fsb.site_blocks[1], parent, ProvisionSpec(**spec()))
    text = str(err.value)
    assert fsb.arm_writes() == []
    missing = [a for a in rbac.PROVISION_ACTIONS if not a.endswith("/read") or roles != ["Reader"]]
    for action in missing:
        assert action in text, (action, text)
    assert "Fix:" in text and "README" in text
    assert "Traceback" not in text and "\n" not in text
    assert ("cannot list repositories" in text) is not catalog_ok


def test_the_dry_run_shows_the_permissions_blocker_row(fsb: FlowSandbox) -> None:
    from prefect.artifacts import Artifact

    parent = parent_as(fsb, ["Reader"])
    fsb.azure.clear_requests()
    with pytest.raises(PermanentError, match="scopeMaps/write"):
        provision_site(fsb.site_blocks[1], parent, ProvisionSpec(**spec(dry_run=True)))
    assert fsb.arm_writes() == []
    artifact: Any = Artifact.get(f"provision-plan-{fsb.site_blocks[1]}")
    assert artifact is not None
    # The blocker leads the plan (tests/flows/test_plan_runs.py: the run ends Blocked).
    text = str(artifact.data)
    assert next(s for s in text.splitlines() if s.startswith("## ")) == "## Blocked", text
    assert "preflight-permissions" in text and f"{CR_ACTIONS}/tokens/write" in text


def test_an_lro_that_ends_failed_is_one_permanent_line(fsb: FlowSandbox) -> None:
    client = f"{cr_name(fsb, 1)}-client"
    fsb.azure.fail_lro(
        f"/tokens/{client}$",
        method="PUT",
        code="TokenProvisioningFailed",
        message="The token could not be provisioned.\nPlease retry.",
    )
    with pytest.raises(PermanentError) as err:
        provision_site(
            fsb.site_blocks[1],
            fsb.parent_block,
            ProvisionSpec(**spec(enable_data_endpoint=True)),
        )
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    assert f"tokens/{client}" in text and "TokenProvisioningFailed" in text
    assert "ended Failed" in text
    fsb.azure.clear_lro_outcomes()


def test_slow_propagation_is_waited_for_by_canary_and_rotation(
    fsb: FlowSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from flows.rotate_client_token import rotate_client_token

    fsb.azure.set_knobs(propagation_delay=4)
    caplog.set_level(logging.INFO, logger="acr_edge.canary")
    try:
        site = fsb.site_blocks[1]
        done = provision_site(
            site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True))
        )
        assert done["outcome"] == "converged", done
        assert any(s["step"] == "canary" for s in done["steps"]), done
        retried = [r.getMessage() for r in caplog.records if "canary attempt" in r.getMessage()]
        assert retried, "the canary pulled at once: the propagation wait was not exercised"
        assert all("not propagated" in m or "unauthorized" in m for m in retried), retried
        caplog.clear()
        rotated = rotate_client_token(site, fsb.parent_block, force=True)
        assert rotated["outcome"].startswith("rotated"), rotated
    finally:
        fsb.azure.set_knobs(propagation_delay=0)


@pytest.mark.parametrize("code", DOCUMENTED_CODES)
def test_an_unhealthy_site_fails_status_with_the_codes_fix(
    fsb: FlowSandbox, provisioned: str, code: str
) -> None:
    from flows.health import fix_for
    from flows.site_status import SiteUnhealthy, site_status

    cr = cr_name(fsb, 0)
    fsb.azure.set_connected_registry_state(cr, "Unhealthy", code=code)
    try:
        with pytest.raises(SiteUnhealthy) as err:
            site_status(provisioned, fsb.parent_block)
    finally:
        fsb.azure.set_connected_registry_state(cr, "Online")
    text = str(err.value)
    assert "connectionState: Unhealthy" in text
    assert f"statusDetails {code}" in text and fix_for(code) in text
    assert "sync result: Failed" in text


def test_a_syncing_site_is_reported_as_syncing(fsb: FlowSandbox, provisioned: str) -> None:
    from flows.site_status import site_status

    cr = cr_name(fsb, 0)
    fsb.azure.set_connected_registry_state(cr, "Syncing")
    try:
        facts = site_status(provisioned, fsb.parent_block)
    finally:
        fsb.azure.set_connected_registry_state(cr, "Online")
    assert facts["healthy"] is True and facts["syncing"] is True
    assert facts["connection_state"] == "Syncing" and facts["sync_state"] == "Syncing"
    assert facts["last_successful_sync"]  # an earlier sync succeeded: the age rule uses it
    rows = {c["check"]: c for c in facts["checks"]}
    assert "Syncing" in rows["connectionState"]["value"]
    assert rows["last successful sync"]["status"] == "ok"


def test_a_disabled_sync_token_is_offline_with_the_sync_token_fix(
    fsb: FlowSandbox, provisioned: str
) -> None:
    from flows.health import fix_for
    from flows.site_status import SiteUnhealthy, site_status

    info, cr = fsb.info, cr_name(fsb, 0)
    mgmt = mgmt_client(info)
    token = names.sync_token_name(cr)

    def set_status(status: str) -> None:
        mgmt.tokens.begin_update(
            info["resource_group"], info["registry"], token, {"properties": {"status": status}}
        ).result()

    set_status("disabled")
    try:
        with pytest.raises(SiteUnhealthy) as err:
            site_status(provisioned, fsb.parent_block)
    finally:
        set_status("enabled")
    text = str(err.value)
    assert "connectionState: Offline" in text
    assert "SYNC_TOKEN_INVALID" in text and fix_for("SYNC_TOKEN_INVALID") in text
