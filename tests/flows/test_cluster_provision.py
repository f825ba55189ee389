"""provision-site on 3-node simulated sites: every node mirrored, one at a time, proven,
rolled back, and nothing written before every node is reached."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.models import ProvisionSpec
from flows.provision_site import provision_site

pytestmark = pytest.mark.prefect

NODES = 3


def _restart_events(node: Any) -> list[dict[str, Any]]:
    return [c for c in node.commands() if c.get("event") == "k3s-restart"]


def _registries(node: Any) -> bytes | None:
    path = node.registries_path
    return path.read_bytes() if path.exists() else None


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("multinode"), sites=5, nodes_per_site=NODES)
    try:
        yield box
    finally:
        box.running.stop()


def _provision(fsb: FlowSandbox, index: int, **overrides: Any) -> Any:
    return provision_site(
        fsb.site_blocks[index],
        fsb.parent_block,
        ProvisionSpec(**spec(enable_data_endpoint=True, **overrides)),
        return_state=True,
    )


def test_mirror_only_change_reaches_every_node_without_a_restart(fsb: FlowSandbox) -> None:
    site = fsb.site(0)
    state = _provision(fsb, 0)
    first = state.result()
    assert first["outcome"] == "converged", first
    assert [n["name"] for n in first["nodes"]] == [n.name for n in site.nodes[1:]] + [
        site.nodes[0].name
    ]  # agents first, the server last
    for node in site.nodes:
        assert _restart_events(node) == [], node.name  # hosts.toml made it live
        assert b"mirrors" in (_registries(node) or b""), node.name
    assert all(n["restarted"] is False and "pulled" in n["canary"] for n in first["nodes"])

    again = _provision(fsb, 0).result()
    assert again["writes"] == 0 and again["outcome"] == "already converged", again
    assert all(n["action"] == "none" for n in again["nodes"])
    for node in site.nodes:
        assert _restart_events(node) == []


def test_node_credentials_restart_each_node_once_one_at_a_time(fsb: FlowSandbox) -> None:
    from blocks.edge_site import EdgeSite

    block = EdgeSite.load(fsb.site_blocks[1])
    block.auth_model = "node"
    block.save(fsb.site_blocks[1], overwrite=True)
    site = fsb.site(1)
    result = _provision(fsb, 1).result()
    assert result["outcome"] == "converged", result
    events = []
    for node in site.nodes:
        mine = _restart_events(node)
        assert len(mine) == 1 and mine[0]["ok"], (node.name, mine)
        events.append((mine[0]["time"], node.name))
    order = [name for _, name in sorted(events)]
    assert order == [n["name"] for n in result["nodes"]]  # in rollout order, never together
    assert all(n["restarted"] for n in result["nodes"])
    again = _provision(fsb, 1).result()
    assert again["writes"] == 0, again
    assert all(len(_restart_events(n)) == 1 for n in site.nodes)


def test_node_credential_rotation_rolls_node_by_node_with_proof(fsb: FlowSandbox) -> None:
    from flows.rotate_client_token import rotate_client_token

    site = fsb.site(1)  # node model, provisioned by the test above
    before = {n.name: len(_restart_events(n)) for n in site.nodes}
    out = rotate_client_token(fsb.site_blocks[1], fsb.parent_block, force=True)
    assert out["outcome"] == "rotated (forced)", out
    rows = [s for s in out["steps"] if s["step"] == "node-mirror"]
    assert [r["resource"].split(":")[0] for r in rows] == [
        f"node {n.name}" for n in (*site.nodes[1:], site.nodes[0])
    ]
    events = sorted((_restart_events(n)[-1]["time"], n.name) for n in site.nodes)
    assert [name for _, name in events] == [n.name for n in (*site.nodes[1:], site.nodes[0])]
    for node in site.nodes:
        assert len(_restart_events(node)) == before[node.name] + 1, node.name


def test_status_reports_every_node(fsb: FlowSandbox) -> None:
    from flows.site_status import site_status

    facts = site_status(fsb.site_blocks[0], fsb.parent_block)
    assert facts["healthy"] is True
    assert sorted(n["name"] for n in facts["nodes"]) == sorted(n.name for n in fsb.site(0).nodes)
    assert all(
        (n["mirror"], n["hosts_toml"], n["canary_pull"]) == ("ok", "ok", "ok")
        for n in facts["nodes"]
    ), facts["nodes"]


def test_failed_restart_rolls_the_node_back_and_stops_the_rollout(fsb: FlowSandbox) -> None:
    from blocks.edge_site import EdgeSite

    block = EdgeSite.load(fsb.site_blocks[2])
    block.auth_model = "node"
    block.save(fsb.site_blocks[2], overwrite=True)
    site = fsb.site(2)
    first_agent, second_agent, server = site.nodes[1], site.nodes[2], site.nodes[0]
    operator_file = (
        b'# the operator\'s file\nmirrors:\n  docker.io:\n    endpoint: ["https://m.example"]\n'
    )
    for node in site.nodes:
        node.registries_path.write_bytes(operator_file)
    first_agent.knobs.fail_restart = 1
    state = _provision(fsb, 2)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert first_agent.name in message and "Rolled back" in message, message
    assert _registries(first_agent) == operator_file  # the backup, byte for byte
    assert len(_restart_events(first_agent)) == 2  # the failed one, then with the old file
    for untouched in (second_agent, server):
        assert _registries(untouched) == operator_file, untouched.name
        assert _restart_events(untouched) == [], untouched.name
    # Fixed, the re-run converges every node.
    assert _provision(fsb, 2).result()["outcome"] == "converged"


def test_failed_node_canary_rolls_that_node_back(fsb: FlowSandbox) -> None:
    site = fsb.site(3)
    first_agent, second_agent, server = site.nodes[1], site.nodes[2], site.nodes[0]
    second_agent.knobs.fail_pulls = True
    state = _provision(fsb, 3)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert second_agent.name in message and "canary" in message, message
    assert b"mirrors" in (_registries(first_agent) or b"")  # proven before the failure
    assert _registries(second_agent) is None  # it had no file: removed again
    assert _registries(server) is None  # never reached
    second_agent.knobs.fail_pulls = False
    assert _provision(fsb, 3).result()["outcome"] == "converged"


def test_unreachable_node_fails_before_any_write(tmp_path_factory: pytest.TempPathFactory) -> None:
    box = start(tmp_path_factory.mktemp("unreachable"), sites=1, nodes_per_site=NODES)
    try:
        site = box.site(0)
        site.nodes[2].knobs.unreachable = True
        box.azure.clear_requests()
        state = provision_site(
            box.site_blocks[0],
            box.parent_block,
            ProvisionSpec(**spec(enable_data_endpoint=True)),
            return_state=True,
        )
        assert state.is_failed()
        message = str(state.result(raise_on_failure=False))
        assert site.nodes[2].name in message, message
        assert box.arm_writes() == []
        for node in site.nodes:
            assert _registries(node) is None
        assert site.helm_revision("connected-registry", "connected-registry") == 0
    finally:
        box.running.stop()


def test_host_keys_are_pinned_per_node(fsb: FlowSandbox) -> None:
    from blocks.edge_site import EdgeSite

    name = fsb.site_blocks[4]
    nodes = fsb.info["sites"][4]["nodes"]
    block = EdgeSite.load(name)
    # Agent 2 pinned to agent 3's key: a changed key, refused before anything is written.
    host_part = nodes[1]["known_hosts"].split()[0]
    wrong = " ".join([host_part, *nodes[2]["known_hosts"].split()[1:]])
    block.known_hosts = [nodes[0]["known_hosts"], wrong, nodes[2]["known_hosts"]]
    block.save(name, overwrite=True)
    fsb.azure.clear_requests()
    state = _provision(fsb, 4)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert nodes[1]["name"] in message, message
    assert fsb.arm_writes() == []
    # Trust on first use records one line per node, saved in the block, then turned off.
    block = EdgeSite.load(name)
    block.known_hosts = []
    block.trust_on_first_use = True
    block.save(name, overwrite=True)
    assert _provision(fsb, 4).result()["outcome"] == "converged"
    saved = EdgeSite.load(name)
    assert sorted(saved.known_hosts) == sorted(n["known_hosts"] for n in nodes)
    assert saved.trust_on_first_use is False
