"""One machine of a simulated site: its SSH server, files, K3s service and kubelet/containerd.

Node 1 is the server (unit ``k3s``, the Kubernetes API, helm and kubectl); nodes 2.. are agents
(unit ``k3s-agent``, no kubeconfig, no API). Every node has its own host key, root, command log
and certs.d; the site's one client key is authorized on all of them. An agent's restart makes
only its Node NotReady; the server's also takes the API down.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sandbox.sites import keys
from sandbox.sites.k3s_service import K3sService
from sandbox.sites.kube_objects import BY_KIND
from sandbox.sites.ssh_server import NodeSsh, SshConfig, SshKnobs, is_loopback
from sandbox.sites.tool_result import ToolResult
from sandbox.sites.tools import CONTROL_ENV, SUDOERS_ENV, TOKEN_ENV, write_tools

if TYPE_CHECKING:
    from sandbox.sites.kubelet import Kubelet
    from sandbox.sites.site import SimulatedSite

SSH_USER = "edge"
UNREACHABLE = ("", "close", "refuse")


class NodeKnobs:
    """Per-node failure knobs; change them on a live node (``node.knobs.fail_pulls = True``).

    ``unreachable``: False/"" reachable, True/"close" (TCP accepted, closed before the SSH
    banner) or "refuse" (listener closed: connection refused). ``fail_restart``: the next N
    restarts of this node's service fail. ``fail_pulls``: every image pull on this node fails.
    """

    def __init__(self, ssh: SshKnobs | None = None) -> None:
        self.ssh = ssh or SshKnobs()
        self.fail_restart = 0
        self.fail_pulls = False
        self._unreachable = ""
        self._node: SimulatedNode | None = None

    @property
    def unreachable(self) -> str:
        return self._unreachable

    @unreachable.setter
    def unreachable(self, value: bool | str) -> None:
        mode = "close" if value is True else "" if value is False else str(value)
        if mode not in UNREACHABLE:
            raise ValueError(f"unreachable must be one of {UNREACHABLE} or a bool")
        self._unreachable = mode
        if self._node is not None:
            self._node.apply_listening()


class SimulatedNode:
    def __init__(
        self, site: SimulatedSite, index: int, internal_ip: str, base_dir: Path, knobs: NodeKnobs
    ) -> None:
        self.site = site
        self.index = index
        self.name = site.name if index == 1 else f"{site.name}-n{index}"
        self.role = "server" if index == 1 else "agent"
        self.service = "k3s" if index == 1 else "k3s-agent"
        self.internal_ip = internal_ip
        self.knobs = knobs
        knobs._node = self
        self.dir = base_dir
        self.root = base_dir / "root"
        self.bin_dir = base_dir / "bin"
        self.home = base_dir / "home"
        self.command_log = base_dir / "commands.log"
        self.registries_path = self.root / "etc/rancher/k3s/registries.yaml"
        self.hosts_dir = self.root / "var/lib/rancher/k3s/agent/etc/containerd/certs.d"
        # The sudoers recipe knob: when a test writes this file, the node's sudo enforces it.
        self.sudoers_path = self.root / "etc/sudoers.d/acr-edge"
        self.host_key = keys.new_ssh_key()
        self._token = secrets.token_urlsafe(24)
        self.k3s = K3sService(
            registries_path=self.registries_path,
            hosts_dir=self.hosts_dir,
            command_log=self.command_log,
            api_down=self._down,
            api_up=self._up,
            restart_time=lambda: site.knobs.restart_time,
            role=self.role,
            fail_restart=self._consume_fail_restart,
        )
        self.ssh = NodeSsh(
            SshConfig(
                user=SSH_USER,
                host_key=self.host_key,
                client_key=site.client_key,
                root=self.root,
                command_log=self.command_log,
                env=self._exec_env,
                bind_host=internal_ip,
                forward=self._may_forward,
                unreachable=lambda: "close" if self.knobs.unreachable == "close" else "",
            ),
            knobs.ssh,
        )
        self.kubelet: Kubelet | None = None
        self.info: dict[str, Any] = {}

    @property
    def is_server(self) -> bool:
        return self.role == "server"

    # --- lifecycle ---------------------------------------------------------------------------

    def write_files(self) -> None:
        for path in (self.root / "etc/rancher/k3s", self.hosts_dir, self.bin_dir, self.home):
            path.mkdir(parents=True, exist_ok=True)
        write_tools(self.bin_dir)
        self.command_log.touch()

    async def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Kubelet and tools; the SSH listener is started by the site (one port for all)."""
        from sandbox.sites.kubelet import Kubelet

        self.kubelet = Kubelet(self.site, self, loop)
        self.site.control.register(self._token, self._tool)
        if self.knobs.unreachable == "refuse":
            await self.ssh.set_listening(False)

    def describe(self) -> dict[str, Any]:
        """This node's entry of ``sites[].nodes[]`` in sandbox.json."""
        site = self.site
        self.info = {
            "name": self.name,
            "ssh_host": self.internal_ip,
            "ssh_port": self.ssh.port,
            "ssh_user": SSH_USER,
            "private_key_path": str(site.private_key_path),
            "known_hosts": keys.known_hosts_line(self.internal_ip, self.ssh.port, self.host_key),
            "root": str(self.root),
            "registries_path": str(self.registries_path),
            # An agent has no kubeconfig of its own; this is the cluster's (node 1's) file.
            "kubeconfig_path": str(site.kubeconfig_path),
            "hosts_dir": str(self.hosts_dir),
            "command_log": str(self.command_log),
            "role": self.role,
            "internal_ip": self.internal_ip,
            "service": self.service,
        }
        return self.info

    async def stop(self) -> None:
        self.site.control.unregister(self._token)
        if self.kubelet is not None:
            self.kubelet.stop()
        await self.ssh.stop()

    def apply_listening(self) -> None:
        """Open/close the SSH listener for the ``unreachable`` knob, from any thread."""
        coro = self.ssh.set_listening(self.knobs.unreachable != "refuse")
        loop = self.site.loop
        if loop.on_loop():
            loop.loop.create_task(coro)
        elif self.ssh.port:
            loop.run(coro)
        else:
            coro.close()

    # --- K3s start/stop effects -----------------------------------------------------------------

    def _consume_fail_restart(self) -> bool:
        if self.knobs.fail_restart > 0:
            self.knobs.fail_restart -= 1
            return True
        return False

    async def _down(self) -> None:
        if self.is_server:
            await self.site.api_server.stop()
        self.set_ready(False)

    async def _up(self) -> None:
        self.set_ready(True)
        if self.is_server:
            await self.site.api_server.start()

    def set_ready(self, ready: bool) -> None:
        store = self.site.store

        def apply(node: dict[str, Any]) -> None:
            node["status"]["conditions"] = [store.ready_condition(ready)]

        store.mutate(BY_KIND["Node"], "", self.name, apply)

    @property
    def ready(self) -> bool:
        node = self.site.store.find(BY_KIND["Node"], "", self.name)
        conditions = (node or {}).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # --- SSH forwarding, exec environment and tools ----------------------------------------------

    def _may_forward(self, host: str, port: int) -> bool:
        # The server is the jump host (ProxyJump to an agent's InternalIP) and the API tunnel.
        return self.is_server and is_loopback(host)

    def _exec_env(self) -> dict[str, str]:
        env = {
            "PATH": f"{self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.home),
            "USER": SSH_USER,
            "LOGNAME": SSH_USER,
            "SHELL": "/bin/sh",
            "LANG": "C.UTF-8",
            CONTROL_ENV: self.site.control.url,
            SUDOERS_ENV: str(self.sudoers_path),
            TOKEN_ENV: self._token,
        }
        if self.is_server:
            env["KUBECONFIG"] = str(self.site.kubeconfig_path)
        return env

    async def _tool(self, tool: str, argv: list[str], stdin: bytes, cwd: str) -> ToolResult:
        if tool == "systemctl":
            return await self.k3s.systemctl(argv)
        if tool == "k3s" and argv[:1] in (["--version"], ["-v"], ["version"]):
            return ToolResult("k3s version v1.31.4+k3s1 (a3fa0dd3)\ngo version go1.22.9\n")
        if not self.is_server and tool in ("kubectl", "k3s", "helm"):
            # An agent has no /etc/rancher/k3s/k3s.yaml: clients fall back to localhost:8080.
            return ToolResult.fail(
                "The connection to the server localhost:8080 was refused - "
                "did you specify the right host or port?"
            )
        return await self.site.server_tool(tool, argv, stdin, cwd)

    # --- state for tests ------------------------------------------------------------------------

    @property
    def restart_count(self) -> int:
        return self.k3s.restarts

    def commands(self) -> list[dict[str, Any]]:
        """The command log, one dict per line (execs and K3s restart events)."""
        return [json.loads(line) for line in self.command_log.read_text().splitlines() if line]
