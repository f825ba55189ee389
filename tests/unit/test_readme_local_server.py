"""The README's local try-out: `prefect server start --port P` alone leaves the UI calling the
API on the default port 4200; with `PREFECT_UI_API_URL` it calls P. The UI reads its API's
address from the server's `/ui-settings`, so that is what is asked here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from acr_edge.local_prefect import free_port, stop_process

START_TIMEOUT = 240.0  # migrations of a new SQLite database on a busy 2-core host


def _ui_api_url(home: Path, port: int, extra_env: dict[str, str]) -> str:
    """`prefect server start --port PORT` (with the UI) in its own home; what the UI is told."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", **extra_env)
    log = home / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            umask=0o077,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                url = f"http://127.0.0.1:{port}/ui-settings"
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return str(json.load(resp)["api_url"])
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"prefect server did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
    finally:
        stop_process(proc, timeout=30)


def test_a_non_default_port_needs_prefect_ui_api_url(tmp_path: Path) -> None:
    (tmp_path / "alone").mkdir(mode=0o700)
    assert _ui_api_url(tmp_path / "alone", free_port(), {}) == "http://127.0.0.1:4200/api"
    port = free_port()
    told = {"PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"}
    (tmp_path / "told").mkdir(mode=0o700)
    assert _ui_api_url(tmp_path / "told", port, told) == f"http://127.0.0.1:{port}/api"
