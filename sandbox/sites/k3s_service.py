"""The K3s service of a node: systemctl restart/start/stop/is-active/status.

A restart takes the API down for the restart-time knob, re-reads registries.yaml (a file K3s
cannot load fails the restart and the API stays down until a good restart), regenerates
``certs.d/<host>/hosts.toml`` and removes host dirs it generated before and no longer wants.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sandbox.sites.k3s_registries import (
    GENERATED_MARK,
    HostsToml,
    Registries,
    RegistriesError,
    parse_hosts_toml,
    parse_registries,
    render_hosts,
)
from sandbox.sites.tool_result import ToolResult

UNITS = {"k3s": "Lightweight Kubernetes", "rke2-server": "Rancher Kubernetes Engine v2 (server)"}


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
    ) -> None:
        self.registries_path = registries_path
        self.hosts_dir = hosts_dir
        self.command_log = command_log
        self._api_down = api_down
        self._api_up = api_up
        self._restart_time = restart_time
        self.state = "active"
        self.since = datetime.now(UTC)
        self.restarts = 0
        self.failed_restarts = 0
        self.last_error = ""
        self.registries = Registries()
        self.hosts: dict[str, HostsToml] = {}
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
        if unit not in UNITS:
            if verb in ("is-active",):
                return ToolResult("inactive\n", exit=3)
            return ToolResult.fail(
                f"Failed to {verb} {unit}.service: Unit {unit}.service not found.",
                5 if verb != "status" else 4,
            )
        if verb in ("restart", "start", "reload-or-restart", "try-restart"):
            if verb == "start" and self.state == "active":
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
        text = (
            f"● {unit}.service - {UNITS[unit]}\n"
            f"     Loaded: loaded (/etc/systemd/system/{unit}.service; enabled; preset: enabled)\n"
            f"     Active: {running[self.state]} since "
            f"{self.since.strftime('%a %Y-%m-%d %H:%M:%S UTC')}\n"
        )
        if self.state == "failed" and self.last_error:
            text += "    Process: ExecStart=/usr/local/bin/k3s server (code=exited, status=1)\n"
            text += f'\nlevel=fatal msg="{self.last_error}"\n'
        return ToolResult(text, exit=0 if self.state == "active" else 3)

    async def restart(self, unit: str = "k3s") -> ToolResult:
        async with self._lock:
            self.restarts += 1
            self.state = "activating"
            await self._api_down()
            await asyncio.sleep(self._restart_time())
            try:
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
            self.hosts = {name: parse_hosts_toml(text) for name, text in files.items()}
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
        self.hosts_dir.mkdir(parents=True, exist_ok=True)
        for entry in self.hosts_dir.iterdir():
            toml = entry / "hosts.toml"
            if entry.name in files or not toml.is_file():
                continue
            if toml.read_text().startswith(GENERATED_MARK):
                shutil.rmtree(entry)
        for name, text in files.items():
            (self.hosts_dir / name).mkdir(parents=True, exist_ok=True)
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
