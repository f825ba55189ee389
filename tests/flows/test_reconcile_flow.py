"""The scheduled reconcile end to end: reconcile-fleet (as its daily schedule starts it, with
no spec) starts a provision-site deployment run per site with a stored spec on a real process
worker, and a repository pushed into the parent under the site's namespace reaches the site's
sync scope map."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploykit import KWARGS, worker_argv, worker_env
from flowkit import FlowSandbox, start

from acr_edge.local_prefect import stop_process
from blocks.site_spec import EdgeSiteSpec
from deployments.definitions import definitions
from deployments.register import deploy
from flows.reconcile import reconcile_fleet
from model.errors import PermanentError
from model.site_spec import SPEC_BLOCK_TYPE

pytestmark = pytest.mark.prefect
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("reconcile"), sites=1)
    try:
        yield box
    finally:
        box.running.stop()


@pytest.fixture(scope="module")
def worker(fsb: FlowSandbox) -> Iterator[subprocess.Popen[bytes]]:
    deploy(**KWARGS)
    proc = subprocess.Popen(
        worker_argv("--limit", "3"),
        cwd=ROOT,
        env=worker_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        stop_process(proc, timeout=10)


def _scope(fsb: FlowSandbox) -> set[str]:
    cr = fsb.info["sites"][0]["name"]
    found = fsb.azure.resource("scopeMaps", cr)
    actions = (found or {}).get("properties", {}).get("actions", [])
    suffix = "/content/read"
    return {a[len("repositories/") : -len(suffix)] for a in actions if a.endswith(suffix)}


def _reconcile(parent: str, site_block: str) -> dict[str, Any] | None:
    """reconcile-fleet with the daily schedule's parameters; other modules' sites with stored
    specs share this API (their sandboxes may be gone): only this site's run is judged."""
    [daily] = next(d for d in definitions() if d.name == "reconcile-fleet").schedules
    assert daily.parameters == {}  # the schedule passes no spec and picks no sites
    try:
        return reconcile_fleet(parent_block=parent, **daily.parameters)
    except PermanentError as exc:
        assert f"provision-{site_block}" not in str(exc), exc
        return None


def _forget_other_specs() -> None:
    """Earlier modules' stored specs name sites whose sandboxes are gone: the daily run would
    start them too, and one of them as the canary halts the run before this site's turn."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        for doc in client.read_block_documents_by_type(SPEC_BLOCK_TYPE, include_secrets=False):
            client.delete_block_document(doc.id)


def test_new_repositories_reach_a_site_on_the_scheduled_reconcile(
    fsb: FlowSandbox, worker: Any
) -> None:
    site = fsb.site_blocks[0]
    _forget_other_specs()
    EdgeSiteSpec(sites=[site], namespaces=["samples"], enable_data_endpoint=True).save(
        f"spec-{uuid.uuid4().hex[:6]}", overwrite=True
    )
    out = _reconcile(fsb.parent_block, site)
    assert out is None or site in [r["site"] for r in out["sites"]]
    first = _scope(fsb)
    assert first and all(r.startswith("samples/") for r in first)
    assert "samples/pushed-later" not in first

    fsb.azure.add_repositories(["samples/pushed-later"])  # pushed into the parent
    _reconcile(fsb.parent_block, site)
    assert _scope(fsb) == first | {"samples/pushed-later"}
