"""The SSH layer against a real OpenSSH sshd: pinning, sudo, secrets on stdin, SFTP, forwards."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from model.errors import PermanentError, TransientError
from tasks.site.ssh import CommandRunner, SshSession

SECRET = "ConnectedRegistryName=site01;SyncTokenPassword=Zx9-very-secret-Q7"


def _connect(sshd, **kw: object) -> SshSession:  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "host": "127.0.0.1",
        "port": sshd.port,
        "user": "root",
        "private_key": SecretStr(sshd.private_key),
        "known_hosts": [sshd.known_hosts_line],
        "connect_timeout": 5,
    }
    return SshSession.connect(**(args | kw))  # type: ignore[arg-type]


@pytest.fixture
def session(sshd) -> Iterator[SshSession]:  # type: ignore[no-untyped-def]
    with _connect(sshd) as s:
        yield s


def test_run_splits_stdout_stderr_and_exit_status(session: SshSession) -> None:
    assert isinstance(session, CommandRunner)
    result = session.run("echo out; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_status) == ("out\n", "err\n", 3)
    listed = session.run(["printf", "%s|", "a b", "$HOME", "'q'"])
    assert listed.stdout == "a b|$HOME|'q'|"  # argv items arrive verbatim, no shell expansion


def test_mismatched_host_key_is_refused_before_any_command(sshd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    with pytest.raises(PermanentError, match="does not match the pinned key") as info:
        _connect(sshd, known_hosts=[sshd.other_known_hosts_line]).run(["touch", str(marker)])
    assert "known_hosts" in str(info.value)  # the fix is named
    assert not marker.exists()


def test_unpinned_host_is_refused_without_connecting(sshd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PermanentError, match="no host key is pinned"):
        _connect(sshd, known_hosts=[])
    other_name = sshd.known_hosts_line.replace("[127.0.0.1]", "[10.9.9.9]")
    with pytest.raises(PermanentError, match="not pinned"):
        _connect(sshd, known_hosts=[other_name])


def test_trust_on_first_use_records_the_key(sshd) -> None:  # type: ignore[no-untyped-def]
    with _connect(sshd, known_hosts=[], trust_on_first_use=True) as s:
        assert s.recorded_host_key == sshd.known_hosts_line
        assert s.run(["true"]).ok
    with _connect(sshd, known_hosts=[sshd.known_hosts_line], trust_on_first_use=True) as s:
        assert s.recorded_host_key is None  # pinned keys always win


def test_wrong_client_key_is_permanent(sshd, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", tmp_path / "k"], check=True
    )
    with pytest.raises(PermanentError, match="authentication failed"):
        _connect(sshd, private_key=SecretStr((tmp_path / "k").read_text()))
    with pytest.raises(PermanentError, match="not a readable") as info:
        _connect(sshd, private_key=SecretStr("not a key but secret-ish text"))
    assert "secret-ish" not in str(info.value)


def test_closed_port_is_transient(sshd) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TransientError, match="cannot connect"):
        _connect(sshd, port=port, attempts=2, known_hosts=[sshd.known_hosts_line])


def test_sudo_is_non_interactive_and_without_tty(  # type: ignore[no-untyped-def]
    sshd, session: SshSession, tmp_path: Path
) -> None:
    log = sshd.dir / "sudo.log"
    log.unlink(missing_ok=True)
    target = tmp_path / "registries.yaml"
    target.write_text("mirrors: {}\n")
    assert session.run(["cat", "--", str(target)], sudo=True).stdout == "mirrors: {}\n"
    assert log.read_text().splitlines() == [f"sudo -n -- cat -- {target}"]


@pytest.mark.parametrize(
    "cmd",
    [
        "echo $((1+2))",  # a shell string
        ["sh", "-c", "id"],
        ["id", "-u"],
        ["env", "KUBECONFIG=/etc/rancher/k3s/k3s.yaml", "helm", "list"],
        ["find", "/etc", "-exec", "sh", ";"],
        ["cat", "--", "/etc/rancher/../shadow"],
        ["cat", "--", "/etc/a b"],
        ["cat", "--", "-rf"],
        ["helm", "--kubeconfig", "/k.yaml", "upgrade", "--install", "r", "c", "-n", "ns",
         "--create-namespace", "-f", "-", "--timeout", "300s", "--post-renderer", "/tmp/x"],
    ],
)  # fmt: skip
def test_sudo_runs_only_the_recipe_commands(  # type: ignore[no-untyped-def]
    sshd, session: SshSession, cmd: list[str] | str
) -> None:
    log = sshd.dir / "sudo.log"
    log.unlink(missing_ok=True)
    with pytest.raises(PermanentError, match="refused") as err:
        session.run(cmd, sudo=True)
    assert "Traceback" not in str(err.value)
    assert not log.exists()  # refused before anything reached the node


def test_secret_travels_on_stdin_only(sshd, session: SshSession) -> None:  # type: ignore[no-untyped-def]
    result = session.run(["record"], stdin=SecretStr(SECRET))
    assert result.stdout == "recorded\n"
    assert (sshd.dir / "record.stdin").read_text() == SECRET
    seen = (sshd.dir / "record.argv").read_text()
    assert "proc" in seen and "record" in seen  # the recorder saw the process tree
    assert "Zx9-very-secret" not in seen
    # Under sudo: the content command of an atomic write reads it from stdin too.
    tmp = sshd.dir / ".record.acr-edge.tmp"
    done = session.run(["dd", f"of={tmp}", "status=none"], stdin=SecretStr(SECRET), sudo=True)
    assert done.ok and tmp.read_text() == SECRET
    assert "Zx9-very-secret" not in sshd.log.read_text()
    assert "Zx9-very-secret" not in (sshd.dir / "sudo.log").read_text()


def test_failed_command_error_redacts_stdin_secret(session: SshSession) -> None:
    result = session.run("cat >&2; exit 4", stdin=SecretStr(SECRET))
    assert result.exit_status == 4
    assert SECRET in result.stderr
    assert SECRET not in repr(result)
    with pytest.raises(PermanentError) as info:
        result.check("helm upgrade")
    assert "Zx9-very-secret" not in str(info.value)
    assert "***" in str(info.value)


def test_command_timeout_is_transient(session: SshSession) -> None:
    with pytest.raises(TransientError, match="timed out"):
        session.run(["sleep", "5"], timeout=0.3)
    assert session.run(["true"]).ok  # the connection survives a timed-out command


@pytest.mark.parametrize("sudo", [False, True])
def test_file_read_and_atomic_replace(  # type: ignore[no-untyped-def]
    sshd,
    session: SshSession,
    tmp_path: Path,
    sudo: bool,
) -> None:
    target = tmp_path / "registries.yaml"
    assert session.read_file(str(target), sudo=sudo) is None
    target.write_text("old: content\n")
    target.chmod(0o644)
    old_inode = target.stat().st_ino
    assert session.read_file(str(target), sudo=sudo) == b"old: content\n"
    session.write_file(str(target), SecretStr("password: " + SECRET + "\n"), sudo=sudo)
    assert target.read_text() == "password: " + SECRET + "\n"
    assert target.stat().st_mode & 0o777 == 0o600
    assert target.stat().st_ino != old_inode  # replaced by rename, never rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["registries.yaml"]  # no temp file left
    if sudo:
        assert "Zx9-very-secret" not in (sshd.dir / "sudo.log").read_text()


def test_write_failure_leaves_target_alone(session: SshSession, tmp_path: Path) -> None:
    with pytest.raises(PermanentError):
        session.write_file(str(tmp_path / "missing-dir" / "f"), b"x")
    with pytest.raises(PermanentError):
        session.write_file(str(tmp_path / "missing-dir" / "f"), b"x", sudo=True)


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"hello {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_forward_carries_tcp_through_direct_tcpip(session: SshSession) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = session.forward("127.0.0.1", server.server_address[1])
        assert port != server.server_address[1]
        for path in ("/a", "/b"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
                assert resp.read() == f"hello {path}".encode()
    finally:
        server.shutdown()
        server.server_close()


class _Relay:
    """A TCP hop between paramiko and sshd that can freeze: it stops relaying but keeps both
    sockets open, like a network partition where no FIN or RST ever arrives."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.frozen = threading.Event()
        self._socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            near, _ = self._listener.accept()
        except OSError:
            return
        far = socket.create_connection(("127.0.0.1", self._target))
        self._socks += [near, far]
        for a, b in ((near, far), (far, near)):
            threading.Thread(target=self._copy, args=(a, b), daemon=True).start()

    def _copy(self, src: socket.socket, dst: socket.socket) -> None:
        import select

        try:
            while not self.frozen.is_set():
                if select.select([src], [], [], 0.05)[0] and not self.frozen.is_set():
                    data = src.recv(65536)
                    if not data:
                        return
                    dst.sendall(data)
        except OSError:
            return

    def close(self) -> None:
        self._listener.close()
        for sock in self._socks:
            sock.close()


class _Echo(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.start()

    def run(self) -> None:
        try:
            conn, _ = self.server.accept()
        except OSError:
            return
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)


def test_forward_ends_quietly_when_the_ssh_transport_is_dead(sshd) -> None:  # type: ignore[no-untyped-def]
    """The pump must neither die with an unhandled exception nor leave the local client hanging
    when the SSH connection under it has gone (writes on it raise EOFError)."""
    relay, echo = _Relay(sshd.port), _Echo()
    pinned = sshd.known_hosts_line.replace(f"]:{sshd.port} ", f"]:{relay.port} ")
    escaped: list[BaseException | None] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: escaped.append(args.exc_value)
    try:
        with _connect(sshd, port=relay.port, known_hosts=[pinned]) as session:
            port = session.forward("127.0.0.1", echo.server.getsockname()[1])
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(b"ping")
                assert client.recv(16) == b"ping"
                # The link dies under the transport: nothing arrives any more and every write
                # on the SSH socket fails, while paramiko's reader has not noticed yet.
                relay.frozen.set()
                session.transport.sock.shutdown(socket.SHUT_WR)
                client.sendall(b"more")
                assert client.recv(16) == b""  # the forward closed the local side
    finally:
        threading.excepthook = previous
        relay.close()
        echo.server.close()
    assert escaped == []


# -- dropped connections ----------------------------------------------------------------------

# Kills the sshd process serving this connection: the link drops while the command runs.
_DROP = 'kill -9 "$PPID"'


def test_dropped_connection_during_a_write_is_transient_and_not_rerun(  # type: ignore[no-untyped-def]
    sshd, session: SshSession, tmp_path: Path
) -> None:
    counter = tmp_path / "writes"
    with pytest.raises(TransientError) as info:
        session.run(f"echo x >> {counter}; {_DROP}; sleep 5")
    text = str(info.value)
    assert f"SSH connection to 127.0.0.1:{sshd.port} dropped" in text
    assert "failed (exit" not in text  # not reported as a failed command
    assert counter.read_text() == "x\n"  # ran once: a write is not replayed blindly
    # The next use reconnects (same pinned key) and works.
    assert session.run(["cat", str(counter)]).stdout == "x\n"
    assert session.reconnects == 1


def test_idempotent_read_is_retried_on_a_new_connection(  # type: ignore[no-untyped-def]
    session: SshSession, tmp_path: Path
) -> None:
    flag = tmp_path / "dropped-once"
    result = session.run(
        f"if [ ! -e {flag} ]; then touch {flag}; {_DROP}; sleep 5; fi; echo fine",
        idempotent=True,
    )
    assert result.stdout == "fine\n" and session.reconnects == 1


def test_read_file_after_a_drop_reconnects(session: SshSession, tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("content")
    assert session.read_file(str(target)) == b"content"  # opens SFTP on this connection
    with pytest.raises(TransientError, match="dropped"):
        session.run(_DROP)
    assert session.read_file(str(target)) == b"content"
    assert session.read_file(str(target), sudo=True) == b"content"
    assert session.reconnects == 1


def test_reconnect_after_trust_on_first_use_pins_the_recorded_key(  # type: ignore[no-untyped-def]
    sshd, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    with _connect(sshd, known_hosts=[], trust_on_first_use=True) as s:
        assert s.recorded_host_key == sshd.known_hosts_line
        with pytest.raises(TransientError, match="dropped"):
            s.run(_DROP)
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            assert s.run(["true"]).ok
        assert s.reconnects == 1
        assert "trust on first use" not in caplog.text  # pinned, not trusted again
        assert s.recorded_host_key == sshd.known_hosts_line


def test_closed_session_does_not_reconnect(sshd) -> None:  # type: ignore[no-untyped-def]
    s = _connect(sshd)
    s.close()
    with pytest.raises(TransientError, match="closed"):
        s.run(["true"])
    assert s.reconnects == 0
