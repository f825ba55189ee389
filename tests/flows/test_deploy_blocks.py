"""acr_edge.sandbox_blocks saves ordinary blocks that reach the sandbox over real HTTPS/SSH."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from acr_edge.sandbox_blocks import PARENT_BLOCK, register
from blocks.edge_site import EdgeSite
from blocks.parent_registry import ParentRegistry
from sandbox.runner import start_sandbox


@pytest.fixture(scope="module")
def sandbox_info(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    running = start_sandbox(tmp_path_factory.mktemp("blocks-sandbox"), sites=1)
    try:
        yield running.info
    finally:
        running.stop()


def test_register_saves_parent_and_one_block_per_site(sandbox_info: dict[str, Any]) -> None:
    names = register(sandbox_info)
    assert names == [PARENT_BLOCK, "sandbox-site-1"]

    parent: Any = ParentRegistry.load(PARENT_BLOCK)  # sync load (the stubs also allow a coroutine)
    assert parent.registry_name == sandbox_info["registry"]
    assert parent.client_secret is not None
    assert parent.client_secret.get_secret_value() == sandbox_info["client_secret"]
    assert parent.ca_bundle_path == sandbox_info["ca_bundle"]
    # the saved block authenticates and reads the registry over the sandbox's HTTPS
    ctx = parent.azure_context()
    try:
        registry = ctx.mgmt.registries.get(ctx.resource_group, ctx.registry)
        assert registry.name == sandbox_info["registry"]
    finally:
        ctx.close()

    [site_info] = sandbox_info["sites"]
    site: Any = EdgeSite.load("sandbox-site-1")
    assert site.name == site_info["name"]
    assert site.ssh_port == site_info["ssh_port"]
    assert (
        site.ssh_private_key.get_secret_value() == Path(site_info["private_key_path"]).read_text()
    )
    assert site.known_hosts == [site_info["known_hosts"]]
    assert site.registries_path == site_info["registries_path"]
    assert site.app_namespaces == ["apps"]


def test_register_is_repeatable_and_refuses_overwrite_when_asked(
    sandbox_info: dict[str, Any],
) -> None:
    assert register(sandbox_info) == register(sandbox_info)
    with pytest.raises(ValueError):
        register(sandbox_info, overwrite=False)


def test_bad_info_writes_nothing(sandbox_info: dict[str, Any]) -> None:
    register(sandbox_info)
    bad_site = {**sandbox_info["sites"][0], "name": "Bad Name"}
    with pytest.raises(ValueError):
        register({**sandbox_info, "registry": "unsavedreg1", "sites": [bad_site]})
    # every block is validated before the first save: the parent still names the real registry
    reloaded: Any = ParentRegistry.load(PARENT_BLOCK)
    assert reloaded.registry_name == sandbox_info["registry"]


def test_register_stores_the_sandbox_sites_spec(sandbox_info: dict[str, Any]) -> None:
    from acr_edge.sandbox_blocks import SPEC_BLOCK, SPEC_NAMESPACES
    from flows.site_specs import spec_for_site

    register(sandbox_info)
    spec, resolved = spec_for_site("sandbox-site-1", ["sandbox"])
    assert resolved.spec.name == SPEC_BLOCK and spec.namespaces == SPEC_NAMESPACES
    assert spec.enable_data_endpoint  # the sandbox registry starts with it off
