"""A real OpenSSH sshd on 127.0.0.1 as the edge node (guide §1), with fake tools on its PATH."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"

# Drops `-n` / `--`, records its argv, then runs the command: enough to prove we call
# `sudo -n --` without a tty and that the command still runs.
FAKE_SUDO = """#!/bin/sh
printf '%s\\n' "sudo $*" >> "$ACR_TEST_DIR/sudo.log"
[ -t 0 ] && echo "sudo: tty seen" >> "$ACR_TEST_DIR/sudo.log"
[ "$1" = "-n" ] || { echo "sudo: a password is required" >&2; exit 1; }
shift
[ "$1" = "--" ] && shift
exec "$@"
"""

# Records its own argv and the argv of every ancestor (what `ps` shows any local user), and
# saves stdin, so tests can prove a secret travelled on stdin only.
RECORD = """#!/bin/sh
cat > "$ACR_TEST_DIR/record.stdin"
{
  printf 'argv: %s\\n' "$*"
  pid=$$
  while [ "$pid" -gt 1 ]; do
    printf 'proc %s: ' "$pid"; tr '\\0' ' ' < /proc/$pid/cmdline; echo
    pid=$(awk '/^PPid:/ {print $2}' /proc/$pid/status)
  done
} > "$ACR_TEST_DIR/record.argv"
echo recorded
"""


@dataclass
class Sshd:
    dir: Path
    port: int
    private_key: str
    known_hosts_line: str
    other_known_hosts_line: str  # a valid line for another key: the "wrong pin"
    log: Path


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    path.chmod(0o600)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not (os.path.exists(SSHD) and shutil.which("ssh-keygen")):
        pytest.fail(
            f"{SSHD} is missing: the SSH tests need a real OpenSSH server. "
            "Install it with `apt-get install -y openssh-server` (./dev test does this as root)."
        )
    d = tmp_path_factory.mktemp("sshd")
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation dir, else sshd exits
    _keygen(d / "host")
    _keygen(d / "other_host")
    _keygen(d / "client")
    (d / "bin").mkdir()
    (d / "home").mkdir()
    for name, body in {"sudo": FAKE_SUDO, "record": RECORD}.items():
        (d / "bin" / name).write_text(body)
        (d / "bin" / name).chmod(0o755)
    pub = (d / "client.pub").read_text().strip()
    env = (
        f'environment="PATH={d}/bin:/usr/bin:/bin",environment="HOME={d}/home",'
        f'environment="ACR_TEST_DIR={d}"'
    )
    (d / "authorized_keys").write_text(f"{env} {pub}\n")
    config = d / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nHostKey {d}/host\nPidFile none\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPermitUserEnvironment yes\nAllowTcpForwarding yes\n"
        "Subsystem sftp internal-sftp\nLogLevel VERBOSE\n"
    )
    port = _free_port()
    log = d / "sshd.log"
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config), "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120  # a busy two-core machine runs other tests too
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sshd did not start: {log.read_text()}") from None
                time.sleep(0.01)
        host_pub = (d / "host.pub").read_text().split()
        other_pub = (d / "other_host.pub").read_text().split()
        yield Sshd(
            dir=d,
            port=port,
            private_key=(d / "client").read_text(),
            known_hosts_line=f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}",
            other_known_hosts_line=f"[127.0.0.1]:{port} {other_pub[0]} {other_pub[1]}",
            log=log,
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
