"""The layers drawn in docs/design.md are the layers run: checked on the source, by AST."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ["acr_edge", "blocks", "tasks", "flows", "deployments"]
# Modules that decide: no I/O clients, no Prefect, no sandbox.
PURE = [
    "model/names.py",
    "model/plan.py",
    "model/result.py",
    "tasks/azure/actions.py",
    "tasks/azure/connection_string.py",
    "tasks/azure/desired.py",
    "tasks/azure/schedule.py",
    "tasks/site/registries_yaml.py",
    "tasks/site/helm_values.py",
    "tasks/site/plans.py",
    "tasks/rotation.py",
    "flows/health.py",
    "flows/plan.py",
    "flows/pacer.py",
]
IO_MODULES = ("paramiko", "kubernetes", "azure", "prefect", "requests", "socket", "subprocess")
# The demo and the sandbox CLI are the two places that start the sandbox on purpose.
SANDBOX_ALLOWED = {"acr_edge/demo.py", "acr_edge/cli.py"}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def production_files() -> list[Path]:
    return [p for pkg in PRODUCTION for p in sorted((ROOT / pkg).rglob("*.py"))]


def test_there_is_production_code_to_check() -> None:
    assert len(production_files()) > 5


@pytest.mark.parametrize("path", production_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_production_code_never_imports_the_sandbox(path: Path) -> None:
    rel = str(path.relative_to(ROOT))
    if rel in SANDBOX_ALLOWED or rel.startswith("bench/"):
        return
    bad = {m for m in imported_modules(path) if m == "sandbox" or m.startswith("sandbox.")}
    assert not bad, f"{rel} imports {sorted(bad)}: production code must not know the sandbox"


@pytest.mark.parametrize("rel", PURE)
def test_decision_modules_do_no_io(rel: str) -> None:
    path = ROOT / rel
    if not path.exists():
        pytest.fail(f"{rel} is listed as a pure decision module but does not exist")
    bad = {m for m in imported_modules(path) if m.split(".")[0] in IO_MODULES}
    assert not bad, f"{rel} imports I/O modules {sorted(bad)}; decisions must stay pure"


@pytest.mark.parametrize("module", ["tasks.site.steps", "tasks.azure.steps"])
def test_step_tasks_carry_no_tags(module: str) -> None:
    """A tagged task run costs a tag-concurrency call to the API each time (bench: N=1 provision
    16.6 s -> 12.3 s without); tags for the UI belong on flows and deployments."""
    import importlib

    from prefect import Task

    mod = importlib.import_module(module)
    tasks = [t for t in vars(mod).values() if isinstance(t, Task)]
    assert len(tasks) > 5
    tagged = {t.name: sorted(t.tags) for t in tasks if t.tags}
    assert not tagged, f"{module} tasks carry tags {tagged}"
