"""rotate-sync-credential against the sandbox: not due, forced, and a crash after the generation
and after the upgrade followed by a re-run. Every boundary checks that the slot the Helm release
carries is live; at the end the runtime is Online, the old slot revoked, the release carries the
new slot and pulls still go through the mirror."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.checkpoints import on_step
from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from flows.rotate_sync_credential import FLOW, rotate_sync_credential
from tasks.site import canary, helm_release
from tasks.site.connection import open_site
from tasks.site.plans import canary_image

pytestmark = pytest.mark.prefect


class Crash(RuntimeError):
    """Stands for the worker dying right after a step."""


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("syncrot"))
    try:
        out = provision_site(
            box.site_blocks[0], box.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True))
        )
        assert out["outcome"] == "converged", out
        yield box
    finally:
        box.running.stop()


def sync_passwords(fsb: FlowSandbox) -> dict[str, dict[str, Any]]:
    token = fsb.azure.resource("tokens", fsb.info["sites"][0]["name"])
    return {p["name"]: p for p in token["properties"]["credentials"]["passwords"]}


def cr_state(fsb: FlowSandbox) -> str:
    cr = fsb.azure.resource("connectedRegistries", fsb.info["sites"][0]["name"])
    return str(cr["properties"]["connectionState"])


def site_block() -> Any:
    from blocks.edge_site import EdgeSite

    return EdgeSite


def carried_slot(conn: Any) -> str:
    ref = helm_release.read_helm_release(conn).sync_ref
    assert ref is not None
    return ref.slot


def test_a_provisioned_sync_password_expires_and_is_not_due_yet(fsb: FlowSandbox) -> None:
    from datetime import UTC, datetime

    (only,) = sync_passwords(fsb).values()
    assert only["expiry"] is not None  # provision-site gives the sync password a lifetime
    expiry = datetime.fromisoformat(str(only["expiry"]).replace("Z", "+00:00"))
    days = (expiry - datetime.now(UTC)).days
    assert 300 < days <= 365, days
    fsb.azure.clear_requests()
    out = rotate_sync_credential(fsb.site_blocks[0], fsb.parent_block)
    assert out["outcome"] == "not due" and out["writes"] == 0, out
    assert "due from" in out["steps"][0]["message"], out
    assert fsb.arm_writes() == []


@pytest.mark.parametrize("crash_at", [None, "generated", "upgraded"])
def test_forced_rotation_with_a_crash_then_rerun_converges(
    fsb: FlowSandbox, crash_at: str | None
) -> None:
    name = fsb.site_blocks[0]
    site = site_block().load(name)
    with open_site(site) as probe:
        image = canary_image(helm_release.registry_host(probe), "samples/app0000")
        old = carried_slot(probe)
        assert set(sync_passwords(fsb)) == {old}
        crashed = False
        seen: list[str] = []

        def boundary(flow: str, _site: str, step: str) -> None:
            nonlocal crashed
            if flow != FLOW:
                return
            seen.append(step)
            # The slot the release carries is live at every boundary: never revoked under it.
            assert carried_slot(probe) in sync_passwords(fsb), step
            if step == crash_at and not crashed:
                crashed = True
                raise Crash(f"crash after {step}")

        with on_step(boundary):
            if crash_at is not None:
                with pytest.raises(Crash):
                    rotate_sync_credential(name, fsb.parent_block, force=True)
                # A crash leaves the old slot live (and, after the upgrade, the new one carried).
                assert old in sync_passwords(fsb)
                out = rotate_sync_credential(name, fsb.parent_block, lead_days=1)
            else:
                out = rotate_sync_credential(name, fsb.parent_block, force=True)
        assert out["outcome"] in ("rotated (forced)", "rotated (resumed)", "old slot revoked"), out
        new = carried_slot(probe)
        after = sync_passwords(fsb)
        assert new != old and set(after) == {new}, (crash_at, after, seen)
        assert after[new]["expiry"] is not None
        assert cr_state(fsb) == "Online"
        assert canary.run_canary(
            probe, site.app_namespaces[0], image, site.pull_secret_name, timeout=30
        ).ok

        fsb.azure.clear_requests()
        again = rotate_sync_credential(name, fsb.parent_block, lead_days=1)
        assert again["outcome"] == "not due" and fsb.arm_writes() == []


def test_site_status_shows_each_sync_password_age_and_days_to_expiry(fsb: FlowSandbox) -> None:
    from flows.site_status import site_status

    status = site_status(fsb.site_blocks[0], fsb.parent_block)
    rows = status["sync_passwords"]
    in_use = [r for r in rows if r["in_use"]]
    assert [r["slot"] for r in rows] == sorted(sync_passwords(fsb)), rows
    assert len(in_use) == 1, rows
    (row,) = in_use
    assert 0 <= row["age_days"] < 1, row
    assert 300 < row["days_to_expiry"] <= 365, row
    checks = {c["check"]: c for c in status["checks"]}
    assert checks["sync password expiry"]["status"] == "ok", checks
    assert row["slot"] in checks["sync password expiry"]["value"], checks
