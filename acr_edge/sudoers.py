"""`acr-edge sudoers SITE_BLOCK`: print the sudoers recipe for one site's nodes.

The recipe is exactly what the SSH layer is allowed to run under sudo for this site
(:mod:`tasks.site.sudo_policy`): one line per command, no shell, no wildcards. Install it on
every node as ``/etc/sudoers.d/acr-edge`` (mode 0440, checked with ``visudo -cf``).
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Sequence

from model.errors import AcrEdgeError, InputError
from model.names import validate_block_name


def _binary(text: str) -> tuple[str, str]:
    program, sep, path = text.partition("=")
    if not sep or not path.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text!r}: use PROGRAM=/absolute/path")
    return program, path


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="acr-edge sudoers", description=__doc__)
    parser.add_argument("site_block", help="EdgeSite block name")
    parser.add_argument(
        "--service-ip",
        help="the connected registry service's cluster IP (default: the block's "
        "service_cluster_ip; an http site's is in `kubectl -n NS get svc`)",
    )
    parser.add_argument("--user", help="the SSH user (default: the block's ssh_user)")
    parser.add_argument(
        "--binary",
        type=_binary,
        action="append",
        default=[],
        metavar="PROGRAM=PATH",
        help="where a program lives on the nodes (`command -v helm`), e.g. helm=/usr/bin/helm",
    )
    args = parser.parse_args(list(argv))
    try:
        print(render(args.site_block, args.service_ip, args.user, dict(args.binary)), end="")
    except AcrEdgeError as exc:
        print(f"acr-edge sudoers: {exc}", file=sys.stderr)
        return 2
    return 0


def render(block: str, service_ip: str | None, user: str | None, binaries: dict[str, str]) -> str:
    from blocks.edge_site import EdgeSite
    from tasks.site import sudo_policy

    validate_block_name(block, "site block")
    try:
        site: EdgeSite = EdgeSite.load(block)  # type: ignore[assignment]
    except ValueError:
        raise InputError(
            f"no edge-site block named {block!r}",
            resource=block,
            fix="check the name with `prefect block ls`",
        ) from None
    ip = service_ip or site.service_cluster_ip
    if not ip:
        raise InputError(
            "the recipe names the mirror host, and this site has no service_cluster_ip",
            resource=block,
            fix="pass --service-ip (the service's cluster IP once provisioned)",
        )
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise InputError(f"--service-ip {ip!r} is not an IP address", resource=block) from None
    values = sudo_policy.values_for(site, ip, binaries=binaries)
    return sudo_policy.render_sudoers(user or site.ssh_user, values)
