"""Trust on first use, made durable: a host key accepted once is pinned in the site block.

``open_site`` accepts an unknown host key only when the block has ``trust_on_first_use`` and no
pinned key, and reports it as ``conn.recorded_host_key`` (a known_hosts line: public data).
The flow then saves the block with that line in ``known_hosts`` and ``trust_on_first_use`` off,
so every later connection verifies against it and a changed key is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import TYPE_CHECKING

from model.errors import PermanentError

if TYPE_CHECKING:
    from blocks.edge_site import EdgeSite
    from flows.inputs import SiteInputs
    from flows.report import RunReport


def fingerprint(known_hosts_line: str) -> tuple[str, str]:
    """(key type, ``SHA256:<base64>``) of a known_hosts line, as ``ssh-keygen -l`` prints it."""
    parts = known_hosts_line.split()
    if len(parts) < 3:
        raise ValueError("not a known_hosts line")
    try:
        blob = base64.b64decode(parts[2], validate=True)
    except binascii.Error:
        raise ValueError("not a known_hosts line (key is not base64)") from None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return parts[1], f"SHA256:{digest}"


def pinned_copy(site: EdgeSite, line: str) -> EdgeSite:
    """The block with ``line`` pinned and trust on first use off (pure; the caller saves)."""
    known = list(site.known_hosts)
    if line not in known:
        known.append(line)
    return site.model_copy(update={"known_hosts": known, "trust_on_first_use": False})


def pin_host_key(block_name: str, line: str) -> str:
    """Save block ``block_name`` with the key accepted on first use pinned; returns the message
    to log (type and fingerprint of the public key only)."""
    from blocks.edge_site import EdgeSite

    key_type, fp = fingerprint(line)
    # Re-read the stored block so that only these two fields change, whatever the run did to
    # its in-memory copy.
    try:
        stored = EdgeSite.load(block_name)
    except ValueError:
        raise PermanentError(
            f"cannot re-read block {block_name!r} to pin the host key {key_type} {fp}",
            resource=f"block {block_name}",
            fix="add the node's known_hosts line to the block and turn trust_on_first_use off",
        ) from None
    updated = pinned_copy(stored, line)  # type: ignore[arg-type]
    updated.save(block_name, overwrite=True)
    return (
        f"pinned host key {key_type} {fp} for {updated.ssh_host}:{updated.ssh_port} "
        f"in block {block_name}"
    )


def pin_site_host_key(inputs: SiteInputs, line: str, report: RunReport) -> None:
    """Pin the key a trust-on-first-use connect accepted; log and report it (public key only)."""
    from prefect import get_run_logger

    message = pin_host_key(inputs.site_block, line)
    get_run_logger().info("%s", message)
    report.note("host-key", f"block {inputs.site_block}", message, changed=True, writes=1)
