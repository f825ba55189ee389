"""A real Azure sandbox for the session; a fresh simulated site per test (starts in ~15 ms)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from sandbox.runner import RunningSandbox
from sandbox.sites import SimulatedSite, start_sites
from sandbox.sites.testing import ssh_client
from sandbox.testing import azure_sandbox_fixture, mgmt_client

REPOSITORIES = ["edge/app1", "edge/app2", "other/tool"]
FAST = {
    "restart_time": 0.05,
    "pod_ready_time": 0.05,
    "pull_time": 0.02,
    "pull_backoff": 0.1,
    "pod_run_time": 0.05,
}
_names = itertools.count(1)


@pytest.fixture(scope="session")
def azure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    yield from azure_sandbox_fixture(tmp_path_factory)


@pytest.fixture(scope="session")
def mgmt(azure: RunningSandbox) -> Any:
    client = mgmt_client(azure.info)
    client.registries.begin_update(
        azure.info["resource_group"],
        azure.info["registry"],
        {"properties": {"dataEndpointEnabled": True}},
    ).result()
    azure.azure.add_repositories(REPOSITORIES)
    return client


@pytest.fixture
def site(azure: RunningSandbox, tmp_path: Path) -> Iterator[SimulatedSite]:
    (node,) = start_sites(1, tmp_path, azure.info, **FAST)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture
def ssh(site: SimulatedSite) -> Iterator[paramiko.SSHClient]:
    client = ssh_client(site.info)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cr_name() -> str:
    return f"edgecr{next(_names):03d}"


@pytest.fixture
def cluster(azure: RunningSandbox, tmp_path: Path) -> Iterator[SimulatedSite]:
    """A site of three nodes: the server site1 and the agents site1-n2, site1-n3."""
    (site,) = start_sites(1, tmp_path, azure.info, nodes_per_site=3, **FAST)
    try:
        yield site
    finally:
        site.stop()
