"""The README's sandbox command as a new user types it, `./dev run acr-edge sandbox up --state-dir
DIR --sites 2 --nodes-per-site 3 --register-blocks`, and its node step: `ssh-keyscan -p PORT HOST`
gives exactly the line to pin for each node (the one sandbox.json and the saved block carry);
and the README's two Python examples, run as written (placeholders filled)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL

from acr_edge.sandbox_blocks import PARENT_BLOCK, site_block_name
from blocks.edge_site import EdgeSite

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 600.0  # ./dev syncs the virtualenv first; a busy 2-core host
SITES, NODES = 2, 3


@pytest.fixture(scope="module")
def sandbox_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], str]]:
    state = tmp_path_factory.mktemp("readme-sandbox")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    proc = subprocess.Popen(
        [
            str(ROOT / "dev"), "run", "acr-edge", "sandbox", "up", "--state-dir", str(state),
            "--sites", str(SITES), "--nodes-per-site", str(NODES), "--register-blocks",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
        start_new_session=True,  # ./dev execs, but a stray child would go with the group
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        saved = proc.stdout.readline()  # blocks until the sandbox is up (or the command ended)
        info = json.loads((state / "sandbox.json").read_text())
        yield info, saved
    finally:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 0


def test_sandbox_up_through_dev_run_saves_the_blocks_of_every_site_and_node(
    sandbox_up: tuple[dict[str, Any], str],
) -> None:
    info, saved = sandbox_up
    names = [PARENT_BLOCK, *(site_block_name(i) for i in range(1, SITES + 1))]
    assert f"saved blocks: {', '.join(names)}" in saved, saved
    assert len(info["sites"]) == SITES
    for i, site in enumerate(info["sites"], 1):
        assert [n["role"] for n in site["nodes"]] == ["server"] + ["agent"] * (NODES - 1)
        block: Any = EdgeSite.load(site_block_name(i))
        assert block.ssh_port == site["ssh_port"]


def test_ssh_keyscan_prints_each_nodes_line_to_pin(sandbox_up: tuple[dict[str, Any], str]) -> None:
    info, _ = sandbox_up
    for node in info["sites"][0]["nodes"]:
        scan = subprocess.run(
            ["ssh-keyscan", "-p", str(node["ssh_port"]), node["ssh_host"]],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        lines = [ln for ln in scan.stdout.splitlines() if ln and not ln.startswith("#")]
        assert lines == [node["known_hosts"]], (node["name"], scan.stdout, scan.stderr)
    block: Any = EdgeSite.load(site_block_name(1))
    assert info["sites"][0]["nodes"][0]["known_hosts"] in block.known_hosts


def _python_blocks() -> list[str]:
    """README.md's ```python blocks, in order."""
    text = (ROOT / "README.md").read_text()
    return [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]


def test_readme_python_blocks_are_all_run_here() -> None:
    # Each block has a test below: a new one must get its own.
    blocks = _python_blocks()
    assert len(blocks) == 2
    assert "ContainerRegistryManagementClient" in blocks[0]
    assert "ParentRegistry(" in blocks[1]


def test_readme_sdk_example_reads_the_sandbox_registry(
    sandbox_up: tuple[dict[str, Any], str], tmp_path: Path
) -> None:
    info, _ = sandbox_up
    # The README's example reads ./state/sandbox.json, as `sandbox up --state-dir ./state` left it.
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "sandbox.json").write_text(json.dumps(info))
    done = subprocess.run(
        [sys.executable, "-c", _python_blocks()[0]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == info["login_server"]


def test_readme_parent_block_example_saves_a_valid_block() -> None:
    from blocks.parent_registry import ParentRegistry

    code = _python_blocks()[1]
    # Its placeholders filled as a reader would; saved under another name, so the sandbox's
    # own parent-registry block (other tests' parent) stays as it is.
    code = code.replace('"…"', '"00000000-0000-0000-0000-000000000001"')
    code = code.replace('.save("parent-registry")', '.save("readme-parent", overwrite=True)')
    assert '"…"' not in code and "readme-parent" in code
    exec(compile(code, "README.md", "exec"), {})
    try:
        saved: Any = ParentRegistry.load("readme-parent")
        assert (saved.registry_name, saved.auth) == ("contoso", "service-principal")
        assert saved.client_secret.get_secret_value() == "00000000-0000-0000-0000-000000000001"
    finally:
        ParentRegistry.delete("readme-parent")
