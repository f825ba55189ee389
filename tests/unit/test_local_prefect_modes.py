"""The Prefect server acr-edge starts itself (demo, bench) keeps its files private: PREFECT_HOME
0700 and the database (which holds the blocks' secrets and the key that decrypts them) 0600.

The server alone was never the problem: a real `acr-edge demo` left a second, world-readable
prefect.db (with -wal/-shm) in the demo process's own PREFECT_HOME. The Azure SDK polls a
long-running operation in a thread of its own, which did not see the private server's API URL,
so the ARM budget's concurrency call there made Prefect start an ephemeral server with the
demo's umask. Hence a test of such a thread and one of the demo itself, as a user runs it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

from acr_edge.local_prefect import prefect_api

DEMO_TIMEOUT = 1200.0  # a busy 2-core host; the demo alone takes minutes there
# Prefect logs this whenever a client without an API URL starts a server of its own.
EPHEMERAL_MARK = "Starting temporary server"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_own_server_keeps_home_0700_and_database_0600() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    old_umask = os.umask(0o022)  # the usual umask: without our own, prefect.db would be 0644
    try:
        with temporary_settings(restore_defaults={PREFECT_API_URL}), prefect_api() as api:
            assert api.own and api.server_log is not None
            home = api.server_log.parent
            db = home / "prefect.db"
            assert db.exists(), sorted(p.name for p in home.iterdir())
            assert _mode(home) == 0o700
            assert _mode(db) == 0o600
            for path in home.rglob("*"):  # -wal/-shm, the log, storage: nobody else's
                assert _mode(path) & 0o077 == 0, (path, oct(_mode(path)))
        assert not home.exists()  # removed afterwards
    finally:
        os.umask(old_umask)


def test_a_thread_the_process_did_not_start_with_its_context_reaches_the_own_server() -> None:
    """As the Azure SDK's LRO poller thread: no copy of the caller's context."""
    import prefect.context
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    seen: dict[str, object] = {}

    def poller() -> None:
        try:
            with get_client(sync_client=True) as client:
                seen["url"] = str(client.api_url)
                seen["health"] = client.api_healthcheck()
        except Exception as exc:  # reported below
            seen["error"] = f"{type(exc).__name__}: {exc}"

    global_before, env_before = prefect.context.GLOBAL_SETTINGS_CONTEXT, os.environ.copy()
    with temporary_settings(restore_defaults={PREFECT_API_URL}), prefect_api() as api:
        thread = threading.Thread(target=poller)  # started without contextvars.copy_context
        thread.start()
        thread.join()
    assert "error" not in seen, seen
    assert str(seen["url"]).rstrip("/") == api.url.rstrip("/")
    assert seen["health"] is None  # healthy: no exception
    # and nothing of it stays behind
    assert prefect.context.GLOBAL_SETTINGS_CONTEXT is global_before
    assert dict(os.environ) == env_before


def _watch(root: Path, stop: threading.Event, found: dict[str, set[str]]) -> None:
    """Every file and folder in a Prefect home below ``root`` that group or others may read,
    and every database seen, until ``stop``."""
    while not stop.is_set():
        for home in root.glob("acr-edge-prefect-*"):
            for path in [home, *home.rglob("*")]:
                try:
                    mode = _mode(path)
                except FileNotFoundError:  # removed meanwhile
                    continue
                if path.name.startswith("prefect.db"):
                    found["databases"].add(str(path.relative_to(root)))
                if (path != home and mode & 0o077) or (path == home and mode != 0o700):
                    found["open"].add(f"{path.relative_to(root)} {oct(mode)}")
        stop.wait(0.2)


def test_demo_keeps_every_prefect_home_private_for_the_whole_run(tmp_path: Path) -> None:
    """`acr-edge demo` through its entry point, with a user's environment: no Prefect settings,
    the usual umask; its temp folders go below tmp_path so that they can be watched."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["TMPDIR"] = str(tmp_path)
    found: dict[str, set[str]] = {"databases": set(), "open": set()}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(tmp_path, stop, found), daemon=True)
    watcher.start()
    entry = Path(sys.executable).parent / "acr-edge"
    try:
        done = subprocess.run(
            [str(entry), "demo", "--sites", "1", "--nodes-per-site", "1"],
            env=env,
            umask=0o022,
            capture_output=True,
            text=True,
            timeout=DEMO_TIMEOUT,
            check=False,
        )
    finally:
        stop.set()
        watcher.join()
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert EPHEMERAL_MARK not in output, output[-4000:]
    assert found["open"] == set(), found
    # The watcher saw the private server's database, and no other anywhere.
    homes = {db.split("/")[0] for db in found["databases"]}
    assert len(homes) == 1 and next(iter(homes)).startswith("acr-edge-prefect-server-"), found
    assert list(tmp_path.glob("acr-edge-prefect-*")) == []  # both homes removed at exit
