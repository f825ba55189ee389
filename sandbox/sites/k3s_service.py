"""The K3s service of one node: systemctl restart/start/stop/is-active/status.

The server's unit is ``k3s`` (or ``rke2-server``), an agent's ``k3s-agent`` (or ``rke2-agent``);
the other units are not installed there. A restart calls ``down`` (the server: API down and the
node NotReady; an agent: only its node NotReady), waits the restart-time knob, re-reads
registries.yaml and regenerates ``certs.d`` as K3s does (``k3s_hosts``), then calls ``up``. A
file K3s cannot decode, or a failure the ``fail_restart`` knob injects, fails the restart: the
service stays ``failed`` and ``up`` is not called until a good restart.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sandbox.sites.k3s_hosts import HEADER, render_hosts
from sandbox.sites.k3s_registries import Registries, RegistriesError, parse_registries
from sandbox.sites.tool_result import ToolResult

UNITS = {
    "server": {
        "k3s": ("Lightweight Kubernetes", "/usr/local/bin/k3s server"),
        "rke2-server": ("Rancher Kubernetes Engine v2 (server)", "/usr/local/bin/rke2 server"),
    },
    "agent": {
        "k3s-agent": ("Lightweight Kubernetes", "/usr/local/bin/k3s agent"),
        "rke2-agent": ("Rancher Kubernetes Engine v2 (agent)", "/usr/local/bin/rke2 agent"),
    },
}


class K3sService:
    def __init__(
        self,
        *,
        registries_path: Path,
        hosts_dir: Path,
        command_log: Path,
        api_down: Callable[[], Awaitable[None]],
        api_up: Callable[[], Awaitable[None]],
        restart_time: Callable[[], float],
        role: str = "server",
        fail_restart: Callable[[], bool] = lambda: False,
    ) -> None:
        self.registries_path = registries_path
        self.hosts_dir = hosts_dir
        self.command_log = command_log
        self.role = role
        self.units = UNITS[role]
        self._api_down = api_down
        self._api_up = api_up
        self._restart_time = restart_time
        self._fail_restart = fail_restart
        self.state = "active"
        self.since = datetime.now(UTC)
        self.restarts = 0
        self.failed_restarts = 0
        self.last_error = ""
        self.registries = Registries()
        self.rendered: dict[str, str] = {}  # certs.d dir -> hosts.toml written at the last start
        self._lock = asyncio.Lock()

    async def systemctl(self, argv: list[str]) -> ToolResult:
        args = [a for a in argv if not a.startswith("-")]
        if not args:
            return ToolResult.fail("systemctl: too few arguments")
        verb, units = args[0], [u.removesuffix(".service") for u in args[1:]]
        if verb == "daemon-reload":
            return ToolResult()
        if not units:
            return ToolResult.fail(f"Too few arguments for {verb}.")
        unit = units[0]
        if unit not in self.units:
            if verb in ("is-active",):
                return ToolResult("inactive\n", exit=3)
            return ToolResult.fail(
                f"Failed to {verb} {unit}.service: Unit {unit}.service not found.",
                5 if verb != "status" else 4,
            )
        if verb in ("restart", "start", "reload-or-restart", "try-restart"):
            if verb == "start" and self.state == "active":
                return ToolResult()
            if verb == "try-restart" and self.state != "active":
                return ToolResult()
            return await self.restart(unit)
        if verb == "stop":
            async with self._lock:
                await self._api_down()
                self.state = "inactive"
                self.since = datetime.now(UTC)
            return ToolResult()
        if verb == "is-active":
            return ToolResult(f"{self.state}\n", exit=0 if self.state == "active" else 3)
        if verb == "status":
            return self._status(unit)
        if verb in ("enable", "disable", "is-enabled"):
            return ToolResult("enabled\n" if verb == "is-enabled" else "")
        return ToolResult.fail(f'Unknown command verb "{verb}".')

    def _status(self, unit: str) -> ToolResult:
        running = {
            "active": "active (running)",
            "activating": "activating (start)",
            "failed": "failed (Result: exit-code)",
            "inactive": "inactive (dead)",
        }
        description, command = self.units[unit]
        text = (
            f"● {unit}.service - {description}\n"
            f"     Loaded: loaded (/etc/systemd/system/{unit}.service; enabled; preset: enabled)\n"
            f"     Active: {running[self.state]} since "
            f"{self.since.strftime('%a %Y-%m-%d %H:%M:%S UTC')}\n"
        )
        if self.state == "failed" and self.last_error:
            text += f"    Process: ExecStart={command} (code=exited, status=1)\n"
            text += f'\nlevel=fatal msg="{self.last_error}"\n'
        return ToolResult(text, exit=0 if self.state == "active" else 3)

    async def restart(self, unit: str = "") -> ToolResult:
        unit = unit or next(iter(self.units))
        async with self._lock:
            self.restarts += 1
            self.state = "activating"
            await self._api_down()
            await asyncio.sleep(self._restart_time())
            try:
                if self._fail_restart():
                    raise RegistriesError(
                        f"{self.role}: failed to start (the sandbox's fail_restart knob)"
                    )
                registries = self._load()
                files = render_hosts(registries)
            except RegistriesError as exc:
                self.failed_restarts += 1
                self.state = "failed"
                self.last_error = str(exc)
                self.since = datetime.now(UTC)
                self._log(ok=False, unit=unit)
                return ToolResult.fail(
                    f"Job for {unit}.service failed because the control process exited with "
                    f'error code.\nSee "systemctl status {unit}.service" and '
                    f'"journalctl -xeu {unit}.service" for details.'
                )
            self._write_hosts(files)
            self.registries = registries
            self.rendered = files
            self.last_error = ""
            await self._api_up()
            self.state = "active"
            self.since = datetime.now(UTC)
            self._log(ok=True, unit=unit)
            return ToolResult()

    def _load(self) -> Registries:
        try:
            text = self.registries_path.read_text()
        except FileNotFoundError:
            return Registries()
        return parse_registries(text)

    def _write_hosts(self, files: dict[str, str]) -> None:
        """cleanContainerdHosts then writeContainerdHosts: a dir K3s is about to write is
        replaced whatever it holds; another goes only when its hosts.toml's first line is K3s's
        header (a file without a newline is kept, as Go's ReadString fails on it)."""
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        for name in files:
            shutil.rmtree(self.hosts_dir / name, ignore_errors=True)
        for entry in self.hosts_dir.iterdir():
            toml = entry / "hosts.toml"
            if not entry.is_dir() or not toml.is_file():
                continue
            with toml.open("rb") as fh:
                first = fh.readline()
            if first.endswith(b"\n") and first == HEADER.encode():
                shutil.rmtree(entry)
        for name, text in files.items():
            (self.hosts_dir / name).mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.hosts_dir / name / "hosts.toml").write_text(text)

    def _log(self, *, ok: bool, unit: str) -> None:
        entry = {
            "time": datetime.now(UTC).isoformat(),
            "event": "k3s-restart",
            "unit": unit,
            "ok": ok,
            "restart": self.restarts,
        }
        if not ok:
            entry["error"] = self.last_error
        with self.command_log.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
