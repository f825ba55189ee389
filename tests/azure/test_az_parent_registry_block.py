"""ParentRegistry block: validators refuse ambiguous settings, naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from blocks import ParentRegistry

SUB = "5c1b7a3e-0000-4000-8000-0000000000b5"


def _sp(**over: Any) -> ParentRegistry:
    args: dict[str, Any] = {
        "subscription_id": SUB,
        "resource_group": "edge-rg",
        "registry_name": "contosoedge",
        "tenant_id": "t",
        "client_id": "c",
        "client_secret": "s3cret-value",
    }
    args.update(over)
    return ParentRegistry(**args)


def test_defaults_public_cloud() -> None:
    block = _sp()
    assert block._block_type_slug == "parent-registry"
    assert block.arm_scope == "https://management.azure.com/.default"
    assert block.catalog_endpoint == "https://contosoedge.azurecr.io"
    assert block.connected_registry_api_version == "2026-01-01-preview"
    assert not block.instance_discovery_disabled
    assert "s3cret-value" not in repr(block)


def test_sovereign_and_custom_endpoints() -> None:
    assert _sp(arm_endpoint="https://management.chinacloudapi.cn").arm_scope == (
        "https://management.chinacloudapi.cn/.default"
    )
    custom = _sp(
        arm_endpoint="https://127.0.0.1:8443",
        authority_host="https://127.0.0.1:8443",
        arm_audience="https://management.core.windows.net/",
    )
    assert custom.arm_scope == "https://management.core.windows.net/.default"
    assert custom.instance_discovery_disabled


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"client_secret": None}, "client_secret"),
        ({"tenant_id": None}, "tenant_id"),
        ({"auth": "default", "tenant_id": None, "client_id": None}, "client_secret"),
        ({"auth": "default", "client_secret": None}, "tenant_id"),
        ({"arm_endpoint": "http://management.azure.com"}, "arm_endpoint"),
        ({"authority_host": "login.microsoftonline.com"}, "authority_host"),
        ({"data_plane_endpoint": "http://x.azurecr.io"}, "data_plane_endpoint"),
        ({"subscription_id": "sub-1"}, "subscription_id"),
        ({"registry_name": "bad-name"}, "registry_name"),
        ({"resource_group": "rg."}, "resource_group"),
        ({"ca_bundle_path": "/nonexistent/ca.pem"}, "ca_bundle_path"),
        ({"auth": "cert"}, "auth"),
    ],
)
def test_refuses_naming_the_field(over: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as exc:
        _sp(**over)
    assert field in str(exc.value)
    assert "s3cret-value" not in str(exc.value)


def test_default_auth_builds_a_credential_chain(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    block = ParentRegistry(
        subscription_id=SUB,
        resource_group="edge-rg",
        registry_name="contosoedge",
        auth="default",
        ca_bundle_path=str(ca),
    )
    from azure.identity import DefaultAzureCredential

    assert isinstance(block.credential(), DefaultAzureCredential)
