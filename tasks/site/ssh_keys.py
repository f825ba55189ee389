"""SSH keys: the private key parsed in memory, pinned host keys, trust on first use."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable

import paramiko
from paramiko.hostkeys import HostKeyEntry
from pydantic import SecretStr

from model.errors import PermanentError

log = logging.getLogger("tasks.site.ssh")

_KEY_TYPES: tuple[type[paramiko.PKey], ...] = (
    paramiko.Ed25519Key,
    paramiko.ECDSAKey,
    paramiko.RSAKey,
)


def load_private_key(
    key: SecretStr, passphrase: SecretStr | None, *, resource: str
) -> paramiko.PKey:
    """Parse an OpenSSH/PEM private key held in memory (never written to disk)."""
    text = key.get_secret_value()
    password = passphrase.get_secret_value() if passphrase else None
    for key_type in _KEY_TYPES:
        try:
            return key_type.from_private_key(io.StringIO(text), password=password)
        except paramiko.PasswordRequiredException:
            raise PermanentError(
                "the SSH private key is encrypted and no passphrase was given",
                resource=resource,
                fix="set ssh_key_passphrase on the site block",
            ) from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError):
            continue
    raise PermanentError(
        "ssh_private_key is not a readable Ed25519/ECDSA/RSA private key (or the passphrase "
        "is wrong)",
        resource=resource,
        fix="store the OpenSSH private key text in the site block",
    )


def known_host_entries(lines: Iterable[str]) -> list[HostKeyEntry]:
    entries = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = HostKeyEntry.from_line(line)
        if entry is not None and entry.key is not None:
            entries.append(entry)
    return entries


def add_entries(host_keys: paramiko.HostKeys, entries: Iterable[HostKeyEntry]) -> None:
    for entry in entries:
        for name in entry.hostnames:
            host_keys.add(name, entry.key.get_name(), entry.key)


def known_hosts_name(host: str, port: int) -> str:
    """The name a known_hosts line gives ``host:port`` (as ssh and paramiko look it up)."""
    return host if port == 22 else f"[{host}]:{port}"


def pins_host(entries: Iterable[HostKeyEntry], host: str, port: int) -> bool:
    """Whether any line pins a key for ``host:port`` (hashed names included): lines for other
    nodes of the same site do not count, so trust on first use stays per node."""
    keys = paramiko.HostKeys()
    add_entries(keys, entries)
    return keys.lookup(known_hosts_name(host, port)) is not None


class RecordFirstKey(paramiko.MissingHostKeyPolicy):
    """Trust on first use: accept the unknown key and remember its known_hosts line."""

    def __init__(self) -> None:
        self.line: str | None = None

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        self.line = f"{hostname} {key.get_name()} {key.get_base64()}"
        log.warning("trust on first use: recorded host key %s for %s", key.get_name(), hostname)
