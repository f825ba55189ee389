"""One simulated K3s node: SSH server, node files, Kubernetes API, helm, runtime, K3s service."""

from __future__ import annotations

import asyncio
import json
import os
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
from sandbox.sites.k3s_service import K3sService
from sandbox.sites.kube_http import KubeApi
from sandbox.sites.kube_objects import BY_KIND, BY_PATH, ApiError
from sandbox.sites.kube_store import KubeStore
from sandbox.sites.runtime import ConnectedRegistryRuntime, DeploymentController
from sandbox.sites.ssh_server import NodeSsh, SshConfig, SshKnobs
from sandbox.sites.tool_result import ToolResult
from sandbox.sites.tools import CONTROL_ENV, TOKEN_ENV, ControlChannel, write_tools

SSH_USER = "edge"


@dataclass
class SiteKnobs:
    """Test knobs; change them on a live site (``site.knobs.restart_time = 2``)."""

    ssh: SshKnobs = field(default_factory=SshKnobs)
    restart_time: float = 0.2  # API down this long on each K3s restart
    pod_ready_time: float = 0.2  # runtime/deployment pods become Ready after this
    pull_time: float = 0.1  # an image pull takes this long
    pull_backoff: float = 0.5  # first retry delay after a failed pull (doubles, max 8x)
    pod_run_time: float = 0.1  # a pulled pod with restartPolicy != Always runs this long
    api_unavailable: bool = False  # API answers 503 (listener stays up)


class SimulatedSite:
    """A node; ``info`` is its ``sites`` entry of sandbox.json."""

    def __init__(
        self,
        name: str,
        base_dir: Path,
        azure: AzureLink,
        loop: LoopThread,
        control: ControlChannel,
        knobs: SiteKnobs | None = None,
    ) -> None:
        self.name = name
        self.knobs = knobs or SiteKnobs()
        self._loop = loop
        self._control = control
        self.dir = base_dir
        self.root = base_dir / "root"
        self.bin_dir = base_dir / "bin"
        self.home = base_dir / "home"
        self.command_log = base_dir / "commands.log"
        self.private_key_path = base_dir / "id_ed25519"
        self.registries_path = self.root / "etc/rancher/k3s/registries.yaml"
        self.kubeconfig_path = self.root / "etc/rancher/k3s/k3s.yaml"
        self.hosts_dir = self.root / "var/lib/rancher/k3s/agent/etc/containerd/certs.d"
        self._token = secrets.token_urlsafe(24)
        self.tls = keys.NodeTls.generate()
        self.host_key = keys.new_ssh_key()
        self.client_key = keys.new_ssh_key()
        self.store = KubeStore(name, self.tls.ca.cert_pem.bytes().decode())
        self.api = KubeApi(
            self.store, unavailable=lambda: self.knobs.api_unavailable, pod_log=self._pod_log
        )
        self.api_server = HttpServer(self.api, ssl_context=self._api_ssl())
        self.runtime = ConnectedRegistryRuntime(
            self.store, azure, name, lambda: self.knobs.pod_ready_time
        )
        self.helm = HelmSimulator(self.store, self.runtime)
        self.k3s = K3sService(
            registries_path=self.registries_path,
            hosts_dir=self.hosts_dir,
            command_log=self.command_log,
            api_down=self._api_down,
            api_up=self._api_up,
            restart_time=lambda: self.knobs.restart_time,
        )
        self.ssh = NodeSsh(
            SshConfig(
                user=SSH_USER,
                host_key=self.host_key,
                client_key=self.client_key,
                root=self.root,
                command_log=self.command_log,
                env=self._exec_env,
            ),
            self.knobs.ssh,
        )
        self.kubelet: Any = None
        self.azure = azure
        self.info: dict[str, Any] = {}

    # --- lifecycle ---------------------------------------------------------------------------

    def _api_ssl(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.server.configure_cert(ctx)
        self.tls.ca.configure_trust(ctx)
        # Optional at the TLS layer so an anonymous client gets K3s's 401, not a handshake error.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    def _write_files(self) -> None:
        for path in (self.root / "etc/rancher/k3s", self.hosts_dir, self.bin_dir, self.home):
            path.mkdir(parents=True, exist_ok=True)
        write_tools(self.bin_dir)
        keys.write_private_key(self.private_key_path, self.client_key)
        (self.dir / "id_ed25519.pub").write_text(keys.public_line(self.client_key) + "\n")
        self.command_log.touch()

    async def start(self) -> None:
        from sandbox.sites.kubelet import Kubelet

        self._write_files()
        loop = asyncio.get_running_loop()
        DeploymentController(self.store, loop, lambda: self.knobs.pod_ready_time)
        self.kubelet = Kubelet(self, loop)
        await self.api_server.start()
        await self.ssh.start()
        self._control.register(self._token, self._tool)
        server = f"https://127.0.0.1:{self.api_server.port}"
        fd = os.open(self.kubeconfig_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            yaml.safe_dump(self.tls.kubeconfig(server), fh, sort_keys=False)
        self.info = {
            "name": self.name,
            "ssh_host": "127.0.0.1",
            "ssh_port": self.ssh.port,
            "ssh_user": SSH_USER,
            "private_key_path": str(self.private_key_path),
            "known_hosts": keys.known_hosts_line("127.0.0.1", self.ssh.port, self.host_key),
            "root": str(self.root),
            "registries_path": str(self.registries_path),
            "kubeconfig_path": str(self.kubeconfig_path),
            "hosts_dir": str(self.hosts_dir),
            "kube_api_host": "127.0.0.1",
            "kube_api_port": self.api_server.port,
            "command_log": str(self.command_log),
        }

    async def _stop(self) -> None:
        self._control.unregister(self._token)
        if self.kubelet is not None:
            self.kubelet.stop()
        await self.ssh.stop()
        await self.api_server.stop()

    def stop(self) -> None:
        """Stop this node's servers (idempotent); the shared loop ends with its last node."""
        if self.info.get("stopped"):
            return
        self._loop.run(self._stop())
        self.info["stopped"] = True
        self._loop.release()

    # --- API availability during K3s restarts ---------------------------------------------------

    async def _api_down(self) -> None:
        await self.api_server.stop()
        self.store.mutate(BY_KIND["Node"], "", self.name, self._set_ready(False))

    async def _api_up(self) -> None:
        self.store.mutate(BY_KIND["Node"], "", self.name, self._set_ready(True))
        await self.api_server.start()

    def _set_ready(self, ready: bool) -> Any:
        def apply(node: dict[str, Any]) -> None:
            node["status"]["conditions"] = [self.store.ready_condition(ready)]

        return apply

    # --- exec environment and tools ------------------------------------------------------------

    def _exec_env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin_dir}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.home),
            "USER": SSH_USER,
            "LOGNAME": SSH_USER,
            "SHELL": "/bin/sh",
            "LANG": "C.UTF-8",
            "KUBECONFIG": str(self.kubeconfig_path),
            CONTROL_ENV: self._control.url,
            TOKEN_ENV: self._token,
        }

    async def _tool(self, tool: str, argv: list[str], stdin: bytes, cwd: str) -> ToolResult:
        if tool == "helm":
            return await self.helm.run(argv, stdin, cwd)
        if tool == "systemctl":
            return await self.k3s.systemctl(argv)
        if tool == "k3s":
            if argv[:1] in (["--version"], ["-v"], ["version"]):
                return ToolResult("k3s version v1.31.4+k3s1 (a3fa0dd3)\ngo version go1.22.9\n")
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
        if self.k3s.state != "active":
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
        if self.kubelet is None:
            return ""
        return str(self.kubelet.log(namespace, name))

    # --- state for tests ------------------------------------------------------------------------

    @property
    def restart_count(self) -> int:
        return self.k3s.restarts

    def helm_revision(self, namespace: str, release: str) -> int:
        return self.helm.revision(namespace, release)

    def commands(self) -> list[dict[str, Any]]:
        """The command log, one dict per line (execs and K3s restart events)."""
        return [json.loads(line) for line in self.command_log.read_text().splitlines() if line]

    def call(self, coro: Any, timeout: float = 60) -> Any:
        """Run a coroutine on the sites' loop (for tests that poke the simulator directly)."""
        return self._loop.run(coro, timeout)
