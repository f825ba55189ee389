"""The Prefect server acr-edge starts itself (demo, bench) keeps its files private: PREFECT_HOME
0700 and the database (which holds the blocks' secrets and the key that decrypts them) 0600.
Started as the demo starts it: `prefect_api()` with no API configured."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from acr_edge.local_prefect import prefect_api


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
