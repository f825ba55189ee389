"""Reaching every node: the kube API's node list, direct and jump-host SSH, per-node pinning.

Two real OpenSSH servers stand in for two nodes: node A (the ``sshd`` fixture, 127.0.0.1, the
site's ``ssh_host`` and so the jump host) and node B (127.0.0.2, its own host key: the
``other_host`` key that the ``sshd`` fixture uses as the "wrong pin"). The node list comes from
a simulated K3s site's Kubernetes API.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest
from kubernetes import client as k8s
from pydantic import SecretStr

from blocks.edge_site import EdgeSite
from model.errors import PermanentError, TransientError
from model.site import NodeFact, NodeTarget
from tasks.site.connection import SiteConnection, open_site
from tasks.site.node_plans import node_targets
from tasks.site.nodes import node_fact, open_nodes, read_nodes
from tasks.site.ssh import SshSession

_DROP = 'kill -9 "$PPID"'  # kills the sshd process serving this connection


@dataclass
class NodeB:
    port: int
    line: str  # its true known_hosts line
    wrong_line: str  # a valid line with node A's key: a wrong pin for B


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def node_b(sshd: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeB]:
    """A second sshd on 127.0.0.2 with its own host key, same authorized client key."""
    d = tmp_path_factory.mktemp("sshd-b")
    config = d / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.2\nHostKey {sshd.dir}/other_host\nPidFile none\n"
        f"AuthorizedKeysFile {sshd.dir}/authorized_keys\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitUserEnvironment yes\nAllowTcpForwarding yes\n"
        "LogLevel VERBOSE\n"
    )
    port = _free_port("127.0.0.2")
    log = d / "sshd.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(config), "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.2", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd B did not start: {log.read_text()}") from None
                time.sleep(0.01)
        b_key = sshd.other_known_hosts_line.split(maxsplit=1)[1]
        a_key = sshd.known_hosts_line.split(maxsplit=1)[1]
        yield NodeB(port, f"[127.0.0.2]:{port} {b_key}", f"[127.0.0.2]:{port} {a_key}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _block(sshd: Any, **kw: Any) -> EdgeSite:
    args: dict[str, Any] = {
        "name": "plant01",
        "ssh_host": "127.0.0.1",
        "ssh_port": sshd.port,
        "ssh_user": "root",
        "ssh_private_key": SecretStr(sshd.private_key),
        "known_hosts": [sshd.known_hosts_line],
        "connect_timeout": 5,
        "retry_attempts": 2,
    }
    return EdgeSite(**(args | kw))


def _connect(sshd: Any, **kw: Any) -> SshSession:
    args: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": "root",
        "private_key": SecretStr(sshd.private_key),
        "known_hosts": [sshd.known_hosts_line],
        "connect_timeout": 5,
    }
    return SshSession.connect(**(args | kw))


@pytest.fixture
def site_conn(sshd: Any) -> Iterator[SiteConnection]:
    """The site's connection to node A (no Kubernetes API needed: nodes share it untouched)."""
    block = _block(sshd)
    session = SshSession.for_site(block)
    conn = SiteConnection(site=block, ssh=session, api=k8s.ApiClient())
    conn._closers.append(session.close)
    try:
        yield conn
    finally:
        conn.close()


def _target(name: str, host: str, port: int, *, jump: bool = True, **kw: Any) -> NodeTarget:
    return NodeTarget(name, "agent", host, port, "root", "k3s-agent", via_jump=jump, **kw)


# -- SshSession through a jump host --------------------------------------------------------------


def test_jump_host_carries_the_second_hop_with_both_keys_pinned(sshd: Any, node_b: NodeB) -> None:
    with _connect(sshd) as jump:
        with _connect(
            sshd, host="127.0.0.2", port=node_b.port, known_hosts=[node_b.line], jump=jump
        ) as b:
            # The second hop's SSH runs over a channel of the jump's transport, not a socket.
            assert isinstance(b.transport.sock, paramiko.Channel)
            assert b.jump is jump and b.address == ("127.0.0.2", node_b.port)
            assert b.run(["echo", "hello"]).stdout == "hello\n"
            assert b.recorded_host_key is None
        with SshSession.through(
            jump,
            host="127.0.0.2",
            port=node_b.port,
            user="root",
            private_key=SecretStr(sshd.private_key),
            known_hosts=[node_b.line],
        ) as b2:
            assert b2.run(["true"]).ok
        assert jump.run(["true"]).ok  # closing the hop leaves the jump host's session open


def test_wrong_pin_on_the_second_hop_is_refused_before_any_command(
    sshd: Any, node_b: NodeB, tmp_path: Path
) -> None:
    with _connect(sshd) as jump:
        with pytest.raises(PermanentError, match="does not match the pinned key") as info:
            _connect(
                sshd,
                host="127.0.0.2",
                port=node_b.port,
                known_hosts=[node_b.wrong_line],
                jump=jump,
                resource="node agent-b",
            )
        assert "node agent-b" in str(info.value)
        assert jump.run(["true"]).ok


def test_trust_on_first_use_is_per_host(sshd: Any, node_b: NodeB) -> None:
    """A line for another node does not pin this one: first use records this node's key."""
    with _connect(sshd) as jump:
        with _connect(
            sshd,
            host="127.0.0.2",
            port=node_b.port,
            known_hosts=[sshd.known_hosts_line],
            trust_on_first_use=True,
            jump=jump,
        ) as b:
            assert b.recorded_host_key == node_b.line
        with pytest.raises(PermanentError, match="not pinned"):
            _connect(sshd, host="127.0.0.2", port=node_b.port, known_hosts=[sshd.known_hosts_line])


def test_hop_reconnects_through_the_jump_after_either_drops(sshd: Any, node_b: NodeB) -> None:
    with _connect(sshd) as jump:
        b = _connect(sshd, host="127.0.0.2", port=node_b.port, known_hosts=[node_b.line], jump=jump)
        with b:
            with pytest.raises(TransientError, match="dropped"):
                b.run(_DROP)  # the second hop's connection goes
            assert b.run(["true"]).ok
            assert (b.reconnects, jump.reconnects) == (1, 0)
            assert isinstance(b.transport.sock, paramiko.Channel)
            with pytest.raises(TransientError, match="dropped"):
                jump.run(_DROP)  # the jump host's connection goes, and with it the hop's
            assert b.run(["echo", "back"], idempotent=True).stdout == "back\n"
            assert jump.reconnects == 1 and b.reconnects >= 2
            assert isinstance(b.transport.sock, paramiko.Channel)


# -- open_nodes ----------------------------------------------------------------------------------


def test_open_nodes_reuses_the_site_session_and_jumps_to_the_others(
    site_conn: SiteConnection, sshd: Any, node_b: NodeB
) -> None:
    site_target = NodeTarget("srv-a", "server", "127.0.0.1", sshd.port, "root", "k3s")
    b_target = _target("agent-b", "127.0.0.2", node_b.port, known_hosts=(node_b.line,))
    a, b = open_nodes(site_conn, [site_target, b_target])
    assert a.ssh is site_conn.ssh and a.node == site_target and a.service == "k3s"
    assert a.resource == f"node srv-a (root@127.0.0.1:{sshd.port})"
    assert b.node == b_target and b.service == "k3s-agent" and b.api is site_conn.api
    assert isinstance(b.ssh, SshSession) and b.ssh.jump is site_conn.ssh
    assert isinstance(b.ssh.transport.sock, paramiko.Channel)
    assert b.ssh.run(["true"]).ok
    assert site_conn.service == "k3s"  # the site's own connection: the server's unit
    site_conn.close()  # closing the site closes the nodes it opened
    with pytest.raises(TransientError, match="closed"):
        b.ssh.run(["true"])


def test_trust_on_first_use_records_one_line_per_node(sshd: Any, node_b: NodeB) -> None:
    block = _block(sshd, trust_on_first_use=True, known_hosts=[sshd.known_hosts_line])
    a_key = sshd.known_hosts_line.split(maxsplit=1)[1]
    localhost_line = f"[localhost]:{sshd.port} {a_key}"  # node A again, by another name
    targets = [
        _target("agent-b", "127.0.0.2", node_b.port),
        _target("agent-l", "localhost", sshd.port),
    ]
    with SshSession.for_site(block) as session:
        conn = SiteConnection(site=block, ssh=session, api=k8s.ApiClient())
        b, local = open_nodes(conn, targets)
        assert (b.recorded_host_key, local.recorded_host_key) == (node_b.line, localhost_line)
        assert block.known_hosts == [sshd.known_hosts_line, node_b.line, localhost_line]
        conn.close()
    # Pinned now: trust on first use off, every node verified against its recorded line.
    pinned = _block(sshd, known_hosts=block.known_hosts)
    with SshSession.for_site(pinned) as session:
        conn = SiteConnection(site=pinned, ssh=session, api=k8s.ApiClient())
        nodes = open_nodes(conn, targets)
        assert [n.recorded_host_key for n in nodes] == [None, None]
        assert pinned.known_hosts == block.known_hosts
        conn.close()


def test_unreachable_nodes_are_all_tried_and_listed_in_one_error(
    site_conn: SiteConnection, node_b: NodeB, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    original = SshSession.close

    def close(self: SshSession) -> None:
        closed.append(self.resource)
        original(self)

    monkeypatch.setattr(SshSession, "close", close)
    dead = _free_port("127.0.0.1")
    targets = [
        _target("agent-b", "127.0.0.2", node_b.port, known_hosts=(node_b.line,)),
        _target("agent-c", "127.0.0.3", dead, jump=False),
        _target("agent-d", "127.0.0.1", dead),
    ]
    with pytest.raises(TransientError) as info:
        open_nodes(site_conn, targets)
    text = str(info.value)
    assert "2 of 3 nodes cannot be reached" in text
    assert f"node agent-c (root@127.0.0.3:{dead}): cannot connect" in text
    assert f"node agent-d (root@127.0.0.1:{dead}): jump host" in text
    assert "agent-b" not in text
    assert "Fix:" in text and "nodes override" in text
    assert f"node agent-b (root@127.0.0.2:{node_b.port})" in closed  # no session left open
    assert site_conn.ssh.run(["true"]).ok


def test_a_refused_host_key_makes_the_whole_error_permanent(
    site_conn: SiteConnection, node_b: NodeB
) -> None:
    dead = _free_port("127.0.0.1")
    targets = [
        _target("agent-b", "127.0.0.2", node_b.port, known_hosts=(node_b.wrong_line,)),
        _target("agent-d", "127.0.0.1", dead),
    ]
    with pytest.raises(PermanentError) as info:
        open_nodes(site_conn, targets)
    text = str(info.value)
    assert "2 of 2 nodes cannot be reached" in text
    assert "node agent-b" in text and "does not match the pinned key" in text
    assert "node agent-d" in text and site_conn.site.resource in text
    assert site_conn.site.known_hosts == [site_conn.site.known_hosts[0]]  # nothing recorded


def test_unpinned_node_without_trust_on_first_use_is_refused_naming_it(
    site_conn: SiteConnection, node_b: NodeB
) -> None:
    with pytest.raises(PermanentError, match="not pinned") as info:
        open_nodes(site_conn, [_target("agent-b", "127.0.0.2", node_b.port)])
    assert "node agent-b" in str(info.value)


# -- read_nodes ----------------------------------------------------------------------------------


class _NoAzure:
    """The simulated site's Azure link; nothing here activates a registry or pulls."""

    def activate(self, connection_string: str, instance_id: str) -> Any:
        raise AssertionError("not used")

    def pull_check(self, *args: str) -> Any:
        raise AssertionError("not used")


def test_read_nodes_lists_the_cluster_through_the_kube_api(tmp_path: Path) -> None:
    from acr_edge.sandbox_blocks import site_block
    from sandbox.sites import start_sites

    (site,) = start_sites(1, tmp_path, {}, azure=_NoAzure())
    try:
        block = site_block(site.info)
        with open_site(block) as conn:
            facts = read_nodes(conn)
            assert [(f.name, f.role, f.internal_ip, f.ready) for f in facts] == [
                ("site1", "server", "127.0.0.1", True)
            ]
            assert ("kubernetes.io/hostname", "site1") in facts[0].labels
            (target,) = node_targets(block, facts)
            assert (target.via_jump, target.service) == (False, "k3s")
            (node,) = open_nodes(conn, [target])
            assert node.ssh is conn.ssh  # node 1 is the site's own session
            assert node.ssh.run(["true"]).ok
    finally:
        site.stop()


def _node(name: str, labels: dict[str, str], addresses: list[tuple[str, str]], ready: str) -> Any:
    return k8s.V1Node(
        metadata=k8s.V1ObjectMeta(name=name, labels=labels),
        status=k8s.V1NodeStatus(
            addresses=[k8s.V1NodeAddress(address=a, type=t) for t, a in addresses],
            conditions=[k8s.V1NodeCondition(type="Ready", status=ready)],
        ),
    )


def test_node_fact_roles_addresses_and_readiness() -> None:
    agent = _node("a1", {"zone": "n"}, [("Hostname", "a1"), ("InternalIP", "10.0.0.8")], "False")
    assert node_fact(agent) == NodeFact("a1", "agent", "10.0.0.8", False, (("zone", "n"),))
    master = _node("m1", {"node-role.kubernetes.io/master": ""}, [], "True")
    assert (node_fact(master).role, node_fact(master).internal_ip) == ("server", "")
    assert node_fact(_node("u1", {}, [], "Unknown")).ready is False
    bare = k8s.V1Node(metadata=k8s.V1ObjectMeta(name="b1"))
    assert node_fact(bare) == NodeFact("b1", "agent", "", False)


# -- pinning the recorded lines in the block ------------------------------------------------------


def test_pin_host_keys_saves_every_node_line_in_one_save(
    sshd: Any, node_b: NodeB, monkeypatch: pytest.MonkeyPatch
) -> None:
    import prefect

    from flows import host_keys
    from flows.inputs import SiteInputs
    from flows.report import RunReport

    stored = _block(sshd, trust_on_first_use=True)
    saves: list[EdgeSite] = []
    monkeypatch.setattr(EdgeSite, "load", classmethod(lambda cls, name: stored))
    monkeypatch.setattr(EdgeSite, "save", lambda self, name, overwrite: saves.append(self))
    monkeypatch.setattr(prefect, "get_run_logger", lambda: __import__("logging").getLogger("t"))
    inputs = SiteInputs("plant01-site", "parent", stored, None, "plant01", "c", [])  # type: ignore[arg-type]
    report = RunReport("provision-site", "plant01")
    a_key = sshd.known_hosts_line.split(maxsplit=1)[1]
    lines = [node_b.line, f"[localhost]:{sshd.port} {a_key}", node_b.line]
    host_keys.pin_host_keys(inputs, lines, report)
    (saved,) = saves  # one save for every line
    assert saved.known_hosts == [sshd.known_hosts_line, lines[0], lines[1]]
    assert saved.trust_on_first_use is False
    messages = [row["message"] for row in report.rows]
    _, fp_b = host_keys.fingerprint(node_b.line)
    assert (
        messages[0]
        == f"pinned host key ssh-ed25519 {fp_b} for 127.0.0.2:{node_b.port} in block plant01-site"
    )
    assert f"for localhost:{sshd.port}" in messages[1] and len(messages) == 2
    assert [row["writes"] for row in report.rows] == [1, 0]
    host_keys.pin_host_keys(inputs, [], report)
    assert len(saves) == 1  # nothing recorded, nothing saved
    # The single-line form still works (the site's own key).
    host_keys.pin_site_host_key(inputs, node_b.line, report)
    assert len(saves) == 2 and saves[1].known_hosts.count(node_b.line) == 1
