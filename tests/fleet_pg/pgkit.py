"""Fixtures of the README's fleet setup, for real: PostgreSQL (Debian's package), a `prefect
server start` on it and process workers.

PostgreSQL refuses to run as root: under root (CI) it runs as the Debian package's `postgres`
user; elsewhere (a developer machine) as the current user. Its only login is `acr_edge` with a
random password that travels by file (initdb --pwfile) and environment (PGPASSWORD, the server's
connection URL), never on a command line. Missing binaries fail the tests under root, where
`./dev test` installs them, and skip them elsewhere.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
# flowkit (sandbox + blocks) and deploykit (the registrar's arguments, worker settings) are
# shared with the flow tests; that folder is not a package.
sys.path.insert(0, str(ROOT / "tests" / "flows"))

PG_USER = "acr_edge"
PG_DATABASE = "prefect"
OS_USER = "postgres"  # created by Debian's postgresql-common
SERVER_START_TIMEOUT = 240.0  # migrations on a busy 2-core machine


@dataclass(frozen=True)
class Postgres:
    port: int
    password: str
    bindir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{PG_USER}:{self.password}@127.0.0.1:{self.port}/{PG_DATABASE}"

    def query(self, sql: str) -> str:
        """One value from ``sql`` on the Prefect database, read with psql over TCP."""
        out = subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_USER, "-d", PG_DATABASE,
                "-tA", "-c", sql,
            ],
            env={**os.environ, "PGPASSWORD": self.password},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )  # fmt: skip
        return out.stdout.strip()


@dataclass(frozen=True)
class PrefectServer:
    url: str  # http://127.0.0.1:port/api
    log: Path
    postgres: Postgres


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and postgres in it."""
    found = [
        Path(d)
        for d in glob.glob("/usr/lib/postgresql/*/bin")
        if os.access(Path(d) / "initdb", os.X_OK) and os.access(Path(d) / "postgres", os.X_OK)
    ]
    found.sort(key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0)
    return found[-1] if found else None


def _as_db_user() -> dict[str, Any]:
    """Popen arguments that run a PostgreSQL binary as a user it accepts."""
    if os.geteuid() != 0:
        return {}
    return {"user": OS_USER, "group": OS_USER, "extra_groups": []}


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    root = os.geteuid() == 0
    bindir = _pg_bin()
    if bindir is None:
        message = (
            "PostgreSQL is missing (/usr/lib/postgresql/*/bin/initdb): the fleet tests need a "
            "real server. Install it with `apt-get install -y postgresql` "
            "(./dev test does this as root)."
        )
        if root:
            pytest.fail(message)
        pytest.skip(message)
    if root:
        try:
            import pwd

            account = pwd.getpwnam(OS_USER)
        except KeyError:
            pytest.fail(f"no {OS_USER!r} OS user: PostgreSQL will not run as root")
    # Not under pytest's tmp dir: that one is private to root and the server's user must
    # own its data directory.
    base = Path(tempfile.mkdtemp(prefix="acr-edge-pg-"))
    if root:
        os.chown(base, account.pw_uid, account.pw_gid)
    password = secrets.token_urlsafe(24)  # URL-safe: goes into the connection URL as is
    port = _free_port()
    data = base / "data"
    log = base / "postgres.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        # The cluster's superuser is the OS user, by peer authentication on the socket only;
        # every TCP login needs a password (scram-sha-256).
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D", str(data),
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            cwd=base,
            check=True,
            capture_output=True,
            **_as_db_user(),
        )  # fmt: skip
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            # A throwaway database: durability off keeps it light on a shared machine.
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\n"
                f"unix_socket_directories = '{base}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(data)],
                cwd=base,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **_as_db_user(),
            )
        tcp = ["-h", "127.0.0.1", "-p", str(port)]
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while subprocess.run([str(bindir / "pg_isready"), *tcp], capture_output=True).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.2)
        # The README's two commands, as the cluster's superuser: Prefect's login owns its
        # database and is no superuser (Prefect's migrations create the trusted extension
        # pg_trgm as the owner). createuser reads the password from the terminal, or from
        # stdin when there is none (a new session has none): never an argument.
        sock = ["-h", str(base), "-p", str(port)]
        for argv, given in (
            ([str(bindir / "createuser"), *sock, "--pwprompt", PG_USER], f"{password}\n" * 2),
            ([str(bindir / "createdb"), *sock, "--owner", PG_USER, PG_DATABASE], ""),
        ):
            subprocess.run(
                argv,
                input=given.encode(),
                cwd=base,
                check=True,
                capture_output=True,
                timeout=60,
                start_new_session=True,
                **_as_db_user(),
            )
        pg = Postgres(port=port, password=password, bindir=bindir, log=log)
        # A password login over TCP, as the Prefect server will make.
        assert pg.query("SELECT current_user") == PG_USER
        yield pg
    finally:
        if proc is not None:
            _stop(proc, signal.SIGINT)  # "fast" shutdown: ends the server's open connections
        shutil.rmtree(base, ignore_errors=True)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def prefect_server(
    postgres: Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrefectServer]:
    """`prefect server start` on PostgreSQL; the test process talks to it (temporary_settings)
    and so do the registrar and the workers (PREFECT_API_URL in their environment)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_DATABASE")},
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": postgres.url,
        # The deployments' own schedules (fleet-status every 15 minutes) would start runs
        # of their own in the middle of the test; the test starts every run it checks.
        "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    }
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "prefect", "server", "start",
                "--host", "127.0.0.1", "--port", str(port), "--analytics-off", "--no-ui",
            ],
            cwd=home,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                pytest.fail(f"prefect server on PostgreSQL did not start:\n{tail}")
            time.sleep(0.5)
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield PrefectServer(url=url, log=log, postgres=postgres)
            _flush_run_logs()
    finally:
        _stop(proc)


def _flush_run_logs() -> None:
    # Logs and events of the test process are sent in batches; send them while the server is up.
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5)
    EventsWorker.drain_all(timeout=5)
