"""start_sandbox / sandbox.json and `acr-edge sandbox up` as a real process."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from sandbox.runner import start_sandbox
from sandbox.testing import mgmt_client

REQUIRED = {
    "arm_endpoint",
    "authority",
    "tenant_id",
    "client_id",
    "client_secret",
    "subscription_id",
    "resource_group",
    "registry",
    "location",
    "login_server",
    "data_plane_endpoint",
    "ca_bundle",
    "internal_endpoint",
    "internal_key",
    "sites",
}


def test_start_sandbox_writes_sandbox_json(tmp_path: Path) -> None:
    started = time.perf_counter()
    with start_sandbox(tmp_path, port=0) as running:
        elapsed = time.perf_counter() - started
        path = tmp_path / "sandbox.json"
        info = json.loads(path.read_text())
        assert set(info) >= REQUIRED and info["sites"] == []
        assert stat.S_IMODE(path.stat().st_mode) == 0o600  # holds the client secret
        assert Path(info["ca_bundle"]).read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert info == running.info
        assert mgmt_client(info).registries.get(info["resource_group"], info["registry"]).name
    assert elapsed < 1.0


def test_sandbox_up_runs_until_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "acr_edge.cli",
            "sandbox",
            "up",
            "--state-dir",
            str(tmp_path),
            "--repos",
            "12",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert str(tmp_path / "sandbox.json") in line and "started in" in line
        info = json.loads((tmp_path / "sandbox.json").read_text())
        reg = mgmt_client(info).registries.get(info["resource_group"], info["registry"])
        assert reg.login_server == info["login_server"]
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
