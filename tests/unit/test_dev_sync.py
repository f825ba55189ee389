"""./dev's own virtualenv stays put: a second `./dev` call must find the environment the first
one built. It named the interpreter as `command -v python3`, which on a pyenv machine is a shim;
uv took the shim for a different interpreter and rebuilt .venv on every call, so the README
test that runs `./dev run ...` removed fastapi from under the PostgreSQL fleet test's server."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_dev_names_the_interpreter_the_virtualenv_was_built_with() -> None:
    # ./dev's own choice, not one inherited from the ./dev test that started this suite.
    env = {k: v for k, v in os.environ.items() if k != "UV_PYTHON"}
    done = subprocess.run(
        [str(ROOT / "dev"), "sync", "--check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Would make no changes" in done.stdout
