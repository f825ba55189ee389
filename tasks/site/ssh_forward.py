"""SSH local port forwarding: 127.0.0.1:<port> -> a direct-tcpip channel per connection.

The one pump production and the tests use (the kubernetes client reaches the node's API server
through it).
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from typing import Any, Protocol

import paramiko

log = logging.getLogger("tasks.site.ssh")


class ForwardingSession(Protocol):
    """What a forward needs of its SSH session."""

    resource: str
    command_timeout: float

    @property
    def transport(self) -> paramiko.Transport: ...


class Forward:
    def __init__(self, session: ForwardingSession, remote_host: str, remote_port: int) -> None:
        self._session = session
        self._target = (remote_host, remote_port)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.local_port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"ssh-forward-{self.local_port}", daemon=True
        )
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                conn, peer = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._pump, args=(conn, peer), daemon=True).start()

    def _pump(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        try:
            chan = self._session.transport.open_channel(
                "direct-tcpip", self._target, peer, timeout=self._session.command_timeout
            )
        except Exception as exc:
            log.warning("%s: forward to %s failed: %s", self._session.resource, self._target, exc)
            conn.close()
            return
        try:
            while not self._closed.is_set():
                waitables: list[Any] = [conn, chan]
                readable, _, _ = select.select(waitables, [], [], 0.5)
                if conn in readable:
                    data = conn.recv(65536)
                    if not data:
                        break
                    chan.sendall(data)
                if chan in readable:
                    data = chan.recv(65536)
                    if not data:
                        break
                    conn.sendall(data)
        except (OSError, EOFError):
            # The local client or the SSH link went away (paramiko reports a dead transport
            # socket as EOFError): either way this forwarded connection is over.
            pass
        finally:
            self._close_channel(chan)
            conn.close()

    def _close_channel(self, chan: paramiko.Channel) -> None:
        """Close ``chan``; on a transport that is already dead that is a no-op, not an error.

        Closing sends CHANNEL_CLOSE; when the transport's socket is gone that write raises
        EOFError (or OSError) although nothing is left to tell the server.
        """
        try:
            chan.close()
        except (EOFError, OSError) as exc:
            log.debug(
                "%s: forward channel closed on a dead transport (%s)",
                self._session.resource,
                type(exc).__name__,
            )

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
