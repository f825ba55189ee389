"""The layers drawn in docs/design.md are the layers run.

Import directions (CLI > deployments > flows > tasks steps > I/O > pure > model; blocks beside
tasks; the sandbox and production apart; pure modules free of I/O libraries) are import-linter
contracts in pyproject.toml, checked by ``./dev test`` (``lint-imports``). What an import graph
cannot show is checked here.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["tasks.site.steps", "tasks.azure.steps"])
def test_step_tasks_carry_no_tags(module: str) -> None:
    """A tagged task run costs a tag-concurrency call to the API each time (bench: N=1 provision
    16.6 s -> 12.3 s without); tags for the UI belong on flows and deployments."""
    from prefect import Task

    mod = importlib.import_module(module)
    tasks = [t for t in vars(mod).values() if isinstance(t, Task)]
    assert len(tasks) > 5
    tagged = {t.name: sorted(t.tags) for t in tasks if t.tags}
    assert not tagged, f"{module} tasks carry tags {tagged}"


PRODUCTION = ("acr_edge", "blocks", "model", "tasks", "flows", "deployments")
MAX_LINES = 400


def test_no_production_module_over_400_lines() -> None:
    """Small modules named for what they handle: a module past the limit holds two things."""
    root = Path(__file__).resolve().parents[1]
    files = [p for pkg in PRODUCTION for p in sorted((root / pkg).rglob("*.py"))]
    assert len(files) > 40
    long = {
        str(p.relative_to(root)): n
        for p in files
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_test_module_names_are_unique() -> None:
    """The test folders are not packages: pytest imports each file by its base name, so two
    files with one name fail the whole collection (only when both are collected, as CI does)."""
    names = [p.name for p in Path(__file__).resolve().parent.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
