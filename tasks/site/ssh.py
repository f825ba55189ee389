"""SSH to an edge node with paramiko: pinned host keys, split output, secrets on stdin only.

`SshSession` is the one implementation of the `CommandRunner` seam; unit tests can hand the
site ops any other runner without patching paramiko.

A connection that drops (EOF, reset, a dead transport) is a TransientError saying so
("SSH connection to host:port dropped ..."), never a failed command. The session reconnects
on its next use, pinned to the same host key (the recorded one after trust on first use).
A session through a jump host (ProxyJump, :mod:`tasks.site.ssh_jump`) reconnects through the
jump, which itself reconnects to its own pinned key when it has dropped.
Idempotent reads (``read_file``, ``run(..., idempotent=True)``) are retried through
:func:`model.retry.call_with_retry`; a command that writes is not re-run blindly: its step's
``converge`` reads again and decides.
"""

from __future__ import annotations

import contextlib
import logging
import select
import shlex
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import paramiko
from paramiko.hostkeys import HostKeyEntry
from pydantic import SecretStr

from model.errors import PermanentError, TransientError, classify
from model.retry import RetryPolicy, call_with_retry
from tasks.site import ssh_keys
from tasks.site.commands import CommandResult, CommandRunner, short, sudo_prefix
from tasks.site.ssh_files import RemoteFiles, error_detail
from tasks.site.ssh_forward import Forward
from tasks.site.ssh_jump import jump_channel
from tasks.site.ssh_keys import RecordFirstKey, known_host_entries, load_private_key

if TYPE_CHECKING:
    from model.site import SiteSettings

__all__ = ["SSH_POLICY", "CommandResult", "CommandRunner", "SshSession"]

log = logging.getLogger(__name__)

# paramiko closes a channel before it marks its transport inactive: how long a command that
# ended without an exit status waits to see whether the connection went with it.
_DEATH_GRACE = 1.0
# A node is one hop away: short waits; a site block may raise the attempts (retry_attempts).
SSH_POLICY = RetryPolicy(attempts=4, base_delay=0.3, max_delay=5.0)


class SshSession(RemoteFiles):
    """One SSH connection to a node, reused by every step of a flow run."""

    def __init__(
        self,
        client: paramiko.SSHClient,
        *,
        resource: str,
        command_timeout: float = 120.0,
        recorded_host_key: str | None = None,
        address: tuple[str, int] | None = None,
        reconnect: Callable[[], paramiko.SSHClient] | None = None,
        policy: RetryPolicy = SSH_POLICY,
        jump: SshSession | None = None,
    ) -> None:
        self._client = client
        self.resource = resource
        self.command_timeout = command_timeout
        self.recorded_host_key = recorded_host_key
        self.address = address or _peer(client)
        self.policy = policy
        self.reconnects = 0
        self.jump = jump
        self._reconnect = reconnect
        self._lock = threading.Lock()
        self._closed = False
        self._forwards: list[Forward] = []
        self._sftp: paramiko.SFTPClient | None = None

    # -- connecting -------------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        *,
        host: str,
        port: int,
        user: str,
        private_key: SecretStr,
        passphrase: SecretStr | None = None,
        known_hosts: Sequence[str] = (),
        trust_on_first_use: bool = False,
        connect_timeout: float = 10.0,
        command_timeout: float = 120.0,
        keepalive: int = 15,
        attempts: int | None = None,
        resource: str | None = None,
        policy: RetryPolicy | None = None,
        jump: SshSession | None = None,
    ) -> SshSession:
        """Connect (retrying transient failures with ``policy``; ``attempts`` overrides its
        attempts); the session keeps what it needs to reconnect to the same pinned key.

        ``jump``: reach ``host:port`` (as the jump host sees it) through that session, this
        hop's key pinned like any other. Trust on first use applies when no line pins
        ``host:port`` (lines for other nodes do not)."""
        resource = resource or f"ssh {user}@{host}:{port}"
        pkey = load_private_key(private_key, passphrase, resource=resource)
        entries = known_host_entries(known_hosts)
        if not entries and not trust_on_first_use:
            raise PermanentError(
                "no host key is pinned for this node; refusing to connect",
                resource=resource,
                fix="add the node's known_hosts line (ssh-keyscan, verified out of band) to the "
                "site block, or enable trust_on_first_use once",
            )

        first_use = trust_on_first_use and not ssh_keys.pins_host(entries, host, port)
        recorder = RecordFirstKey() if first_use else None

        def open_client(pinned: Sequence[HostKeyEntry], tofu: RecordFirstKey | None) -> Any:
            client = paramiko.SSHClient()
            ssh_keys.add_entries(client.get_host_keys(), pinned)
            policy: paramiko.MissingHostKeyPolicy = tofu or paramiko.RejectPolicy()
            client.set_missing_host_key_policy(policy)
            sock = None if jump is None else jump_channel(jump, host, port, connect_timeout)
            try:
                client.connect(
                    host,
                    port=port,
                    sock=sock,
                    username=user,
                    pkey=pkey,
                    look_for_keys=False,
                    allow_agent=False,
                    timeout=connect_timeout,
                    banner_timeout=connect_timeout,
                    auth_timeout=connect_timeout,
                    channel_timeout=connect_timeout,
                )
            except paramiko.ssh_exception.NoValidConnectionsError as exc:
                client.close()
                raise TransientError(f"{resource}: cannot connect: {exc}") from None
            except Exception as exc:
                client.close()
                if sock is not None:
                    with contextlib.suppress(Exception):
                        sock.close()
                err = classify(exc, resource=resource)
                if err is exc:
                    raise
                raise err from None
            transport = client.get_transport()
            if transport is not None:
                transport.set_keepalive(keepalive)
            return client

        def reconnect() -> paramiko.SSHClient:
            # The key seen first stays the pinned one: a reconnect never trusts on first use.
            pinned = entries + known_host_entries(
                [recorder.line] if recorder and recorder.line else []
            )
            if not pinned:  # pragma: no cover - a connected session always has a key
                raise PermanentError("no host key to pin the reconnection to", resource=resource)
            client: paramiko.SSHClient = call_with_retry(
                lambda: open_client(pinned, None), what=resource, policy=retry
            )
            return client

        retry = (policy or SSH_POLICY).replace(attempts=attempts)
        client = call_with_retry(
            lambda: open_client(entries, recorder), what=resource, policy=retry
        )
        return cls(
            client,
            resource=resource,
            command_timeout=command_timeout,
            recorded_host_key=recorder.line if recorder else None,
            address=(host, port),
            reconnect=reconnect,
            policy=retry,
            jump=jump,
        )

    @classmethod
    def through(cls, jump: SshSession, *, host: str, port: int, **kwargs: Any) -> SshSession:
        """:meth:`connect` to ``host:port`` with ``jump`` as the jump host."""
        return cls.connect(host=host, port=port, jump=jump, **kwargs)

    @classmethod
    def for_site(cls, site: SiteSettings) -> SshSession:
        return cls.connect(
            host=site.ssh_host,
            port=site.ssh_port,
            user=site.ssh_user,
            private_key=site.ssh_private_key,
            passphrase=site.ssh_key_passphrase,
            known_hosts=site.known_hosts,
            trust_on_first_use=site.trust_on_first_use,
            connect_timeout=site.connect_timeout,
            command_timeout=site.command_timeout,
            resource=site.resource,
            # EdgeSite.retry_attempts; plain-data settings without it keep the default.
            policy=SSH_POLICY.replace(attempts=getattr(site, "retry_attempts", None)),
        )

    def __enter__(self) -> SshSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self.close_forwards()
        if self._sftp is not None:
            with contextlib.suppress(Exception):
                self._sftp.close()
            self._sftp = None
        self._client.close()

    @property
    def transport(self) -> paramiko.Transport:
        """The live transport; after a drop, a new connection (same pinned host key)."""
        transport = self._client.get_transport()
        if transport is not None and transport.is_active():
            return transport
        if self._closed or self._reconnect is None:
            raise TransientError(f"{self.resource}: SSH connection is closed")
        with self._lock:  # forwards' threads and the caller may notice the drop together
            transport = self._client.get_transport()
            if transport is None or not transport.is_active():
                log.warning("%s: SSH connection lost; reconnecting", self.resource)
                stale, self._sftp = self._sftp, None
                with contextlib.suppress(Exception):
                    if stale is not None:
                        stale.close()
                with contextlib.suppress(Exception):
                    self._client.close()
                self._client = self._reconnect()
                self.reconnects += 1
                transport = self._client.get_transport()
            if transport is None or not transport.is_active():  # pragma: no cover
                raise TransientError(f"{self.resource}: SSH connection is closed")
            return transport

    def _alive(self) -> bool:
        transport = self._client.get_transport()
        return transport is not None and transport.is_active()

    def dropped(self, doing: str, detail: object = "") -> TransientError:
        """The error for a connection lost while ``doing`` something: says so, and how the
        run recovers (reads are retried; a write's step reads again before writing again)."""
        host, port = self.address
        why = f" ({detail})" if str(detail) else ""
        return TransientError(
            f"{self.resource}: SSH connection to {host}:{port} dropped while {doing}{why}; "
            "the session reconnects on its next use"
        )

    # -- commands ---------------------------------------------------------------------------

    def run(
        self,
        cmd: Sequence[str] | str,
        *,
        stdin: bytes | SecretStr | None = None,
        sudo: bool = False,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> CommandResult:
        """Run one command; stdout, stderr and exit status come back apart.

        Secrets go ONLY through ``stdin`` (a SecretStr): argv is visible to every local user
        of the node in /proc and to sshd's logs. A dropped connection raises
        :meth:`dropped`; with ``idempotent=True`` (a read-only command) the command is run
        again on a new connection, as the retry policy allows.
        """
        if idempotent:
            return call_with_retry(
                lambda: self._run_once(cmd, stdin=stdin, sudo=sudo, timeout=timeout),
                what=self.resource,
                policy=self.policy,
            )
        return self._run_once(cmd, stdin=stdin, sudo=sudo, timeout=timeout)

    def _run_once(
        self,
        cmd: Sequence[str] | str,
        *,
        stdin: bytes | SecretStr | None,
        sudo: bool,
        timeout: float | None,
    ) -> CommandResult:
        line = (
            sudo_prefix(cmd, self.resource)
            if sudo
            else (cmd if isinstance(cmd, str) else shlex.join(cmd))
        )
        secrets: tuple[str, ...] = ()
        data: bytes | None
        if isinstance(stdin, SecretStr):
            secret = stdin.get_secret_value()
            secrets = (secret, *secret.splitlines())
            data = secret.encode()
        else:
            data = stdin
        limit = timeout if timeout is not None else self.command_timeout
        log.debug("%s: run %s (stdin %s bytes)", self.resource, line, len(data or b""))
        doing = f"running `{short(line)}`"
        try:
            out, err, status = self._exec(line, data, limit)
        except TransientError:
            raise
        except (EOFError, OSError, paramiko.SSHException) as exc:
            if not self._alive() or isinstance(exc, EOFError | ConnectionError):
                raise self.dropped(doing, error_detail(exc)) from None
            raise classify(exc, resource=self.resource) from None
        except Exception as exc:
            raise classify(exc, resource=self.resource) from None
        if status == -1 and self._died_within(_DEATH_GRACE):
            # The channel closed without an exit status because the connection went: whether
            # the command ran is unknown, so it is not a failed command.
            raise self.dropped(doing, "no exit status")
        return CommandResult(
            stdout=out.decode(errors="replace"),
            stderr=err.decode(errors="replace"),
            exit_status=status,
            command=line,
            _secrets=tuple(s for s in secrets if len(s) >= 4),
        )

    def _died_within(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while self._alive():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _exec(self, line: str, data: bytes | None, limit: float) -> tuple[bytes, bytes, int]:
        deadline = time.monotonic() + limit
        chan = self.transport.open_session(timeout=limit)
        try:
            chan.settimeout(limit)
            chan.exec_command(line)
            if data:
                chan.sendall(data)
            chan.shutdown_write()
            out, err = bytearray(), bytearray()
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                    continue
                if chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                    continue
                # Servers may close without sending EOF first (asyncssh does).
                if chan.exit_status_ready() and (chan.eof_received or chan.closed):
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TransientError(
                        f"{self.resource}: command timed out after {limit:.0f}s: {line}"
                    )
                select.select([chan], [], [], min(remaining, 0.5))
            # Anything that raced in with the exit status.
            while chan.recv_ready():
                out += chan.recv(65536)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            return bytes(out), bytes(err), chan.recv_exit_status()
        finally:
            chan.close()

    # -- port forwarding --------------------------------------------------------------------

    def forward(self, remote_host: str, remote_port: int) -> int:
        """Listen on 127.0.0.1:<free port>; each connection becomes a direct-tcpip channel."""
        fwd = Forward(self, remote_host, remote_port)
        self._forwards.append(fwd)
        return fwd.local_port

    def close_forwards(self) -> None:
        """Stop every forward's listener (the SSH connection stays open)."""
        for fwd in self._forwards:
            fwd.close()
        self._forwards.clear()


def _peer(client: paramiko.SSHClient) -> tuple[str, int]:
    transport = client.get_transport()
    try:
        host, port = transport.getpeername()[:2] if transport is not None else ("?", 0)
    except OSError:
        host, port = "?", 0
    return str(host), int(port)
