"""One simulated K3s site: a cluster of nodes with one Kubernetes API, helm and runtime.

Node 1 (``site.nodes[0]``, named like the site) is the server and holds the API on 127.0.0.1;
nodes 2.. are agents named ``<site>-n<k>`` on their own loopback InternalIP
``127.<1 + i//256>.<i%256>.<k>`` (site index i from 1) with the same SSH port as node 1.
``site.root``, ``site.ssh``, ``site.k3s``, ``site.kubelet``, ``site.registries_path`` ... are
node 1's, as they were when a site was one node.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sandbox.sites import keys
from sandbox.sites.aio import LoopThread
from sandbox.sites.azure_link import AzureLink
from sandbox.sites.helm_sim import HelmSimulator
from sandbox.sites.httpd import HttpServer
from sandbox.sites.kube_http import KubeApi
from sandbox.sites.kube_objects import BY_PATH, ApiError
from sandbox.sites.kube_store import KubeStore
from sandbox.sites.node import SSH_USER, NodeKnobs, SimulatedNode
from sandbox.sites.runtime import ConnectedRegistryRuntime, DeploymentController
from sandbox.sites.scheduler import Scheduler
from sandbox.sites.ssh_server import SshKnobs
from sandbox.sites.tool_result import ToolResult
from sandbox.sites.tools import ControlChannel

__all__ = ["SSH_USER", "SimulatedSite", "SiteKnobs", "agent_address"]
_PORT_ATTEMPTS = 8


@dataclass
class SiteKnobs:
    """Test knobs; change them on a live site (``site.knobs.restart_time = 2``).

    ``ssh`` is node 1's; the timings apply to every node. Per-node failure knobs are
    ``site.nodes[k].knobs`` (``NodeKnobs``).
    """

    ssh: SshKnobs = field(default_factory=SshKnobs)
    restart_time: float = 0.2  # API down (server) / node NotReady (agent) this long per restart
    pod_ready_time: float = 0.2  # runtime/deployment pods become Ready after this
    pull_time: float = 0.1  # an image pull takes this long
    pull_backoff: float = 0.5  # first retry delay after a failed pull (doubles, max 8x)
    pod_run_time: float = 0.1  # a pulled pod with restartPolicy != Always runs this long
    api_unavailable: bool = False  # API answers 503 (listener stays up)
    # While set, every `helm upgrade` of an existing release (not an install, not a rollback)
    # rolls a connected-registry pod that never becomes Ready (CrashLoopBackOff).
    fail_upgrade: bool = False
    # While set, every HTTPS connected registry of the site serves a certificate for the same
    # names issued by another CA (a wrong Secret mounted): clients see an unknown authority.
    tls_serve_wrong_cert: bool = False


def agent_address(site_index: int, node_index: int) -> str:
    """The loopback InternalIP of agent ``node_index`` (>= 2) of site ``site_index`` (>= 1)."""
    return f"127.{1 + site_index // 256}.{site_index % 256}.{node_index}"


class SimulatedSite:
    """A cluster; ``info`` is its ``sites`` entry of sandbox.json (node 1's keys + ``nodes``)."""

    def __init__(
        self,
        name: str,
        base_dir: Path,
        azure: AzureLink,
        loop: LoopThread,
        control: ControlChannel,
        knobs: SiteKnobs | None = None,
        *,
        index: int = 1,
        nodes: int = 1,
    ) -> None:
        if nodes < 1 or nodes > 254:
            raise ValueError("nodes per site must be between 1 and 254")
        self.name = name
        self.index = index
        self.knobs = knobs or SiteKnobs()
        self.loop = loop
        self.control = control
        self.dir = base_dir
        self.private_key_path = base_dir / "id_ed25519"
        self.kubeconfig_path = base_dir / "root/etc/rancher/k3s/k3s.yaml"
        self._token = secrets.token_urlsafe(24)
        self.tls = keys.NodeTls.generate()
        self.client_key = keys.new_ssh_key()
        self.store = KubeStore(name, self.tls.ca.cert_pem.bytes().decode())
        self.api = KubeApi(
            self.store, unavailable=lambda: self.knobs.api_unavailable, pod_log=self._pod_log
        )
        self.api_server = HttpServer(self.api, ssl_context=self._api_ssl())
        self.runtime = ConnectedRegistryRuntime(
            self.store,
            azure,
            name,
            lambda: self.knobs.pod_ready_time,
            serve_wrong_cert=lambda: self.knobs.tls_serve_wrong_cert,
        )
        self.helm = HelmSimulator(
            self.store, self.runtime, fail_upgrade=lambda: self.knobs.fail_upgrade
        )
        self.azure = azure
        self.nodes: list[SimulatedNode] = [
            SimulatedNode(self, 1, "127.0.0.1", base_dir, NodeKnobs(self.knobs.ssh))
        ]
        for k in range(2, nodes + 1):
            node_name = f"{name}-n{k}"
            self.nodes.append(
                SimulatedNode(
                    self, k, agent_address(index, k), base_dir / "nodes" / node_name, NodeKnobs()
                )
            )
        for node in self.nodes[1:]:
            self.store.add_node(node.name, node.internal_ip, server=False, index=node.index)
        self.scheduler: Scheduler | None = None
        self.info: dict[str, Any] = {}

    # --- nodes -----------------------------------------------------------------------------------

    @property
    def server(self) -> SimulatedNode:
        return self.nodes[0]

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    def node(self, name: str) -> SimulatedNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"{self.name} has no node {name!r} (nodes: {', '.join(self.node_names)})")

    # node 1's parts under the names a one-node site had
    root = property(lambda self: self.server.root)
    bin_dir = property(lambda self: self.server.bin_dir)
    home = property(lambda self: self.server.home)
    command_log = property(lambda self: self.server.command_log)
    registries_path = property(lambda self: self.server.registries_path)
    hosts_dir = property(lambda self: self.server.hosts_dir)
    host_key = property(lambda self: self.server.host_key)
    k3s = property(lambda self: self.server.k3s)
    ssh = property(lambda self: self.server.ssh)
    kubelet = property(lambda self: self.server.kubelet)
    _loop = property(lambda self: self.loop)

    # --- lifecycle ---------------------------------------------------------------------------

    def _api_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.server.configure_cert(ctx)
        self.tls.ca.configure_trust(ctx)
        # Optional at the TLS layer so an anonymous client gets K3s's 401, not a handshake error.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    async def _start_ssh(self) -> None:
        """Node 1 on an ephemeral port P, then every agent on its own address with the same P
        (a port taken on an agent's address means a new P for all)."""
        for attempt in range(_PORT_ATTEMPTS):
            for node in self.nodes:
                node.ssh.port = 0
            port = await self.server.ssh.start()
            try:
                for node in self.nodes[1:]:
                    node.ssh.port = port
                    await node.ssh.start()
                return
            except OSError:
                for node in self.nodes:
                    await node.ssh.stop()
                if attempt == _PORT_ATTEMPTS - 1:
                    raise

    async def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        keys.write_private_key(self.private_key_path, self.client_key)
        (self.dir / "id_ed25519.pub").write_text(keys.public_line(self.client_key) + "\n")
        loop = asyncio.get_running_loop()
        DeploymentController(self.store, loop, lambda: self.knobs.pod_ready_time)
        self.scheduler = Scheduler(self, loop)
        for node in self.nodes:
            node.write_files()
        await self.api_server.start()
        await self._start_ssh()
        for node in self.nodes:
            await node.start(loop)
        server = f"https://127.0.0.1:{self.api_server.port}"
        fd = os.open(self.kubeconfig_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(self.tls.kubeconfig(server), fh, sort_keys=False)
        described = [node.describe() for node in self.nodes]
        first = described[0]
        self.info = {
            **{k: first[k] for k in ("name", "ssh_host", "ssh_port", "ssh_user")},
            "private_key_path": first["private_key_path"],
            "known_hosts": first["known_hosts"],
            "root": first["root"],
            "registries_path": first["registries_path"],
            "kubeconfig_path": first["kubeconfig_path"],
            "hosts_dir": first["hosts_dir"],
            "kube_api_host": "127.0.0.1",
            "kube_api_port": self.api_server.port,
            "command_log": first["command_log"],
            "nodes": described,
        }

    async def _stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stopped = True
        for node in self.nodes:
            await node.stop()
        await self.api_server.stop()

    def stop(self) -> None:
        """Stop this site's servers (idempotent); the shared loop ends with its last site."""
        if self.info.get("stopped"):
            return
        self.loop.run(self._stop())
        self.info["stopped"] = True
        self.loop.release()

    # --- the server's tools (helm and kubectl run against the API on node 1) ---------------------

    async def server_tool(self, tool: str, argv: list[str], stdin: bytes, cwd: str) -> ToolResult:
        if tool == "helm":
            return await self.helm.run(argv, stdin, cwd)
        if tool == "k3s":
            if argv[:1] == ["kubectl"]:
                return self._kubectl(argv[1:])
            return ToolResult.fail(f"k3s: {' '.join(argv[:1])} is not simulated")
        if tool == "kubectl":
            return self._kubectl(argv)
        return ToolResult.fail(f"{tool}: not simulated")

    def _kubectl(self, argv: list[str]) -> ToolResult:
        """``kubectl get KIND [NAME] [-n NS | -A] [-o json|name]`` and ``kubectl version``."""
        if argv[:1] == ["version"]:
            return ToolResult("Client Version: v1.31.4+k3s1\nServer Version: v1.31.4+k3s1\n")
        if self.server.k3s.state != "active":
            return ToolResult.fail(
                f"The connection to the server 127.0.0.1:{self.api_server.port} was refused - "
                "did you specify the right host or port?"
            )
        if argv[:1] != ["get"] or len(argv) < 2:
            return ToolResult.fail("kubectl: only `get` is simulated")
        ns, output, positional, i = "default", "", [], 1
        all_ns = False
        while i < len(argv):
            if argv[i] in ("-n", "--namespace"):
                ns, i = argv[i + 1], i + 2
                continue
            if argv[i] in ("-o", "--output"):
                output, i = argv[i + 1], i + 2
                continue
            if argv[i] in ("-A", "--all-namespaces"):
                all_ns = True
            elif argv[i].startswith("-o"):
                output = argv[i][2:].lstrip("=")
            else:
                positional.append(argv[i])
            i += 1
        plural = {
            "ns": "namespaces",
            "po": "pods",
            "svc": "services",
            "deploy": "deployments",
            "no": "nodes",
            "cm": "configmaps",
            "sa": "serviceaccounts",
            "pvc": "persistentvolumeclaims",
        }.get(positional[0], positional[0])
        plural = plural if plural.endswith("s") else plural + "s"
        rt = BY_PATH.get(("", "v1", plural)) or BY_PATH.get(("apps", "v1", plural))
        if rt is None:
            return ToolResult.fail(
                f'error: the server doesn\'t have a resource type "{positional[0]}"'
            )
        try:
            if len(positional) > 1:
                objs = [self.store.get(rt, ns, positional[1])]
            else:
                objs = self.store.list(rt, None if all_ns else ns)
        except ApiError as err:
            return ToolResult.fail(f"Error from server ({err.reason}): {err.message}")
        if output == "json":
            doc = (
                objs[0]
                if len(positional) > 1
                else {"apiVersion": "v1", "kind": "List", "items": objs}
            )
            return ToolResult(json.dumps(doc, indent=4) + "\n")
        if output == "name":
            return ToolResult("".join(f"{rt.kind.lower()}/{o['metadata']['name']}\n" for o in objs))
        return ToolResult("NAME\n" + "".join(f"{o['metadata']['name']}\n" for o in objs))

    def _pod_log(self, namespace: str, name: str) -> str:
        pod = self.store.find(BY_PATH[("", "v1", "pods")], namespace, name)
        bound = ((pod or {}).get("spec") or {}).get("nodeName")
        for node in self.nodes:
            if node.name == bound and node.kubelet is not None:
                return str(node.kubelet.log(namespace, name))
        return ""

    # --- state for tests ------------------------------------------------------------------------

    @property
    def restart_count(self) -> int:
        return self.server.k3s.restarts

    def helm_revision(self, namespace: str, release: str) -> int:
        return self.helm.revision(namespace, release)

    def commands(self) -> list[dict[str, Any]]:
        """Node 1's command log, one dict per line (execs and K3s restart events)."""
        return self.server.commands()

    def call(self, coro: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the sites' loop (for tests that poke the simulator directly)."""
        return self.loop.run(coro, timeout)

    def reseed(self, seed: int) -> None:
        """Make SSH drops and pod placement repeatable."""
        rng = random.Random(seed)
        for node in self.nodes:
            node.ssh.reseed(rng.randrange(2**32))
        if self.scheduler is not None:
            self.scheduler.rng.seed(rng.randrange(2**32))
