"""Fixtures for the Azure sandbox's own tests (helpers live in sandbox.testing for reuse)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.runner import RunningSandbox
from sandbox.testing import azure_sandbox_fixture, credential, mgmt_client

_names = itertools.count(1)


@pytest.fixture(scope="session")
def azure_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """One sandbox (0 sites) shared by the session: tests use unique resource names.

    Propagation 0: these tests are not about propagation (the ones that are set it)."""
    yield from azure_sandbox_fixture(tmp_path_factory, propagation_delay=0)


@pytest.fixture
def fresh_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A private sandbox for tests that change knobs, faults or the seed registry."""
    yield from azure_sandbox_fixture(tmp_path_factory, propagation_delay=0)


@pytest.fixture
def name() -> str:
    return f"site{next(_names):04d}"


@pytest.fixture(scope="session")
def info(azure_sandbox: RunningSandbox) -> dict[str, Any]:
    return azure_sandbox.info


@pytest.fixture(scope="session")
def mgmt(azure_sandbox: RunningSandbox) -> Any:
    client = mgmt_client(azure_sandbox.info)
    # the seed registry starts without a data endpoint; provisioning must enable it
    client.registries.begin_update(
        azure_sandbox.info["resource_group"],
        azure_sandbox.info["registry"],
        {"properties": {"dataEndpointEnabled": True}},
    ).result()
    return client


@pytest.fixture(scope="session")
def arm_token(azure_sandbox: RunningSandbox) -> str:
    return str(
        credential(azure_sandbox.info).get_token("https://management.azure.com/.default").token
    )


class Raw:
    """Plain HTTPS against the sandbox (CA-verified), for wire-level assertions."""

    def __init__(self, info: dict[str, Any], token: str | None) -> None:
        self.info = info
        self.session = requests.Session()
        self.session.verify = info["ca_bundle"]
        # REQUESTS_CA_BUNDLE (set on this machine) would override session.verify otherwise
        self.session.trust_env = False
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    @property
    def registry_path(self) -> str:
        i = self.info
        return (
            f"/subscriptions/{i['subscription_id']}/resourceGroups/{i['resource_group']}"
            f"/providers/Microsoft.ContainerRegistry/registries/{i['registry']}"
        )

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        api: str | None = "2025-11-01",
        **kwargs: Any,
    ) -> requests.Response:
        params = dict(kwargs.pop("params", {}))
        if api is not None:
            params["api-version"] = api
        return self.session.request(
            method, self.info["arm_endpoint"] + path, json=body, params=params, timeout=10, **kwargs
        )


@pytest.fixture(scope="session")
def raw(info: dict[str, Any], arm_token: str) -> Raw:
    return Raw(info, arm_token)
