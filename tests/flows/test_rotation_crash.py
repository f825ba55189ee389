"""rotate-client-token against the sandbox: due/not-due, refusals, and a crash after every step.

The crash is injected through the flows' step-boundary seam (flows.checkpoints.on_step): the hook
raises after a step completed, exactly like a worker dying there. The hook also pulls through the
node with the workloads' pull secret at every boundary, so a window in which pulls fail would
fail the test, and it checks that the slot workloads use stays valid until the new one is proven.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.checkpoints import on_step
from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from flows.rotate_client_token import FLOW, rotate_client_token
from model.errors import InputError
from tasks.site import canary, helm_release, mirror, pull_secrets
from tasks.site.connection import open_site
from tasks.site.plans import canary_image

pytestmark = pytest.mark.prefect

NS = "apps"


class Crash(RuntimeError):
    """Stands for the worker dying right after a step."""


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    # Site 2 is left for the node auth model test, which provisions it itself.
    # Site 3 stays unprovisioned for the provision-site crash test.
    box = start(tmp_path_factory.mktemp("rotation"), sites=3)
    try:
        out = provision_site(
            box.site_blocks[0],
            box.parent_block,
            ProvisionSpec(**spec(enable_data_endpoint=True, client_password_days=10)),
        )
        assert out["outcome"] == "converged"
        yield box
    finally:
        box.running.stop()


@pytest.fixture(scope="module")
def node_site(fsb: FlowSandbox) -> str:
    """Site 2 in the node auth model, provisioned: registries.yaml carries the client
    credential (with its slot recorded in the header) and pods pull with no pull secret."""
    from blocks.edge_site import EdgeSite

    name = fsb.site_blocks[1]
    block: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
    block.auth_model = "node"
    block.save(name, overwrite=True)
    out = provision_site(
        name,
        fsb.parent_block,
        ProvisionSpec(**spec(enable_data_endpoint=True, client_password_days=10)),
    )
    assert out["outcome"] == "converged", out
    return name


def token_passwords(fsb: FlowSandbox) -> dict[str, dict[str, Any]]:
    token = fsb.azure.resource("tokens", f"{fsb.info['sites'][0]['name']}-client")
    return {p["name"]: p for p in token["properties"]["credentials"]["passwords"]}


def pull_secret_slot(conn: Any, site: Any) -> tuple[str, str]:
    meta = pull_secrets.read_pull_secrets(conn, [NS], site.pull_secret_name)[NS]
    assert meta is not None
    return meta.slot, meta.created


def live_slots(fsb: FlowSandbox, token: str) -> dict[str, str]:
    """Slot -> creationTime of every unexpired password ARM holds for the token."""
    found = fsb.azure.resource("tokens", token)["properties"]["credentials"]["passwords"]
    return {p["name"]: p["creationTime"] for p in found if not p.get("expiry") or days_left(p) > 0}


def held_slots(fsb: FlowSandbox, conn: Any, site: Any, token: str) -> set[str]:
    """Slots some consumer holds: a pull secret, or (node model) the node's registries.yaml,
    whose recorded creation time is that slot's current one in ARM."""
    live = live_slots(fsb, token)
    records = list(pull_secrets.read_pull_secrets(conn, [NS], site.pull_secret_name).values())
    if site.auth_model == "node":
        records.append(mirror.read_node_credential(conn, helm_release.registry_host(conn)))
    return {
        r.slot
        for r in records
        if r is not None
        and r.token == token
        and r.slot in live
        and live[r.slot].startswith(r.created[:19])
    }


def days_left(p: dict[str, Any]) -> float:
    expiry = datetime.fromisoformat(p["expiry"].replace("Z", "+00:00"))
    return (expiry - datetime.now(UTC)).total_seconds() / 86400


def test_bad_lifetime_is_refused_before_any_side_effect(fsb: FlowSandbox) -> None:
    fsb.azure.clear_requests()
    with pytest.raises(InputError, match="lead_days"):
        rotate_client_token(fsb.site_blocks[0], fsb.parent_block, lifetime_days=10, lead_days=14)
    assert fsb.azure.requests() == []


def test_not_due_is_a_noop_that_says_why(fsb: FlowSandbox) -> None:
    fsb.azure.clear_requests()
    out = rotate_client_token(fsb.site_blocks[0], fsb.parent_block, lead_days=1)
    assert out["outcome"] == "not due" and out["writes"] == 0
    assert "expires" in out["steps"][0]["message"]
    assert fsb.arm_writes() == []


STEPS = ["planned", "generated", "proven", "pull-secrets", "verified", "revoke"]


@pytest.mark.parametrize("crash_at", STEPS)
def test_crash_after_each_step_then_rerun_converges_without_a_pull_gap(
    fsb: FlowSandbox, crash_at: str
) -> None:
    site_block_name = fsb.site_blocks[0]
    from blocks.edge_site import EdgeSite

    site: EdgeSite = EdgeSite.load(site_block_name)  # type: ignore[assignment]
    with open_site(site) as probe:
        host = helm_release.registry_host(probe)
        image = canary_image(host, "samples/app0000")
        old_slot, _old_created = pull_secret_slot(probe, site)
        before = token_passwords(fsb)
        assert set(before) == {old_slot}, before
        # Make the slot in use due now (lead beyond its expiry); lifetime leaves room.
        lead = math.ceil(days_left(before[old_slot])) + 1
        lifetime = lead + 2
        seen: list[str] = []
        crashed = False

        def boundary(flow: str, _site: str, step: str) -> None:
            nonlocal crashed
            if flow != FLOW:
                return
            seen.append(step)
            pulled = canary.run_canary(
                probe, NS, image, site.pull_secret_name, timeout=30, poll=0.05
            )
            assert pulled.ok, f"pull with the workloads' secret failed after {step}: {pulled}"
            now = token_passwords(fsb)
            current_slot, _ = pull_secret_slot(probe, site)
            if current_slot == old_slot:
                # Workloads still use the old slot: it must be untouched and valid.
                assert now[old_slot]["creationTime"] == before[old_slot]["creationTime"]
                assert days_left(now[old_slot]) > 0
            if step == crash_at and not crashed:
                crashed = True
                raise Crash(f"crash after {step}")

        with on_step(boundary):
            with pytest.raises(Crash):
                rotate_client_token(
                    site_block_name, fsb.parent_block, lifetime_days=lifetime, lead_days=lead
                )
            assert crashed
            out = rotate_client_token(
                site_block_name, fsb.parent_block, lifetime_days=lifetime, lead_days=lead
            )
        assert out["outcome"] != "failed", out

        new_slot, new_created = pull_secret_slot(probe, site)
        after = token_passwords(fsb)
        assert new_slot != old_slot, (crash_at, out)
        assert set(after) == {new_slot}, after  # old slot revoked, exactly one live
        assert after[new_slot]["creationTime"].startswith(new_created[:19])
        assert days_left(after[new_slot]) > lead
        assert canary.run_canary(probe, NS, image, site.pull_secret_name, timeout=30).ok

        # Converged: a further run with the same settings writes nothing.
        fsb.azure.clear_requests()
        again = rotate_client_token(
            site_block_name, fsb.parent_block, lifetime_days=lifetime, lead_days=lead
        )
        assert again["outcome"] == "not due" and fsb.arm_writes() == []


def test_force_rotates_a_fresh_site_and_revokes_the_old_slot_only_after_the_new_one_pulls(
    fsb: FlowSandbox,
) -> None:
    from blocks.edge_site import EdgeSite

    site_block_name = fsb.site_blocks[0]
    site: EdgeSite = EdgeSite.load(site_block_name)  # type: ignore[assignment]
    with open_site(site) as probe:
        image = canary_image(helm_release.registry_host(probe), "samples/app0000")
        old_slot, _ = pull_secret_slot(probe, site)
        before = token_passwords(fsb)
        assert set(before) == {old_slot}
        # Fresh: not due with lead_days=1, so only force rotates.
        assert rotate_client_token(site_block_name, fsb.parent_block, lead_days=1)["outcome"] == (
            "not due"
        )
        timeline: list[tuple[str, set[str], str]] = []

        def boundary(flow: str, _site: str, step: str) -> None:
            if flow != FLOW:
                return
            slots = token_passwords(fsb)
            in_use, _ = pull_secret_slot(probe, site)
            timeline.append((step, set(slots), in_use))
            pulled = canary.run_canary(
                probe, NS, image, site.pull_secret_name, timeout=30, poll=0.05
            )
            assert pulled.ok, f"pull with the workloads' secret failed after {step}: {pulled}"
            if step != "revoke":
                assert slots[old_slot]["creationTime"] == before[old_slot]["creationTime"], step

        with on_step(boundary):
            out = rotate_client_token(site_block_name, fsb.parent_block, lead_days=1, force=True)
        assert out["outcome"] == "rotated (forced)", out
        assert "forced" in out["steps"][0]["message"]
        steps = [step for step, _, _ in timeline]
        assert steps == ["planned", "generated", "proven", "pull-secrets", "verified", "revoke"]
        new_slot = next(s for s in SLOTS_BY_NAME if s != old_slot)
        by_step = {step: (slots, in_use) for step, slots, in_use in timeline}
        # The old slot is live through the proof (a pull with the NEW password through the
        # node) and the switch of the pull secrets; it goes only at the revoke step.
        for step in ("generated", "proven", "pull-secrets", "verified"):
            assert by_step[step][0] == {old_slot, new_slot}, (step, by_step[step])
        assert by_step["proven"][1] == old_slot  # proven before any workload depends on it
        assert by_step["pull-secrets"][1] == new_slot
        assert by_step["revoke"][0] == {new_slot}
        assert set(token_passwords(fsb)) == {new_slot}
        assert days_left(token_passwords(fsb)[new_slot]) > 80

        # Converged: without force nothing is due, nothing is written.
        fsb.azure.clear_requests()
        again = rotate_client_token(site_block_name, fsb.parent_block, lead_days=1)
        assert again["outcome"] == "not due" and fsb.arm_writes() == []


SLOTS_BY_NAME = ("password1", "password2")


def test_force_parameter_is_documented_in_the_ui_form() -> None:
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(rotate_client_token).model_dump()["properties"]
    assert schema["force"]["default"] is False
    assert "leaked or suspect" in schema["force"]["description"]


def test_node_auth_model_provision_rotate_and_converge(fsb: FlowSandbox, node_site: str) -> None:
    """registries.yaml ``configs.<host>.auth`` carries the client credential: pods pull with no
    pull secret. Rotation rewrites the file (backed up), restarts K3s once, and proves the new
    password before the old slot goes."""
    import yaml

    from blocks.edge_site import EdgeSite

    name, node, info = node_site, fsb.site(1), fsb.info["sites"][1]
    token_name = f"{info['name']}-client"
    block: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
    registries = Path(info["registries_path"])

    def node_auth(host: str) -> dict[str, Any]:
        doc = yaml.safe_load(registries.read_text())
        return dict(doc["configs"][host]["auth"])

    def passwords() -> dict[str, dict[str, Any]]:
        token = fsb.azure.resource("tokens", token_name)
        return {p["name"]: p for p in token["properties"]["credentials"]["passwords"]}

    with open_site(block) as probe:
        host = helm_release.registry_host(probe)
        image = canary_image(host, "samples/app0000")
        auth = node_auth(host)
        assert auth["username"] == token_name and auth["password"] in fsb.azure.secrets()
        (old_slot,) = passwords()
        no_secret = canary.run_canary(probe, NS, image, None, timeout=30, poll=0.05)
        assert no_secret.ok, no_secret  # the node's credential alone pulls

        file_before = registries.read_text()
        restarts_before = node.restart_count
        timeline: list[tuple[str, set[str]]] = []

        def boundary(flow: str, _site: str, step: str) -> None:
            if flow != FLOW or _site != info["name"]:
                return
            timeline.append((step, set(passwords())))
            # Workloads relying on the node's credential keep pulling at every step.
            pulled = canary.run_canary(probe, NS, image, None, timeout=30, poll=0.05)
            assert pulled.ok, f"node-credential pull failed after {step}: {pulled}"

        lead = math.ceil(days_left(passwords()[old_slot])) + 1
        with on_step(boundary):
            rotated = rotate_client_token(
                name, fsb.parent_block, lifetime_days=lead + 30, lead_days=lead
            )
        assert rotated["outcome"] == "rotated", rotated
        (new_slot,) = passwords()
        assert new_slot != old_slot
        steps = [step for step, _ in timeline]
        assert steps == [
            "planned",
            "generated",
            "proven",
            "registries-yaml",
            "node-proven",
            "pull-secrets",
            "verified",
            "revoke",
        ], steps
        # The new password pulled (scratch secret, then the node's credential alone) while the
        # old slot was still live; it is revoked last.
        for step, live in timeline[1:-1]:
            assert live == {old_slot, new_slot}, (step, live)
        assert timeline[-1][1] == {new_slot}
        assert node.restart_count == restarts_before + 1
        new_auth = node_auth(host)
        assert new_auth["username"] == token_name
        assert new_auth["password"] != auth["password"]
        assert new_auth["password"] in fsb.azure.secrets()
        backups = [
            p for p in registries.parent.iterdir() if p.name.startswith(f"{registries.name}.bak-")
        ]
        assert any(b.read_text() == file_before for b in backups), backups
        assert canary.run_canary(probe, NS, image, None, timeout=30, poll=0.05).ok

        # Converged: neither flow writes anything, K3s is not restarted again.
        fsb.azure.clear_requests()
        file_after = registries.read_text()
        again = rotate_client_token(name, fsb.parent_block, lifetime_days=lead + 30, lead_days=lead)
        assert again["outcome"] == "not due" and again["writes"] == 0, again
        reprovision = provision_site(name, fsb.parent_block, ProvisionSpec(**spec()))
        assert reprovision["writes"] == 0, reprovision
        assert fsb.arm_writes() == []
        assert registries.read_text() == file_after
        assert node.restart_count == restarts_before + 1


NODE_STEPS = [
    "planned",
    "generated",
    "proven",
    "registries-yaml",
    "node-proven",
    "pull-secrets",
    "verified",
    "revoke",
]


@pytest.mark.parametrize("crash_at", NODE_STEPS)
def test_node_model_crash_after_each_step_then_rerun_converges_without_a_pull_gap(
    fsb: FlowSandbox, node_site: str, crash_at: str
) -> None:
    """Node auth model: the node's registries.yaml is a consumer of a slot like the pull
    secrets. Crash after each step; at every boundary (both runs) a pull with NO pull secret
    (the node's credential, as K3s loaded it) and a pull with the workloads' secret succeed, the
    node file's recorded slot is a live password, and the slot in use stays untouched until the
    new one is proven. The re-run converges and a third run writes nothing."""
    from blocks.edge_site import EdgeSite

    info = fsb.info["sites"][1]
    token_name = f"{info['name']}-client"
    site: EdgeSite = EdgeSite.load(node_site)  # type: ignore[assignment]

    def passwords() -> dict[str, dict[str, Any]]:
        token = fsb.azure.resource("tokens", token_name)
        return {p["name"]: p for p in token["properties"]["credentials"]["passwords"]}

    with open_site(site) as probe:
        host = helm_release.registry_host(probe)
        image = canary_image(host, "samples/app0000")

        def node_slot() -> tuple[str, str]:
            record = mirror.read_node_credential(probe, host)
            assert record is not None and record.token == token_name
            return record.slot, record.created

        old_slot, _ = node_slot()
        assert pull_secret_slot(probe, site)[0] == old_slot
        before = passwords()
        assert set(before) == {old_slot}, before
        lead = math.ceil(days_left(before[old_slot])) + 1
        lifetime = lead + 2
        crashed = False

        def boundary(flow: str, _site: str, step: str) -> None:
            nonlocal crashed
            if flow != FLOW or _site != info["name"]:
                return
            by_node = canary.run_canary(probe, NS, image, None, timeout=30, poll=0.05)
            assert by_node.ok, f"node-credential pull failed after {step}: {by_node}"
            by_secret = canary.run_canary(
                probe, NS, image, site.pull_secret_name, timeout=30, poll=0.05
            )
            assert by_secret.ok, f"pull-secret pull failed after {step}: {by_secret}"
            now = passwords()
            slot, created = node_slot()
            assert slot in now, f"node file records dead {slot} after {step}"
            assert now[slot]["creationTime"].startswith(created[:19]), (step, slot)
            if slot == old_slot:
                assert now[old_slot]["creationTime"] == before[old_slot]["creationTime"]
                assert days_left(now[old_slot]) > 0
            if step == crash_at and not crashed:
                crashed = True
                raise Crash(f"crash after {step}")

        with on_step(boundary):
            with pytest.raises(Crash):
                rotate_client_token(
                    node_site, fsb.parent_block, lifetime_days=lifetime, lead_days=lead
                )
            assert crashed
            out = rotate_client_token(
                node_site, fsb.parent_block, lifetime_days=lifetime, lead_days=lead
            )
        assert out["outcome"] != "failed", out
        if crash_at == "registries-yaml":
            # The node already held the new slot: it was adopted, not regenerated.
            assert out["outcome"] == "adoption finished", out

        new_slot, new_created = node_slot()
        after = passwords()
        assert new_slot != old_slot, (crash_at, out)
        assert pull_secret_slot(probe, site) == (new_slot, new_created)
        assert set(after) == {new_slot}, after
        assert after[new_slot]["creationTime"].startswith(new_created[:19])
        assert days_left(after[new_slot]) > lead
        assert canary.run_canary(probe, NS, image, None, timeout=30, poll=0.05).ok

        fsb.azure.clear_requests()
        restarts = fsb.site(1).restart_count
        again = rotate_client_token(
            node_site, fsb.parent_block, lifetime_days=lifetime, lead_days=lead
        )
        assert again["outcome"] == "not due" and again["writes"] == 0, again
        assert fsb.arm_writes() == [] and fsb.site(1).restart_count == restarts


def test_provision_crash_right_after_the_client_password_then_rerun_leaves_no_orphan(
    fsb: FlowSandbox,
) -> None:
    """provision-site dies right after generating the client password, before any pull secret
    holds it (its value is gone with the run). The re-run regenerates that slot instead of
    filling the other one: ARM ends with exactly the slots a consumer holds."""
    from blocks.edge_site import EdgeSite

    info = fsb.info["sites"][2]
    token = f"{info['name']}-client"
    name = fsb.site_blocks[2]
    generated: dict[str, str] = {}

    def boundary(flow: str, site_name: str, step: str) -> None:
        here = (flow, site_name, step) == ("provision-site", info["name"], "client-password")
        if here and not generated:
            generated.update(live_slots(fsb, token))
            raise Crash("crash after client-password")

    with on_step(boundary):
        with pytest.raises(Crash):
            provision_site(name, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
        assert len(generated) == 1, generated  # one live password, held by nobody
        out = provision_site(name, fsb.parent_block, ProvisionSpec(**spec()))
    assert out["outcome"] == "converged", out
    site: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
    with open_site(site) as probe:
        live = live_slots(fsb, token)
        assert set(live) == held_slots(fsb, probe, site, token) and len(live) == 1, live
        ((orphan, created_then),) = generated.items()
        assert set(live) == {orphan} and live[orphan] != created_then  # regenerated in place
        image = canary_image(helm_release.registry_host(probe), "samples/app0000")
        assert canary.run_canary(probe, NS, image, site.pull_secret_name, timeout=30).ok
    fsb.azure.clear_requests()
    again = provision_site(name, fsb.parent_block, ProvisionSpec(**spec()))
    assert again["writes"] == 0 and fsb.arm_writes() == [], again


@pytest.mark.parametrize("which", ["pull-secret", "node"])
def test_rotation_crash_right_after_generation_then_provision_rerun_revokes_the_orphan(
    fsb: FlowSandbox, node_site: str, which: str
) -> None:
    """rotate-client-token dies right after generating the new slot; the next run is
    provision-site, not a rotation. It keeps the slot the consumers hold (never burns it) and
    revokes the orphan: exactly the held slots stay live. A later rotation still converges."""
    from blocks.edge_site import EdgeSite

    index = 0 if which == "pull-secret" else 1
    info = fsb.info["sites"][index]
    token = f"{info['name']}-client"
    name = fsb.site_blocks[index]
    site: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
    with open_site(site) as probe:
        image = canary_image(helm_release.registry_host(probe), "samples/app0000")
        before = live_slots(fsb, token)
        assert set(before) == held_slots(fsb, probe, site, token) and len(before) == 1
        found = fsb.azure.resource("tokens", token)["properties"]["credentials"]["passwords"]
        lead = math.ceil(days_left(found[0])) + 1
        orphaned: dict[str, str] = {}

        def boundary(flow: str, site_name: str, step: str) -> None:
            if (flow, site_name, step) == (FLOW, info["name"], "generated") and not orphaned:
                orphaned.update(live_slots(fsb, token))
                raise Crash("crash after generated")

        with on_step(boundary), pytest.raises(Crash):
            rotate_client_token(name, fsb.parent_block, lifetime_days=lead + 2, lead_days=lead)
        assert len(orphaned) == 2, orphaned  # the one in use and the orphan
        out = provision_site(name, fsb.parent_block, ProvisionSpec(**spec()))
        assert out["outcome"] == "converged", out
        live = live_slots(fsb, token)
        assert live == before, (before, live)  # the held slot untouched, the orphan revoked
        assert set(live) == held_slots(fsb, probe, site, token)
        assert canary.run_canary(probe, NS, image, site.pull_secret_name, timeout=30).ok
        assert canary.run_canary(probe, NS, image, None if index else site.pull_secret_name).ok

        rotated = rotate_client_token(
            name, fsb.parent_block, lifetime_days=lead + 2, lead_days=lead
        )
        assert rotated["outcome"] == "rotated", rotated
        live = live_slots(fsb, token)
        assert len(live) == 1 and set(live) == held_slots(fsb, probe, site, token)
        assert set(live) != set(before)
