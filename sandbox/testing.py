"""Reusable pytest helpers: start the sandbox in-process and build real SDK clients against it.

Use from any conftest::

    from sandbox.testing import azure_sandbox_fixture

    @pytest.fixture(scope="session")
    def azure_sandbox(tmp_path_factory):
        yield from azure_sandbox_fixture(tmp_path_factory)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from azure.core.pipeline.transport import RequestsTransport

from sandbox.azure import SeedConfig
from sandbox.runner import RunningSandbox, start_sandbox

ACR_AUDIENCE = "https://containerregistry.azure.net"
CR_API_VERSION = "2026-01-01-preview"


def azure_sandbox_fixture(
    tmp_path_factory: Any, *, sites: int = 0, seed: SeedConfig | None = None, **knobs: Any
) -> Iterator[RunningSandbox]:
    """Generator for a pytest fixture: one running sandbox, stopped afterwards."""
    state_dir = tmp_path_factory.mktemp("sandbox")
    # Tests set what they test: propagation is 0 here unless a test asks for it (start_sandbox
    # itself defaults to a few seconds, as the demo and `sandbox up` run).
    knobs.setdefault("propagation_delay", 0)
    # LROs answer Retry-After: 10 as ACR does; 1 s keeps tests that hold an LRO in progress
    # (lro_polls, lro_seconds) quick while the client still waits a positive Retry-After.
    knobs.setdefault("lro_retry_after", 1)
    running = start_sandbox(state_dir, sites=sites, seed=seed, **knobs)
    try:
        yield running
    finally:
        running.stop()


def credential(info: dict[str, Any], secret: str | None = None) -> Any:
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        info["tenant_id"],
        info["client_id"],
        secret or info["client_secret"],
        authority=info["authority"],
        disable_instance_discovery=True,
        connection_verify=info["ca_bundle"],
    )


def mgmt_client(info: dict[str, Any], **kwargs: Any) -> Any:
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    kwargs.setdefault("polling_interval", 0)
    # the block's default: the live service lists only previews on connectedRegistries
    kwargs.setdefault("api_version", CR_API_VERSION)
    return ContainerRegistryManagementClient(
        kwargs.pop("credential", None) or credential(info),
        info["subscription_id"],
        base_url=info["arm_endpoint"],
        connection_verify=info["ca_bundle"],
        **kwargs,
    )


def registry_client(info: dict[str, Any], **kwargs: Any) -> Any:
    from azure.containerregistry import ContainerRegistryClient

    return ContainerRegistryClient(
        info["data_plane_endpoint"],
        kwargs.pop("credential", None) or credential(info),
        audience=ACR_AUDIENCE,
        connection_verify=info["ca_bundle"],
        **kwargs,
    )


class RecordingTransport(RequestsTransport):
    """The real requests transport; only its sleeps (retry and polling waits) are recorded."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sleeps: list[float] = []

    def sleep(self, duration: float) -> None:
        self.sleeps.append(duration)
