"""rotate-sync-credential crash matrix, with the runtime Online throughout, and the failed
upgrade that is rolled back to the old (still valid) connection string.

The crash is injected through the flows' step-boundary seam (flows.checkpoints.on_step), like
a worker dying right after a step. At every boundary of both runs the hook checks that the
site keeps serving: the connected registry is Online (or Syncing) in ARM, the runtime's pod is
Ready and runs exactly the connection string the Helm release holds, whose password is the
live ARM password of the slot the release records, the old slot is untouched until the revoke
step, and a canary pull with the workloads' pull secret succeeds.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.checkpoints import on_step
from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from flows.rotate_sync_credential import FLOW, rotate_sync_credential
from model.errors import PermanentError
from sandbox.sites import connection_string
from tasks.site import canary, helm_release
from tasks.site.connection import open_site
from tasks.site.plans import canary_image

pytestmark = pytest.mark.prefect

NS = REL = "connected-registry"
READY_TIMEOUT = 8  # the proof's wait; the rollback test waits it out once


class Crash(RuntimeError):
    """Stands for the worker dying right after a step."""


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    from blocks.edge_site import EdgeSite

    box = start(tmp_path_factory.mktemp("syncrash"), sites=1)
    try:
        name = box.site_blocks[0]
        block: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
        block.ready_timeout = READY_TIMEOUT
        block.save(name, overwrite=True)
        out = provision_site(
            name, box.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True))
        )
        assert out["outcome"] == "converged", out
        yield box
    finally:
        box.running.stop()


def cr_name(fsb: FlowSandbox) -> str:
    return str(fsb.info["sites"][0]["name"])


def passwords(fsb: FlowSandbox) -> dict[str, dict[str, Any]]:
    token = fsb.azure.resource("tokens", cr_name(fsb))
    return {p["name"]: p for p in token["properties"]["credentials"]["passwords"]}


def days_left(p: dict[str, Any]) -> float:
    expiry = datetime.fromisoformat(str(p["expiry"]).replace("Z", "+00:00"))
    return (expiry - datetime.now(UTC)).total_seconds() / 86400


def live(fsb: FlowSandbox) -> dict[str, dict[str, Any]]:
    return {s: p for s, p in passwords(fsb).items() if not p.get("expiry") or days_left(p) > 0}


def runtime_slot(fsb: FlowSandbox) -> str:
    """The slot whose live ARM password the running runtime uses: the release's connection
    string is what the Ready pod runs, and its password is that slot's current value."""
    site = fsb.site()
    values = site.helm.releases[(NS, REL)].current.values
    conn = str(values["connectionString"])
    state = site.runtime.ready_release_for(NS, REL)
    assert state is not None, "the runtime's pod is not Ready"
    assert state.connection_digest == hashlib.sha256(conn.encode()).hexdigest()
    password = connection_string.parse(conn).password
    by_value = {v: s for s, v in fsb.azure.password_values(cr_name(fsb)).items()}
    assert password in by_value, "the runtime's password is no live ARM password"
    slot = by_value[password]
    assert slot in live(fsb), slot
    return slot


def cr_state(fsb: FlowSandbox) -> str:
    cr = fsb.azure.resource("connectedRegistries", cr_name(fsb))
    return str(cr["properties"]["connectionState"])


def make_due(fsb: FlowSandbox) -> tuple[int, int]:
    """(lifetime_days, lead_days) that make the password in use due now, and a new one not."""
    (only,) = live(fsb).values()
    lead = math.ceil(days_left(only)) + 1
    return lead + 2, lead


def serving_hook(
    fsb: FlowSandbox, probe: Any, site: Any, image: str, crash_at: str | None
) -> tuple[str, dict[str, Any], Callable[[str, str, str], None]]:
    old = runtime_slot(fsb)
    before = passwords(fsb)[old]
    state: dict[str, Any] = {"crashed": False, "seen": [], "at_crash": {}}

    def boundary(flow: str, _site: str, step: str) -> None:
        if flow != FLOW:
            return
        state["seen"].append(step)
        assert cr_state(fsb) in ("Online", "Syncing"), step
        used = runtime_slot(fsb)
        ref = helm_release.read_helm_release(probe).sync_ref
        assert ref is not None and ref.slot == used, (step, ref, used)
        if "revoke" not in state["seen"]:  # no run has passed its revoke step yet
            now = passwords(fsb)
            assert now[old]["creationTime"] == before["creationTime"], step
            assert days_left(now[old]) > 0, step
        pulled = canary.run_canary(
            probe, site.app_namespaces[0], image, site.pull_secret_name, timeout=30, poll=0.05
        )
        assert pulled.ok, f"pull failed after {step}: {pulled}"
        if step == crash_at and not state["crashed"]:
            state["crashed"] = True
            state["at_crash"] = {s: p["creationTime"] for s, p in live(fsb).items()}
            raise Crash(f"crash after {step}")

    return old, state, boundary


def load_site(fsb: FlowSandbox) -> Any:
    from blocks.edge_site import EdgeSite

    return EdgeSite.load(fsb.site_blocks[0])


STEPS = ["planned", "generated", "upgraded", "synced", "revoke"]


def assert_converged(fsb: FlowSandbox, probe: Any, site: Any, image: str, old: str) -> str:
    new = runtime_slot(fsb)
    assert new != old
    assert set(passwords(fsb)) == {new}, passwords(fsb)  # exactly one, the old one revoked
    assert cr_state(fsb) == "Online"
    assert canary.run_canary(
        probe, site.app_namespaces[0], image, site.pull_secret_name, timeout=30
    ).ok
    return new


def test_a_due_rotation_reports_every_step_boundary_in_order(fsb: FlowSandbox) -> None:
    """The matrix below crashes at each of these: the list is derived from a real run."""
    site = load_site(fsb)
    lifetime, lead = make_due(fsb)
    with open_site(site) as probe:
        image = canary_image(helm_release.registry_host(probe), "samples/app0000")
        old, state, boundary = serving_hook(fsb, probe, site, image, None)
        with on_step(boundary):
            out = rotate_sync_credential(
                fsb.site_blocks[0], fsb.parent_block, lifetime_days=lifetime, lead_days=lead
            )
        assert out["outcome"] == "rotated", out
        assert state["seen"] == STEPS, state["seen"]
        new = assert_converged(fsb, probe, site, image, old)
        assert days_left(passwords(fsb)[new]) > lead


@pytest.mark.parametrize("crash_at", STEPS)
def test_crash_after_each_step_then_rerun_converges_online_throughout(
    fsb: FlowSandbox, crash_at: str
) -> None:
    name = fsb.site_blocks[0]
    site = load_site(fsb)
    lifetime, lead = make_due(fsb)
    with open_site(site) as probe:
        image = canary_image(helm_release.registry_host(probe), "samples/app0000")
        old, state, boundary = serving_hook(fsb, probe, site, image, crash_at)
        with on_step(boundary):
            with pytest.raises(Crash):
                rotate_sync_credential(
                    name, fsb.parent_block, lifetime_days=lifetime, lead_days=lead
                )
            assert state["crashed"]
            # The re-run is the schedule's: same settings, no force.
            out = rotate_sync_credential(
                name, fsb.parent_block, lifetime_days=lifetime, lead_days=lead
            )
        assert out["outcome"] != "failed", out
        new = assert_converged(fsb, probe, site, image, old)
        assert days_left(passwords(fsb)[new]) > lead
        if crash_at == "generated":
            # The orphan (generated, its value lost, held by nobody) was regenerated in place;
            # the slot the runtime used was never regenerated (the hook checked it).
            assert set(state["at_crash"]) == {old, new}, state["at_crash"]
            assert passwords(fsb)[new]["creationTime"] != state["at_crash"][new]
            assert out["outcome"] == "rotated (resumed)", out
        if crash_at in ("upgraded", "synced"):
            assert out["outcome"] == "old slot revoked", out

        fsb.azure.clear_requests()
        again = rotate_sync_credential(
            name, fsb.parent_block, lifetime_days=lifetime, lead_days=lead
        )
        assert again["outcome"] == "not due" and again["writes"] == 0, again
        assert fsb.arm_writes() == []


def test_dry_run_lists_the_plan_and_writes_nothing(fsb: FlowSandbox) -> None:
    name = fsb.site_blocks[0]
    before = passwords(fsb)
    revision = fsb.site().helm.releases[(NS, REL)].revision
    fsb.azure.clear_requests()
    out = rotate_sync_credential(name, fsb.parent_block, force=True, dry_run=True)
    assert out["outcome"] == "planned" and out["writes"] == 0, out
    steps = [r["step"] for r in out["steps"]]
    assert steps == ["plan", "generate", "helm-release", "revoke"], steps
    assert all(r["planned"] for r in out["steps"]), out
    assert "forced" in out["steps"][0]["message"]
    assert fsb.arm_writes() == [] and passwords(fsb) == before
    assert fsb.site().helm.releases[(NS, REL)].revision == revision


def test_not_due_without_force_is_a_noop_saying_when_it_is_due(fsb: FlowSandbox) -> None:
    fsb.azure.clear_requests()
    out = rotate_sync_credential(fsb.site_blocks[0], fsb.parent_block, lead_days=1)
    assert out["outcome"] == "not due" and out["writes"] == 0, out
    assert "due from" in out["steps"][0]["message"], out
    assert fsb.arm_writes() == []


def test_runtime_that_does_not_sync_after_the_upgrade_is_rolled_back_to_the_old_string(
    fsb: FlowSandbox,
) -> None:
    """The Azure sandbox holds the connected registry Offline from the upgrade on (it cannot
    reach its parent): no sync after the change, so the release is rolled back to the old
    connection string, whose slot is still valid; the unused new slot is revoked, so no live
    password is left that nobody holds. Released, the next run rotates."""
    name, cr = fsb.site_blocks[0], cr_name(fsb)
    site = load_site(fsb)
    with open_site(site) as probe:
        image = canary_image(helm_release.registry_host(probe), "samples/app0000")
        old = runtime_slot(fsb)
        before = passwords(fsb)
        revision = fsb.site().helm.releases[(NS, REL)].revision

        def offline_on_upgrade(flow: str, _site: str, step: str) -> None:
            if (flow, step) == (FLOW, "generated"):  # the next write is the upgrade
                fsb.azure.set_connected_registry_state(cr, "Offline", code="PARENT_UNREACHABLE")

        try:
            with on_step(offline_on_upgrade), pytest.raises(PermanentError) as err:
                rotate_sync_credential(name, fsb.parent_block, force=True)
        finally:
            fsb.azure.set_connected_registry_state(cr, "Online")
        message = str(err.value)
        assert f"not Online {READY_TIMEOUT}s after the upgrade" in message, message
        assert "connectionState Offline" in message, message
        assert f"rolled back from revision {revision + 1} to revision {revision}" in message
        assert f"keeps the old connection string ({old}, still valid" in message, message
        assert "rotate-sync-credential" in message, message
        for secret in fsb.azure.secrets():
            assert secret not in message
        # Back on the old string; the old slot untouched; the new one revoked.
        assert runtime_slot(fsb) == old
        assert passwords(fsb) == before
        assert canary.run_canary(
            probe, site.app_namespaces[0], image, site.pull_secret_name, timeout=30
        ).ok

        out = rotate_sync_credential(name, fsb.parent_block, force=True)
        assert out["outcome"] == "rotated (forced)", out
        assert_converged(fsb, probe, site, image, old)
