"""A Prefect API for one-command tools (demo, bench): the user's if reachable, else our own.

Our own is a real `prefect server start` subprocess on a free loopback port with its own
PREFECT_HOME (database, results), removed afterwards, so the demo leaves nothing behind.
That home is 0700 and everything the server writes in it 0600: `prefect.db` holds the blocks
(SSH key, client secret) and the key that decrypts them.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from model.errors import PermanentError

SERVER_START_TIMEOUT = 180.0  # a busy 2-core host can take a minute

# Settings of the private server (a user's environment overrides each one). With SQLite, every
# write transaction that lands between another request's read and write makes that request
# fail with "database is locked", which the API answers 503 and the client retries after 2, 4,
# 8 ... s. The task-run recorder writes each task-run event in its own transaction by default
# (batch size 1: about 90 transactions per provision-site run); batching them keeps every task
# run recorded, at most a second later, with a fraction of the write transactions. The event
# persister (default: a transaction per 20 events) is batched the same way.
# Retryable errors are logged so that one-shot tools can count them (`PrefectApi.server_log`).
PRIVATE_SERVER_SETTINGS = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
}


_API_FRAME = re.compile(r"prefect/server/api/(\w+)\.py\", line [0-9]+, in (\w+)", re.ASCII)


@dataclass(frozen=True)
class PrefectApi:
    url: str  # http://host:port/api
    own: bool  # True when this process started (and will stop) the server
    server_log: Path | None = None  # our own server's log (removed when it stops)

    def retryable_errors(self) -> dict[str, int] | None:
        """Requests our own server answered 503 (SQLite locked) so far, by API handler
        (``"flow_runs.create_flow_run": 3``); None for a user's API."""
        if self.server_log is None or not self.server_log.exists():
            return None
        text = self.server_log.read_text(errors="replace")
        counts: dict[str, int] = {}
        for chunk in text.split("Encountered retryable exception in request")[1:]:
            # The first frame in an API module below the server's own middleware names it.
            frames = [m.groups() for m in _API_FRAME.finditer(chunk) if m.group(1) != "server"]
            key = ".".join(frames[0]) if frames else "unknown"
            counts[key] = counts.get(key, 0) + 1
        return counts

    @property
    def ui_url(self) -> str:
        return self.url.removesuffix("/api")


# Files and folders the private server creates are the user's alone.
PRIVATE_UMASK = 0o077


def isolate_prefect_home() -> None:
    """Before prefect is imported: without a user API, keep everything in a temp PREFECT_HOME
    instead of creating ~/.prefect (mkdtemp makes it 0700), removed when the process exits."""
    if "PREFECT_API_URL" not in os.environ and "PREFECT_HOME" not in os.environ:
        home = tempfile.mkdtemp(prefix="acr-edge-prefect-")
        os.environ["PREFECT_HOME"] = home
        atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # These tools use the user's API or start their own server: a Prefect call that finds
    # neither must fail, not start an ephemeral server of its own (default umask, so a
    # world-readable prefect.db) that the run's other calls never see.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_ENABLED", "false")


def _healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def own_server(*, ui: bool = False) -> Iterator[PrefectApi]:
    """A private `prefect server start` for the duration (see the module docstring); with
    ``ui`` it also serves the Prefect UI at ``ui_url`` (screenshots), else API only."""
    home = tempfile.mkdtemp(prefix="acr-edge-prefect-server-")
    os.chmod(home, 0o700)  # mkdtemp's mode already; said here because the database lives in it
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **PRIVATE_SERVER_SETTINGS,
        **os.environ,
        "PREFECT_HOME": home,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": url,
        # The UI asks the server where its API is; on a non-default port it must be told.
        "PREFECT_UI_API_URL": url,
    }
    log_path = os.path.join(home, "server.log")
    with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--analytics-off",
                *([] if ui else ["--no-ui"]),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # prefect.db, its -wal/-shm files and result storage: 0600, folders 0700
            umask=PRIVATE_UMASK,
        )
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _healthy(url, timeout=1.0):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = Path(log_path).read_text(errors="replace")[-2000:]
                raise PermanentError(
                    f"local Prefect server did not start:\n{tail}",
                    resource="prefect server start",
                    fix="set PREFECT_API_URL to a running Prefect server instead.",
                )
            time.sleep(0.25)
        from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

        with (
            _process_wide({"PREFECT_API_URL": url, "PREFECT_HOME": home}),
            temporary_settings(updates={PREFECT_API_URL: url, PREFECT_HOME: home}),
        ):
            try:
                yield PrefectApi(url=url, own=True, server_log=Path(log_path))
            finally:
                _flush_run_logs()
    finally:
        stop_process(proc, timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds; reaped either way
    (the servers and workers the tools and tests start)."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


@contextlib.contextmanager
def _process_wide(settings: dict[str, str]) -> Iterator[None]:
    """The settings for every thread of this process and its children, not only this one.

    `temporary_settings` lives in a context variable, and threads that a library starts
    itself do not inherit it: the Azure SDK polls a long-running operation in its own
    thread, where the ARM budget takes Prefect concurrency slots. Such a thread saw no API
    URL, so Prefect started a second, ephemeral server in the process's PREFECT_HOME with
    this process's umask (prefect.db 0644, holding the blocks' key) and kept part of the
    ARM budget there. Prefect's settings for a context-less thread are read from the
    environment (`refresh_global_settings_context`), so the environment says it."""
    import prefect.context

    before = {key: os.environ.get(key) for key in settings}
    # Given back as it was, not read again: a test harness may have put its own in place.
    before_context = prefect.context.GLOBAL_SETTINGS_CONTEXT
    os.environ.update(settings)
    prefect.context.refresh_global_settings_context()
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        prefect.context.GLOBAL_SETTINGS_CONTEXT = before_context


def _flush_run_logs() -> None:
    # Run logs are shipped in batches; send them while our server still listens.
    with contextlib.suppress(Exception):
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)
        EventsWorker.drain_all(timeout=5)


@contextlib.contextmanager
def prefect_api() -> Iterator[PrefectApi]:
    """The configured API when it answers; otherwise a private server for the duration."""
    from prefect.settings import PREFECT_API_URL

    configured = PREFECT_API_URL.value()
    if configured and _healthy(str(configured)):
        yield PrefectApi(url=str(configured), own=False)
        return
    if configured:
        print(f"Prefect API {configured} does not answer; starting a private one.", file=sys.stderr)
    with own_server() as api:
        yield api


@contextlib.contextmanager
def quiet_runs() -> Iterator[None]:
    """Sync flow runs otherwise join a heartbeat thread (+1 s each); off for one-shot tools."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
