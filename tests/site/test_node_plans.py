"""Which nodes, in which order, reached how: the pure node plans against the EdgeSite block."""

from __future__ import annotations

from typing import Any

import pytest

from blocks.edge_site import EdgeSite
from model.errors import InputError
from model.site import NodeFact, NodeTarget
from tasks.site.node_plans import (
    check_overrides,
    node_targets,
    order_nodes,
    parse_selector,
    select_nodes,
)

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----"
PIN = (
    "[10.0.0.7]:2200 ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAIEvmD3fLh2MHh1yO8P0N7ZqZyZ0iFQh5oTq0bYb5Jq3f"
)


def _site(**kw: Any) -> EdgeSite:
    args: dict[str, Any] = {
        "name": "plant01",
        "ssh_host": "10.0.0.5",
        "ssh_port": 2222,
        "ssh_user": "edge",
        "ssh_private_key": KEY,
    }
    return EdgeSite(**(args | kw))


def _fact(name: str, role: str, ip: str, **labels: str) -> NodeFact:
    base = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if role == "server":
        base["node-role.kubernetes.io/control-plane"] = "true"
    return NodeFact(name, role, ip, True, tuple(sorted((base | labels).items())))


S1 = _fact("srv-1", "server", "10.0.0.5")
S2 = _fact("srv-2", "server", "10.0.0.6")
A1 = _fact("agent-b", "agent", "10.0.0.8", zone="north")
A2 = _fact("agent-a", "agent", "10.0.0.7", zone="south")
FACTS = [S2, A1, S1, A2]


def test_selector_all_and_by_label() -> None:
    assert select_nodes(FACTS, "all") == FACTS
    assert select_nodes(FACTS, " zone=north ") == [A1]
    assert select_nodes(FACTS, "kubernetes.io/hostname=srv-2") == [S2]
    assert select_nodes(FACTS, "node-role.kubernetes.io/control-plane=true") == [S2, S1]
    assert parse_selector("all") is None
    assert parse_selector("a.b/c=") == ("a.b/c", "")


@pytest.mark.parametrize(
    "selector", ["", "zone", "zone==north", "zone=a=b", "-zone=x", "Zo ne=x", "a/b/c=x", "x=-y"]
)
def test_malformed_selector_is_refused(selector: str) -> None:
    with pytest.raises(InputError, match="neither 'all' nor one label") as info:
        select_nodes(FACTS, selector)
    assert "key=value" in str(info.value)  # the fix says what to give


def test_selector_matching_nothing_is_refused_listing_the_nodes() -> None:
    with pytest.raises(InputError, match="matches no node") as info:
        select_nodes(FACTS, "zone=west")
    assert "agent-a, agent-b, srv-1, srv-2" in str(info.value)
    with pytest.raises(InputError, match="matches no node"):
        select_nodes([], "all")


def test_order_agents_first_or_servers_first_stable_by_name() -> None:
    names = [f.name for f in order_nodes(FACTS, "agents-first")]
    assert names == ["agent-a", "agent-b", "srv-1", "srv-2"]
    names = [f.name for f in order_nodes(FACTS, "servers-first")]
    assert names == ["srv-1", "srv-2", "agent-a", "agent-b"]
    with pytest.raises(InputError, match="node_order"):
        order_nodes(FACTS, "random")


def test_targets_default_to_internal_ip_with_the_site_ssh_settings() -> None:
    site = _site()
    targets = node_targets(site, order_nodes(FACTS, "agents-first"))
    assert targets[0] == NodeTarget(
        "agent-a", "agent", "10.0.0.7", 2222, "edge", "k3s-agent", via_jump=True
    )
    by_name = {t.name: t for t in targets}
    # The node at the site's own address is the jump host: reached directly.
    assert by_name["srv-1"] == NodeTarget("srv-1", "server", "10.0.0.5", 2222, "edge", "k3s")
    assert by_name["srv-2"].via_jump and by_name["srv-2"].service == "k3s"
    assert by_name["agent-b"].resource == "node agent-b (edge@10.0.0.8:2222)"


def test_overrides_change_only_what_they_give() -> None:
    site = _site(
        nodes=[
            {"name": "agent-a", "ssh_port": 2200, "known_hosts": [PIN]},
            {"name": "agent-b", "ssh_host": "agent-b.plant", "ssh_user": "ops"},
            {"name": "srv-2", "ssh_host": "10.0.0.5", "ssh_port": 2223},
        ]
    )
    by_name = {t.name: t for t in node_targets(site, FACTS)}
    a, b, s2 = by_name["agent-a"], by_name["agent-b"], by_name["srv-2"]
    assert (a.host, a.port, a.user, a.known_hosts) == ("10.0.0.7", 2200, "edge", (PIN,))
    assert (b.host, b.port, b.user, b.via_jump) == ("agent-b.plant", 2222, "ops", True)
    # An override equal to the site's own host is reached directly, whatever its port.
    assert (s2.host, s2.port, s2.via_jump) == ("10.0.0.5", 2223, False)


def test_jump_off_connects_to_every_node_directly() -> None:
    targets = node_targets(_site(ssh_jump=False), FACTS)
    assert not any(t.via_jump for t in targets)


def test_service_by_role_and_distribution() -> None:
    rke2 = {t.name: t.service for t in node_targets(_site(distribution="rke2"), FACTS)}
    assert rke2 == {
        "srv-1": "rke2-server",
        "srv-2": "rke2-server",
        "agent-a": "rke2-agent",
        "agent-b": "rke2-agent",
    }
    custom = _site(service_name="k3s-custom", agent_service_name="k3s-node@edge")
    services = {t.role: t.service for t in node_targets(custom, FACTS)}
    assert services == {"server": "k3s-custom", "agent": "k3s-node@edge"}


def test_node_without_an_address_needs_an_override() -> None:
    bare = NodeFact("agent-x", "agent", "", True)
    with pytest.raises(InputError, match="agent-x has no InternalIP") as info:
        node_targets(_site(), [bare])
    assert "nodes override with ssh_host for agent-x" in str(info.value)
    (target,) = node_targets(_site(nodes=[{"name": "agent-x", "ssh_host": "10.1.1.1"}]), [bare])
    assert target.host == "10.1.1.1"


def test_override_for_an_unknown_node_is_refused() -> None:
    check_overrides(_site(nodes=[{"name": "agent-a", "ssh_port": 22}]), FACTS)
    with pytest.raises(InputError, match="names no node of the cluster: agent-z") as info:
        check_overrides(_site(nodes=[{"name": "agent-z", "ssh_port": 22}]), FACTS)
    assert "srv-1" in str(info.value)
