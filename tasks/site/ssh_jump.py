"""ProxyJump over paramiko: a direct-tcpip channel from the jump host to the next hop.

The channel is the next session's socket (``SSHClient.connect(sock=channel)``): that session
runs its own SSH handshake end to end over it and pins its own host key, so the jump host
relays bytes it cannot read or alter unnoticed.
"""

from __future__ import annotations

from typing import Protocol

import paramiko

from model.errors import PermanentError, TransientError
from tasks.site.ssh_files import error_detail


class JumpHost(Protocol):
    """What a hop needs of the session it goes through."""

    resource: str

    @property
    def transport(self) -> paramiko.Transport: ...


def jump_channel(jump: JumpHost, host: str, port: int, timeout: float) -> paramiko.Channel:
    """A channel from ``jump`` to ``host:port`` (``host`` as the jump host resolves it).

    ``jump.transport`` reconnects the jump session first when it has dropped.
    """
    try:
        return jump.transport.open_channel(
            "direct-tcpip", (host, port), ("127.0.0.1", 0), timeout=timeout
        )
    except paramiko.ChannelException as exc:
        if exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED:
            raise PermanentError(
                f"jump host {jump.resource} refuses to forward to {host}:{port}",
                fix="allow TCP forwarding (AllowTcpForwarding) on the jump host, or turn "
                "ssh_jump off on the site block to connect to the node directly",
            ) from None
        raise TransientError(
            f"jump host {jump.resource} cannot connect to {host}:{port}: {exc.text}"
        ) from None
    except (EOFError, OSError, paramiko.SSHException) as exc:
        raise TransientError(
            f"jump host {jump.resource}: SSH connection dropped while opening a channel to "
            f"{host}:{port} ({error_detail(exc)})"
        ) from None
