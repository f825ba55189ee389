"""tasks/site is filed by resource and typed against model.site, never against the block;
its Prefect tasks carry no retries (the one retry policy is in-process)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "tasks" / "site"
RESOURCES = ["namespace", "helm_release", "node_mirror", "pull_secrets", "canary"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _site_modules() -> list[object]:
    return [pytest.param(p, id=p.name) for p in sorted(SITE.glob("*.py"))]


@pytest.mark.parametrize("path", _site_modules())
def test_site_tasks_never_import_blocks_or_flows(path: Path) -> None:
    bad = {m for m in _imports(path) if m.split(".")[0] in ("blocks", "flows")}
    assert not bad, f"{path.name} imports {sorted(bad)}: type against model.site instead"


def test_model_site_is_the_bottom_layer() -> None:
    bad = {
        m
        for m in _imports(ROOT / "model" / "site.py")
        if m.split(".")[0] in ("blocks", "tasks", "flows", "kubernetes", "paramiko", "prefect")
    }
    assert not bad, bad


def test_one_module_per_resource_and_the_caller_filed_ones_are_gone() -> None:
    for name in RESOURCES:
        assert (SITE / f"{name}.py").exists(), name
    for gone in ("ops", "credentials", "facts"):
        assert not (SITE / f"{gone}.py").exists(), f"tasks/site/{gone}.py is filed by caller"


@pytest.mark.parametrize("name", RESOURCES)
def test_every_resource_module_has_its_ensure_step_and_reads(name: str) -> None:
    mod = importlib.import_module(f"tasks.site.{name}")
    ensures = [n for n in vars(mod) if n.startswith("ensure_")]
    assert ensures, f"tasks.site.{name} has no ensure_<resource> step"


def test_site_step_tasks_carry_no_prefect_retries() -> None:
    """Issue 7 item 2: a Prefect retry on top of the in-process one stacks (up to four
    restarts of a slow node); the waits and the restart run to their own deadline."""
    from prefect import Task

    steps = importlib.import_module("tasks.site.steps")
    tasks = [t for t in vars(steps).values() if isinstance(t, Task)]
    assert len(tasks) > 10
    retried = {t.name: t.retries for t in tasks if t.retries}
    assert not retried, retried
    assert not [t.name for t in tasks if t.retry_condition_fn is not None]
