"""provision-site against the sandbox: from nothing to pulling, then a converged re-run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flowkit import FlowSandbox, spec, start

from flows.models import ProvisionSpec
from flows.provision_site import provision_site

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("provision"), sites=1)
    try:
        yield box
    finally:
        box.running.stop()


def test_provision_then_converged_rerun_writes_nothing(fsb: FlowSandbox) -> None:
    site = fsb.site_blocks[0]
    first = provision_site(site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    assert first["outcome"] == "converged", first
    assert first["writes"] > 0
    cr = fsb.azure.resource("connectedRegistries", fsb.info["sites"][0]["name"])
    assert cr["properties"]["connectionState"] == "Online"

    fsb.azure.clear_requests()
    helm_before = fsb.site().helm_revision("connected-registry", "connected-registry")
    restarts_before = fsb.site().restart_count
    second = provision_site(site, fsb.parent_block, ProvisionSpec(**spec()))
    assert second["outcome"] == "already converged", second
    assert second["writes"] == 0
    assert fsb.arm_writes() == []
    assert fsb.site().helm_revision("connected-registry", "connected-registry") == helm_before
    assert fsb.site().restart_count == restarts_before
    for step in second["steps"]:
        assert step["message"], step  # every no-op says why
