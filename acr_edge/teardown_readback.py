"""What is left of a site after teardown, read back from ARM, every node and Helm: never from
what the teardown flow reported. The demo's ``--teardown`` report uses it.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from model import names, tls
from model.errors import PermanentError


def registry_host(site_block: str) -> str | None:
    """The connected registry's ``ip:port`` while its service exists (read before teardown:
    afterwards nothing names it)."""
    from blocks.edge_site import EdgeSite
    from tasks.site.connection import open_site
    from tasks.site.helm_release import registry_host as read_host

    site: Any = EdgeSite.load(site_block)
    with open_site(site) as conn:
        try:
            return read_host(conn)
        except PermanentError:
            return None


def arm_owned_left(parent_block: str, cr: str, client_token: str) -> int:
    """How many of acr-edge's ARM resources for ``cr`` still exist: the connected registry,
    the sync and client tokens and their scope maps."""
    from blocks.parent_registry import ParentRegistry
    from tasks.azure.connected_registry import read_connected_registry_raw
    from tasks.azure.scope_maps import read_scope_map
    from tasks.azure.tokens import read_token

    parent: Any = ParentRegistry.load(parent_block)
    ctx = parent.azure_context()
    try:
        found = [
            read_connected_registry_raw(ctx, cr),
            read_token(ctx, names.sync_token_name(cr)),
            read_token(ctx, client_token),
            read_scope_map(ctx, names.sync_scope_map_name(cr)),
            read_scope_map(ctx, client_token),
        ]
    finally:
        ctx.close()
    return sum(1 for r in found if r is not None)


def node_leftovers(text: str | None, host: str | None, ca_file: str) -> list[str]:
    """Pure: what of acr-edge's is still in one node's registries.yaml (empty: clean)."""
    from tasks.site.registries_decode import decode
    from tasks.site.registries_teardown import ours_endpoints
    from tasks.site.registries_yaml import HEADER_PREFIX

    if text is None:
        return []
    left = []
    if HEADER_PREFIX in text:
        left.append("an acr-edge auth header")
    reg = decode(text)
    for key, mirror in (reg.mirrors or {}).items():
        if mirror.endpoints in ours_endpoints(key) and (host is None or key == host):
            left.append(f"mirrors.{key}")
    for key, config in (reg.configs or {}).items():
        if config.tls is not None and config.tls.ca_file == ca_file:
            left.append(f"configs.{key}.tls")
    return left


def site_leftovers(site_block: str, host: str | None) -> tuple[bool, bool, list[str]]:
    """(nodes_clean, release_removed, what is left) read over SSH and helm."""
    from blocks.edge_site import EdgeSite
    from flows import node_rollout
    from tasks.site import mirror, registries_teardown
    from tasks.site.connection import open_site
    from tasks.site.helm_release import read_helm_release

    site: Any = EdgeSite.load(site_block)
    ca_file = tls.node_ca_path(site.registries_path, site.release_name)
    left: list[str] = []
    with ExitStack() as stack:
        conn = stack.enter_context(open_site(site))
        release_removed = read_helm_release(conn).status is None
        nodes = node_rollout.preflight(stack, conn, "all")
        for node in nodes.conns:
            raw = node.ssh.read_file(site.registries_path, sudo=site.sudo)
            text = raw.decode("utf-8", errors="replace") if raw is not None else None
            del raw
            where = node.resource
            left += [f"{where}: {x}" for x in node_leftovers(text, host, ca_file)]
            del text
            if node.ssh.read_file(ca_file, sudo=site.sudo) is not None:
                left.append(f"{where}: {ca_file}")
            if host is not None:
                for h in {host, registries_teardown.ca_host_of(host)}:
                    if mirror.read_hosts_toml(node, h) is not None:
                        left.append(f"{where}: {mirror.hosts_toml_path(node, h)}")
    return not left, release_removed, left


def read_back(site_block: str, parent_block: str, host: str | None) -> dict[str, Any]:
    """The demo report's ``teardown`` entry for one site."""
    from blocks.edge_site import EdgeSite

    site: Any = EdgeSite.load(site_block)
    cr = names.validate_cr_name(site.name)
    client = names.client_token_name(cr)
    clean, removed, left = site_leftovers(site_block, host)
    return {
        "arm_owned_left": arm_owned_left(parent_block, cr, client),
        "nodes_clean": clean,
        "release_removed": removed,
        "left": left,
    }
