"""A node's SSH server (asyncssh): exec in a real /bin/sh, SFTP on the real filesystem, and
direct-tcpip where the node allows it (the server node: any loopback address, so it is the jump
host to the agents and the tunnel to the Kubernetes API; an agent: nowhere).

Every exec is appended to the node's command log (time, command, exit status; never stdin).
Knobs: latency per exec, drop the next N connections, drop a fraction of connections, drop
the connection under a fraction of commands after they ran (before their exit status is sent:
the client cannot tell whether the command happened). Drops draw from the node's own RNG,
seeded with ``NodeSsh.reseed(seed)`` for repeatable fault runs. ``unreachable`` (the node's
knob): "close" accepts TCP and closes before the SSH banner, "refuse" closes the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncssh

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or (host.startswith("127.") and host.count(".") == 3)


def _loopback_only(host: str, port: int) -> bool:
    return is_loopback(host)


@dataclass
class SshKnobs:
    latency: float = 0.0  # seconds added before each exec starts
    drop_next: int = 0  # abort the next N connections right after TCP accept
    drop_rate: float = 0.0  # abort this fraction of connections
    drop_exec_rate: float = 0.0  # abort the connection after this fraction of commands ran


@dataclass
class SshConfig:
    user: str
    host_key: asyncssh.SSHKey
    client_key: asyncssh.SSHKey
    root: Path
    command_log: Path
    env: Callable[[], dict[str, str]]
    bind_host: str = "127.0.0.1"
    # direct-tcpip destinations this node forwards to (the sandbox never forwards off-machine)
    forward: Callable[[str, int], bool] = _loopback_only
    unreachable: Callable[[], str] = lambda: ""  # "", "close" or "refuse"


class _Server(asyncssh.SSHServer):
    def __init__(self, node: NodeSsh) -> None:
        self._node = node

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._node.connections += 1
        knobs = self._node.knobs
        if self._node.config.unreachable():
            self._node.dropped += 1
            conn.abort()
            return
        drop = knobs.drop_next > 0 or (
            knobs.drop_rate and self._node.rng.random() < knobs.drop_rate
        )
        if drop:
            knobs.drop_next = max(0, knobs.drop_next - 1)
            self._node.dropped += 1
            conn.abort()

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        wanted = self._node.config.client_key
        return username == self._node.config.user and key.public_data == wanted.public_data

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return self._node.config.forward(dest_host, dest_port)


class _NodeSftp(asyncssh.SFTPServer):
    """SFTP on the real filesystem; a relative path is relative to the node's root, as an
    exec's working directory is (so one relative path names each node's own file)."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], root: Path) -> None:
        super().__init__(chan)
        self._root = str(root).encode()

    def map_path(self, path: bytes) -> bytes:
        if not path.startswith(b"/"):
            path = self._root + b"/" + path
        return super().map_path(path)


class NodeSsh:
    def __init__(self, config: SshConfig, knobs: SshKnobs) -> None:
        self.config = config
        self.knobs = knobs
        self.port = 0
        self.connections = 0
        self.dropped = 0
        self.exec_dropped = 0
        self.execs = 0
        self.rng = random.Random()
        self._acceptor: asyncssh.SSHAcceptor | None = None

    async def start(self) -> int:
        self._acceptor = await asyncssh.create_server(
            lambda: _Server(self),
            self.config.bind_host,
            self.port,
            server_host_keys=[self.config.host_key],
            process_factory=self._process,
            sftp_factory=self._sftp,
            allow_scp=False,
            encoding=None,
            line_editor=False,
            login_timeout=30,
        )
        self.port = self._acceptor.get_port()
        return self.port

    async def set_listening(self, listening: bool) -> None:
        """Open or close the listener on the same address and port (the "refuse" knob)."""
        if listening and self._acceptor is None:
            await self.start()
        elif not listening:
            await self.stop()

    def _sftp(self, chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        return _NodeSftp(chan, self.config.root)

    def reseed(self, seed: int) -> None:
        """Make the drop knobs repeatable."""
        self.rng = random.Random(seed)

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._acceptor.wait_closed(), 2)
            self._acceptor = None

    async def _process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        command = process.command
        if command is None:
            process.stderr.write(b"This simulated node accepts exec requests only.\n")
            process.exit(1)
            return
        self.execs += 1
        started = time.monotonic()
        if self.knobs.latency:
            await asyncio.sleep(self.knobs.latency)
        rc = 127
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                command,
                cwd=self.config.root,
                env=self.config.env(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            feeder = asyncio.get_running_loop().create_task(self._feed(process, proc))
            assert proc.stdout is not None and proc.stderr is not None
            try:
                await asyncio.gather(
                    self._pump(proc.stdout, process.stdout),
                    self._pump(proc.stderr, process.stderr),
                )
                rc = await proc.wait()
            finally:
                feeder.cancel()
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            rc = rc if rc >= 0 else 128 - rc
        finally:
            self._log(command, rc, time.monotonic() - started)
        rate = self.knobs.drop_exec_rate
        if rate and self.rng.random() < rate:
            self.exec_dropped += 1
            process.get_extra_info("connection").abort()
            return
        with contextlib.suppress(Exception):
            process.exit(rc)

    @staticmethod
    async def _feed(
        process: asyncssh.SSHServerProcess[bytes], proc: asyncio.subprocess.Process
    ) -> None:
        assert proc.stdin is not None
        try:
            while True:
                data = await process.stdin.read(65536)
                if not data:
                    break
                proc.stdin.write(data)
                await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError, asyncssh.Error):
            pass
        finally:
            with contextlib.suppress(Exception):
                proc.stdin.close()

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncssh.SSHWriter[bytes]) -> None:
        while True:
            chunk = await source.read(65536)
            if not chunk:
                return
            with contextlib.suppress(Exception):
                sink.write(chunk)

    def _log(self, command: str, rc: int, seconds: float) -> None:
        entry = {
            "time": datetime.now(UTC).isoformat(),
            "command": command,
            "exit_status": rc,
            "duration_ms": round(seconds * 1000, 1),
        }
        with self.config.command_log.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
