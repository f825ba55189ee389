"""A three-node simulated site through the real clients: nodes, addresses, host keys, the jump
host, agent restarts, and the sandbox.json entry."""

from __future__ import annotations

import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest
from kubernetes import client

from sandbox import cli
from sandbox.runner import start_sandbox
from sandbox.sites import SimulatedSite
from sandbox.sites.testing import kube_client, run, ssh_client

SITE_KEYS = {
    "name",
    "ssh_host",
    "ssh_port",
    "ssh_user",
    "private_key_path",
    "known_hosts",
    "root",
    "registries_path",
    "kubeconfig_path",
    "hosts_dir",
    "kube_api_host",
    "kube_api_port",
    "command_log",
}
NODE_KEYS = (SITE_KEYS - {"kube_api_host", "kube_api_port"}) | {"role", "internal_ip", "service"}


def wait(predicate: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def ready(core: Any) -> dict[str, bool]:
    return {
        n.metadata.name: any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)
        for n in core.list_node().items
    }


def test_nodes_are_listed_with_roles_internal_ip_and_ready(cluster: SimulatedSite) -> None:
    core = client.CoreV1Api(kube_client(cluster.info))
    nodes = {n.metadata.name: n for n in core.list_node().items}
    assert sorted(nodes) == ["site1", "site1-n2", "site1-n3"]
    assert cluster.node_names == ["site1", "site1-n2", "site1-n3"]
    for info in cluster.info["nodes"]:
        node = nodes[info["name"]]
        labels = node.metadata.labels
        assert labels["kubernetes.io/hostname"] == info["name"]
        assert labels["kubernetes.io/os"] == "linux"
        server = info["role"] == "server"
        assert (labels.get("node-role.kubernetes.io/control-plane") == "true") is server
        assert (labels.get("node-role.kubernetes.io/master") == "true") is server
        addresses = {a.type: a.address for a in node.status.addresses}
        assert addresses == {"InternalIP": info["internal_ip"], "Hostname": info["name"]}
        assert info["service"] == ("k3s" if server else "k3s-agent")
    assert [i["internal_ip"] for i in cluster.info["nodes"]] == [
        "127.0.0.1",
        "127.1.1.2",
        "127.1.1.3",
    ]
    assert ready(core) == {"site1": True, "site1-n2": True, "site1-n3": True}


def test_sandbox_json_entry_keeps_node1_keys_and_lists_every_node(cluster: SimulatedSite) -> None:
    info = cluster.info
    assert set(info) == SITE_KEYS | {"nodes"}
    first = info["nodes"][0]
    assert {k: info[k] for k in NODE_KEYS - {"role", "internal_ip", "service"}} == {
        k: first[k] for k in NODE_KEYS - {"role", "internal_ip", "service"}
    }
    for node, entry in zip(cluster.nodes, info["nodes"], strict=True):
        assert set(entry) == NODE_KEYS
        assert entry["ssh_port"] == info["ssh_port"]  # one port: InternalIP + the site's port
        assert entry["ssh_host"] == entry["internal_ip"] == node.internal_ip
        assert entry["root"] == str(node.root) and entry["command_log"] == str(node.command_log)
    assert info["nodes"][1]["root"].endswith("sites/site1/nodes/site1-n2/root")
    assert info["root"].endswith("sites/site1/root")


def test_each_node_answers_at_its_own_address_with_its_own_host_key(
    cluster: SimulatedSite,
) -> None:
    roots, keys = [], set()
    for entry in cluster.info["nodes"]:
        ssh = ssh_client(entry)
        try:
            rc, out, _ = run(ssh, "pwd; echo $KUBECONFIG")
            assert rc == 0
            roots.append(out.split("\n")[0])
            keys.add(ssh.get_transport().get_remote_server_key().get_base64())
        finally:
            ssh.close()
    assert roots == [str(n.root) for n in cluster.nodes]
    assert len(keys) == 3
    # node 2's key does not pass for node 3's address
    n2, n3 = cluster.info["nodes"][1:]
    host3 = f"[{n3['ssh_host']}]:{n3['ssh_port']}"
    with pytest.raises(paramiko.BadHostKeyException):
        ssh_client({**n3, "known_hosts": f"{host3} {n2['known_hosts'].split(' ', 1)[1]}"})
    # each node logs only its own commands
    for node in cluster.nodes:
        assert sum("echo $KUBECONFIG" in e.get("command", "") for e in node.commands()) == 1


def test_node1_is_the_jump_host_to_an_agent(cluster: SimulatedSite) -> None:
    server, agent = cluster.info["nodes"][0], cluster.info["nodes"][1]
    jump = ssh_client(server)
    try:
        transport = jump.get_transport()
        assert transport is not None
        channel = transport.open_channel(
            "direct-tcpip", (agent["ssh_host"], agent["ssh_port"]), ("127.0.0.1", 0)
        )
        inner = paramiko.SSHClient()
        host, algo, blob = agent["known_hosts"].split()[:3]
        inner.get_host_keys().add(host, algo, paramiko.Ed25519Key(data=base64.b64decode(blob)))
        inner.set_missing_host_key_policy(paramiko.RejectPolicy())
        inner.connect(
            agent["ssh_host"],
            port=agent["ssh_port"],
            username=agent["ssh_user"],
            pkey=paramiko.Ed25519Key.from_private_key_file(agent["private_key_path"]),
            sock=channel,
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        try:
            assert run(inner, "pwd")[1] == f"{agent['root']}\n"
        finally:
            inner.close()
    finally:
        jump.close()
    # an agent is no jump host and has no API to tunnel to
    direct = ssh_client(agent)
    try:
        transport = direct.get_transport()
        assert transport is not None
        with pytest.raises(paramiko.ChannelException):
            transport.open_channel(
                "direct-tcpip", ("127.0.0.1", cluster.info["kube_api_port"]), ("127.0.0.1", 0)
            )
        rc, _, err = run(direct, "kubectl get nodes")
        assert rc != 0 and "localhost:8080 was refused" in err
    finally:
        direct.close()


def test_agent_restart_keeps_the_api_and_makes_only_that_node_not_ready(
    cluster: SimulatedSite,
) -> None:
    cluster.knobs.restart_time = 0.5
    core = client.CoreV1Api(kube_client(cluster.info))
    agent = cluster.node("site1-n2")
    ssh = ssh_client(agent.info)
    result: dict[str, Any] = {}
    try:
        rc, _, err = run(ssh, "sudo systemctl restart k3s")
        assert rc == 5 and "Unit k3s.service not found" in err  # agents have k3s-agent only
        thread = threading.Thread(
            target=lambda: result.update(out=run(ssh, "sudo systemctl restart k3s-agent"))
        )
        thread.start()
        during = wait(lambda: (r := ready(core))["site1-n2"] is False and r)
        assert during == {"site1": True, "site1-n2": False, "site1-n3": True}
        thread.join(30)
    finally:
        ssh.close()
    assert result["out"][0] == 0
    assert ready(core) == {"site1": True, "site1-n2": True, "site1-n3": True}
    assert (agent.restart_count, cluster.restart_count) == (1, 0)
    events = [e for e in agent.commands() if e.get("event") == "k3s-restart"]
    assert [(e["unit"], e["ok"]) for e in events] == [("k3s-agent", True)]


def test_bad_registries_yaml_keeps_an_agent_not_ready_and_the_api_up(
    cluster: SimulatedSite,
) -> None:
    core = client.CoreV1Api(kube_client(cluster.info))
    agent = cluster.node("site1-n3")
    agent.registries_path.write_text(
        "configs:\n  r.example:\n    tls:\n      insecure_skip_verify: 'yes'\n"
    )
    ssh = ssh_client(agent.info)
    try:
        rc, _, err = run(ssh, "sudo systemctl restart k3s-agent")
        assert rc != 0 and "k3s-agent.service failed" in err
        assert run(ssh, "systemctl is-active k3s-agent")[:2] == (3, "failed\n")
        assert ready(core) == {"site1": True, "site1-n2": True, "site1-n3": False}
        agent.registries_path.write_text("mirrors: {}\n")
        assert run(ssh, "sudo systemctl restart k3s-agent")[0] == 0
    finally:
        ssh.close()
    assert ready(core)["site1-n3"] is True
    assert agent.k3s.failed_restarts == 1


def test_sandbox_up_passes_nodes_per_site_into_sandbox_json(tmp_path: Path) -> None:
    running = start_sandbox(tmp_path, sites=1, nodes_per_site=2, propagation_delay=0)
    try:
        saved = json.loads(running.json_path.read_text())
    finally:
        running.stop()
    (site,) = saved["sites"]
    assert [n["name"] for n in site["nodes"]] == ["site1", "site1-n2"]
    assert [n["role"] for n in site["nodes"]] == ["server", "agent"]


def test_sandbox_up_refuses_a_node_count_out_of_range(tmp_path: Path) -> None:
    assert cli.main(["up", "--state-dir", str(tmp_path), "--nodes-per-site", "0"]) == 2
    assert not (tmp_path / "sandbox.json").exists()
