"""Defaults that work: the deployments' default parent block is what the sandbox and the README
save, `acr-edge sandbox up --register-blocks` says what it saved and seeds the data endpoint on
(so the first provision passes preflight), and a real parent of that name is never overwritten."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL
from pydantic import SecretStr

from acr_edge.sandbox_blocks import PARENT_BLOCK, _refuse_foreign_parent
from blocks.parent_registry import ParentRegistry
from deployments.definitions import DEFAULT_PARENT_BLOCK, definitions
from model.errors import InputError
from sandbox.testing import mgmt_client

ROOT = Path(__file__).parents[2]


def test_one_parent_name_everywhere() -> None:
    assert PARENT_BLOCK == DEFAULT_PARENT_BLOCK == "parent-registry"
    # fleet-shard is started by fleet runs with their own parameters (the parent among them).
    named = [d for d in definitions() if d.flow_name != "fleet-shard"]
    assert all(d.parameters["parent_block"] == PARENT_BLOCK for d in named)
    readme = (ROOT / "README.md").read_text()
    assert f'.save("{PARENT_BLOCK}")' in readme
    assert (ROOT / "deployments" / "prefect.yaml").read_text().count(
        f"parent_block: {PARENT_BLOCK}"
    ) == len(named)


def _parent(arm_endpoint: str) -> ParentRegistry:
    return ParentRegistry(
        subscription_id="5c1b7a3e-0000-4000-8000-0000000000b5",
        resource_group="rg",
        registry_name="contoso",
        auth="service-principal",
        tenant_id="72f988bf-0000-4000-8000-00000000a11e",
        client_id="0c4b9f3a-0000-4000-8000-00000000c11e",
        client_secret=SecretStr("x"),
        arm_endpoint=arm_endpoint,
    )


def test_sandbox_never_overwrites_a_real_parent_of_that_name() -> None:
    real, sandboxed = f"real-{uuid.uuid4().hex[:8]}", f"sbx-{uuid.uuid4().hex[:8]}"
    _parent("https://management.azure.com").save(real)
    _parent("https://127.0.0.1:8443").save(sandboxed)
    with pytest.raises(InputError, match="does not overwrite") as exc:
        _refuse_foreign_parent(real)
    assert "management.azure.com" in str(exc.value)
    _refuse_foreign_parent(sandboxed)  # the sandbox's own: saved again
    _refuse_foreign_parent(f"none-{uuid.uuid4().hex[:8]}")  # not saved yet


def test_sandbox_up_says_what_it_saved_and_seeds_the_data_endpoint_on(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    argv = [sys.executable, "-m", "acr_edge.cli", "sandbox", "up", "--state-dir", str(tmp_path)]
    proc = subprocess.Popen(
        [*argv, "--sites", "1", "--repos", "3", "--register-blocks"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        assert f"saved blocks: {PARENT_BLOCK}, sandbox-site-1" in lines[0], lines
        info = json.loads((tmp_path / "sandbox.json").read_text())
        reg = mgmt_client(info).registries.get(info["resource_group"], info["registry"])
        assert reg.data_endpoint_enabled is True
        saved: Any = ParentRegistry.load(PARENT_BLOCK)
        assert saved.registry_name == info["registry"]
    finally:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
