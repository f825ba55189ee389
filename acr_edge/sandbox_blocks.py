"""Save the sandbox's parent registry and sites as ordinary acr-edge blocks.

After this, flows run against the sandbox exactly as against Azure: by block name
(`parent-registry`, `sandbox-site-1`, ...). Only endpoints, CA bundle and credentials differ.
The parent is saved under the deployments' default `parent_block`, so a deploy without flags
runs against it; a block of that name that points at real Azure is never overwritten.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr

from deployments.definitions import DEFAULT_PARENT_BLOCK
from model.errors import InputError

PARENT_BLOCK = DEFAULT_PARENT_BLOCK
SITE_BLOCK_PREFIX = "sandbox-site-"
APP_NAMESPACES = ["apps"]
# The stored desired spec of every sandbox site (tag "sandbox"): provision-site without a spec
# and the daily reconcile use it. The namespaces are the demo's.
SPEC_BLOCK = "sandbox-spec"
SITE_TAG = "sandbox"
SPEC_NAMESPACES = ["samples", "edge/apps"]

# Site-info keys that map one to one onto EdgeSite fields when the sandbox provides them.
_PASSTHROUGH_SITE_FIELDS = (
    "ssh_user",
    "registries_path",
    "kubeconfig_path",
    "hosts_dir",
    "service_name",
    "service_cidr",
    "sudo",
    "distribution",
)


# The transport sandbox sites are registered with: https, as real sites (the demo's
# --transport http runs the first version's mode).
TRANSPORT = "https"
# A free address of the sandbox clusters' service CIDR (each site is its own cluster).
HTTPS_SERVICE_IP = "10.43.100.10"


def site_block_name(index: int) -> str:
    """Block name of the index-th site (1-based), as the demo and tests refer to it."""
    return f"{SITE_BLOCK_PREFIX}{index}"


def parent_block(info: dict[str, Any]) -> Any:
    from blocks.parent_registry import ParentRegistry

    return ParentRegistry(
        subscription_id=info["subscription_id"],
        resource_group=info["resource_group"],
        registry_name=info["registry"],
        auth="service-principal",
        tenant_id=info["tenant_id"],
        client_id=info["client_id"],
        client_secret=SecretStr(info["client_secret"]),
        arm_endpoint=info["arm_endpoint"],
        authority_host=info.get("authority_host") or info["authority"],
        data_plane_endpoint=info["data_plane_endpoint"],
        ca_bundle_path=info["ca_bundle"],
    )


def site_block(site: dict[str, Any], transport: str = TRANSPORT) -> Any:
    from blocks.edge_site import EdgeSite

    known_hosts = site["known_hosts"]
    pinned = [known_hosts] if isinstance(known_hosts, str) else list(known_hosts)
    # Every node's own host key, pinned as the operator would after verifying it.
    for node in site.get("nodes") or []:
        line = node.get("known_hosts")
        for entry in [line] if isinstance(line, str) else list(line or []):
            if entry and entry not in pinned:
                pinned.append(entry)
    fields: dict[str, Any] = {
        key: site[key] for key in _PASSTHROUGH_SITE_FIELDS if site.get(key) is not None
    }
    if len(site.get("nodes") or []) > 1:
        # One block names the same file on every node; each simulated node has its own root
        # (its commands' and SFTP's working directory), so the paths are given relative to it.
        root = Path(site["root"])
        for key in ("registries_path", "kubeconfig_path", "hosts_dir"):
            if key in fields and Path(fields[key]).is_relative_to(root):
                fields[key] = str(Path(fields[key]).relative_to(root))
    if transport == "https":
        # The certificate names the service's address, so https fixes it before the install.
        fields.setdefault("service_cluster_ip", HTTPS_SERVICE_IP)
    return EdgeSite(
        name=site["name"],
        ssh_host=site["ssh_host"],
        ssh_port=int(site["ssh_port"]),
        ssh_private_key=SecretStr(Path(site["private_key_path"]).read_text()),
        known_hosts=pinned,
        app_namespaces=list(site.get("app_namespaces") or APP_NAMESPACES),
        tags=[SITE_TAG],
        transport=transport,  # type: ignore[arg-type]  # the block validates it
        **fields,
    )


def spec_block(namespaces: list[str] | None = None) -> Any:
    """The sandbox sites' stored spec: by tag, the sandbox registry's data endpoint enabled
    (it starts like a fresh Premium registry, with the endpoint off)."""
    from blocks.site_spec import EdgeSiteSpec

    return EdgeSiteSpec(
        tags=[SITE_TAG],
        namespaces=list(namespaces or SPEC_NAMESPACES),
        enable_data_endpoint=True,
    )


def register(
    info: dict[str, Any], *, overwrite: bool = True, transport: str = TRANSPORT
) -> list[str]:
    """Save `parent-registry`, `sandbox-site-N` and the sites' spec `sandbox-spec` in the
    current Prefect API; returns the parent's and the sites' block document names in that
    order (the spec is saved beside them). Blocks are all built (validated) before the first
    save, so bad sandbox info writes nothing."""
    _refuse_foreign_parent(PARENT_BLOCK)
    blocks: list[tuple[str, Any]] = [(PARENT_BLOCK, parent_block(info))]
    blocks += [
        (site_block_name(i), site_block(s, transport)) for i, s in enumerate(info["sites"], 1)
    ]
    spec = spec_block()
    for name, block in blocks:
        block.save(name, overwrite=overwrite)
    spec.save(SPEC_BLOCK, overwrite=overwrite)
    return [name for name, _ in blocks]


def _refuse_foreign_parent(name: str) -> None:
    """A saved parent whose ARM endpoint is not on loopback is a real registry's: refused,
    before any save, rather than re-pointed at the sandbox."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            doc = client.read_block_document_by_name(name, "parent-registry", include_secrets=False)
    except ObjectNotFound:
        return
    host = urlparse(str(doc.data.get("arm_endpoint") or "")).hostname or ""
    try:
        if host == "localhost" or ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise InputError(
        f"block {name!r} already names a parent registry at {host or 'Azure'}; the sandbox "
        "does not overwrite it.",
        resource=f"parent-registry/{name}",
        fix="use a Prefect server without it (unset PREFECT_API_URL for the demo's own), "
        "or rename that block and deploy with --parent-block.",
    )
