"""re-home-site against the sandbox: site A provisioned on sandbox site 1, its block re-pointed
at sandbox site 2 (another simulated cluster) while site 1's runtime still runs activated; the
re-home plans, then moves the connected registry (Online, Active, pulling on site 2) with a
fresh sync password, and the old runtime's credential is dead. A re-run changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.checkpoints import on_step
from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from flows.rehome_site import DEACTIVATE_STEP, FLOW, REVOKE_STEP, rehome_site
from flows.site_status import site_status

pytestmark = pytest.mark.prefect

NS, REL = "connected-registry", "connected-registry"


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("rehome"), sites=2)
    try:
        yield box
    finally:
        box.running.stop()


def _spec(**kw: Any) -> ProvisionSpec:
    return ProvisionSpec(**spec(enable_data_endpoint=True, **kw))


def _cr(fsb: FlowSandbox) -> dict[str, Any]:
    return fsb.azure.resource("connectedRegistries", fsb.info["sites"][0]["name"])  # type: ignore[no-any-return]


def _repoint(fsb: FlowSandbox, target: int = 1) -> None:
    """Site A's block now names sandbox site ``target``'s hardware (same site name: same CR)."""
    from acr_edge.sandbox_blocks import site_block

    block = site_block(fsb.info["sites"][target], "http")  # the module provisions over http
    block.name = fsb.info["sites"][0]["name"]
    block.tags = [fsb.tag]
    block.save(fsb.site_blocks[0], overwrite=True)


def test_rehome_moves_the_site_with_a_fresh_sync_password(fsb: FlowSandbox) -> None:
    from sandbox.sites import connection_string

    cr = fsb.info["sites"][0]["name"]
    out = provision_site(fsb.site_blocks[0], fsb.parent_block, _spec())
    assert out["outcome"] == "converged", out
    old_site = fsb.site(0)
    old_conn = str(old_site.helm.releases[(NS, REL)].current.values["connectionString"])
    old_password = connection_string.parse(old_conn).password
    assert old_password in fsb.azure.password_values(cr).values()
    assert old_site.runtime.ready_release_for(NS, REL) is not None
    assert _cr(fsb)["properties"]["activation"]["status"] == "Active"

    _repoint(fsb)

    # Plan first: the revocation, the deactivation, then provision's plan; nothing written.
    fsb.azure.clear_requests()
    plan = rehome_site(fsb.site_blocks[0], fsb.parent_block, _spec(dry_run=True))
    assert plan["outcome"] == "planned" and plan["writes"] == 0, plan
    actions = {s["step"]: s["action"] for s in plan["steps"]}
    assert actions[DEACTIVATE_STEP] == "deactivate", actions
    assert actions[REVOKE_STEP] == "revoke", actions
    assert plan["provision"]["outcome"] == "planned", plan["provision"]
    provision_steps = {s["step"] for s in plan["provision"]["steps"]}
    assert {"sync-credential", "helm-release"} <= provision_steps, provision_steps
    assert fsb.arm_writes() == []
    assert _cr(fsb)["properties"]["activation"]["status"] == "Active"
    assert (REL, REL) not in fsb.site(1).helm.releases

    # The old runtime is still running and activated while the re-home runs.
    assert old_site.runtime.ready_release_for(NS, REL) is not None
    out = rehome_site(fsb.site_blocks[0], fsb.parent_block, _spec())
    assert out["outcome"] == "re-homed", out
    assert out["provision"]["outcome"] == "converged", out["provision"]
    for secret in fsb.azure.secrets():
        assert secret not in str(out)

    # Site 2 runs the connected registry: Online, Active, pulls (site-status' canary).
    props = _cr(fsb)["properties"]
    assert props["activation"]["status"] == "Active" and props["connectionState"] == "Online"
    assert fsb.site(1).runtime.ready_release_for(NS, REL) is not None
    status = site_status(fsb.site_blocks[0], fsb.parent_block)
    assert status["healthy"], status["checks"]

    # A fresh sync password: the new release's is not the old one, which no slot holds now.
    new_conn = str(fsb.site(1).helm.releases[(NS, REL)].current.values["connectionString"])
    new_password = connection_string.parse(new_conn).password
    live = fsb.azure.password_values(cr)
    assert new_password != old_password and new_password in live.values()
    assert old_password not in live.values(), "the old runtime's sync password is still live"
    assert len(live) == 1, sorted(live)
    # The old runtime can no longer activate or sync with what it holds.
    again = fsb.azure.activate(old_conn, instance_id=old_site.runtime.instance_id)
    assert not again["ok"], again
    fsb.azure.deactivate(cr)  # even with the registry free, its password is refused
    refused = fsb.azure.activate(old_conn, instance_id=old_site.runtime.instance_id)
    assert not refused["ok"] and refused["code"] == "SYNC_TOKEN_INVALID", refused
    # Give the registry back to site 2's runtime (as a restart of its pod would).
    assert fsb.azure.activate(new_conn, instance_id=fsb.site(1).runtime.instance_id)["ok"]

    # A re-run: nothing to revoke or deactivate, and provision writes nothing.
    fsb.azure.clear_requests()
    rerun = rehome_site(fsb.site_blocks[0], fsb.parent_block, _spec())
    assert rerun["outcome"] == "already re-homed" and rerun["writes"] == 0, rerun
    assert all(s["action"] == "none" and s["message"] for s in rerun["steps"]), rerun
    assert fsb.arm_writes() == []
    assert _cr(fsb)["properties"]["activation"]["status"] == "Active"


class Crash(RuntimeError):
    """Stands for the worker dying right after a step."""


def test_a_crash_at_each_rehome_step_then_rerun_converges(fsb: FlowSandbox) -> None:
    """Site A moves back to site 1's hardware (its release there holds a revoked password),
    then to site 2's again; each move crashes after one of re-home's own steps first."""
    from sandbox.sites import connection_string

    cr = fsb.info["sites"][0]["name"]
    if _cr(fsb) is None:  # run on its own: site A starts on site 2
        _repoint(fsb, 1)
        provision_site(fsb.site_blocks[0], fsb.parent_block, _spec())
    for target, crash_after in ((0, REVOKE_STEP), (1, DEACTIVATE_STEP)):
        _repoint(fsb, target)

        def hook(flow: str, _site: str, step: str, at: str = crash_after) -> None:
            if flow == FLOW and step == at:
                raise Crash(step)

        with on_step(hook), pytest.raises(Crash):
            rehome_site(fsb.site_blocks[0], fsb.parent_block, _spec())
        out = rehome_site(fsb.site_blocks[0], fsb.parent_block, _spec())
        assert out["outcome"] == "re-homed", (crash_after, out)
        props = _cr(fsb)["properties"]
        assert props["activation"]["status"] == "Active", crash_after
        assert fsb.site(target).runtime.ready_release_for(NS, REL) is not None, crash_after
        assert site_status(fsb.site_blocks[0], fsb.parent_block)["healthy"], crash_after
        values = fsb.site(target).helm.releases[(NS, REL)].current.values
        password = connection_string.parse(str(values["connectionString"])).password
        live = fsb.azure.password_values(cr)
        assert list(live.values()) == [password], (crash_after, sorted(live))
        again = rehome_site(fsb.site_blocks[0], fsb.parent_block, _spec())
        assert again["outcome"] == "already re-homed" and again["writes"] == 0, again
