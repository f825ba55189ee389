"""Trust on first use, made durable: a host key accepted once is pinned in the site block.

``open_site`` accepts an unknown host key only when the block has ``trust_on_first_use`` and no
pinned key, and reports it as ``conn.recorded_host_key`` (a known_hosts line: public data).
The flow then saves the block with that line in ``known_hosts`` and ``trust_on_first_use`` off,
so every later connection verifies against it and a changed key is refused.

A cluster's nodes are pinned the same way: each node's line (``open_nodes`` records one per
node it trusted on first use) goes into the block's ``known_hosts``, all of them in one save.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

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


def pinned_copy(site: EdgeSite, line: str | Sequence[str]) -> EdgeSite:
    """The block with ``line`` (one known_hosts line or several) pinned and trust on first use
    off (pure; the caller saves)."""
    known = list(site.known_hosts)
    for each in [line] if isinstance(line, str) else line:
        if each not in known:
            known.append(each)
    return site.model_copy(update={"known_hosts": known, "trust_on_first_use": False})


def _host(line: str) -> str:
    """The host a known_hosts line names, as ``host:port`` (a hashed name stays hashed)."""
    name = line.split()[0].split(",")[0]
    if name.startswith("[") and "]:" in name:
        host, _, port = name[1:].partition("]:")
        return f"{host}:{port}"
    return name if name.startswith("|") else f"{name}:22"


def pin_host_keys_in_block(block_name: str, lines: Sequence[str]) -> list[str]:
    """Save block ``block_name`` once with every line accepted on first use pinned; returns a
    message per line to log (host, type and fingerprint of the public key only)."""
    from blocks.edge_site import EdgeSite

    prints = [fingerprint(line) for line in lines]  # refuses a malformed line before saving
    # Re-read the stored block so that only these two fields change, whatever the run did to
    # its in-memory copy.
    try:
        stored = EdgeSite.load(block_name)
    except ValueError:
        keys = ", ".join(f"{t} {fp}" for t, fp in prints)
        raise PermanentError(
            f"cannot re-read block {block_name!r} to pin the host keys {keys}",
            resource=f"block {block_name}",
            fix="add the nodes' known_hosts lines to the block and turn trust_on_first_use off",
        ) from None
    updated = pinned_copy(stored, lines)  # type: ignore[arg-type]
    updated.save(block_name, overwrite=True)
    return [
        f"pinned host key {key_type} {fp} for {_host(line)} in block {block_name}"
        for line, (key_type, fp) in zip(lines, prints, strict=True)
    ]


def pin_host_key(block_name: str, line: str) -> str:
    """Save block ``block_name`` with the key accepted on first use pinned; returns the message
    to log (type and fingerprint of the public key only)."""
    return pin_host_keys_in_block(block_name, [line])[0]


def pin_site_host_key(inputs: SiteInputs, line: str, report: RunReport) -> None:
    """Pin the key a trust-on-first-use connect accepted; log and report it (public key only)."""

    pin_host_keys(inputs, [line], report)


def pin_host_keys(inputs: SiteInputs, lines: Sequence[str], report: RunReport) -> None:
    """Pin every line recorded on first use (the site's and its nodes'), in one block save;
    log and report each (public keys only). Nothing to pin: no save."""
    from prefect import get_run_logger

    unique = list(dict.fromkeys(lines))
    if not unique:
        return
    messages = pin_host_keys_in_block(inputs.site_block, unique)
    logger = get_run_logger()
    for i, message in enumerate(messages):
        logger.info("%s", message)
        # One save for all: the row of the first line carries the write.
        report.note(
            "host-key", f"block {inputs.site_block}", message, changed=True, writes=int(i == 0)
        )


def recorded_keys(conn_f: Any, nodes_f: Any) -> list[str]:
    """Host-key lines accepted on first use by a provision run (the futures of its site
    connection and of its node pre-flight)."""
    keys: list[str] = []
    if conn_f.state.is_completed() and conn_f.result().recorded_host_key:
        keys.append(conn_f.result().recorded_host_key)
    if nodes_f.state.is_completed():
        keys += [k for k in nodes_f.result().recorded_host_keys if k not in keys]
    return keys


def pin_or_plan(inputs: SiteInputs, lines: list[str], report: RunReport, dry: bool) -> None:
    """Pin the accepted keys; a dry run only plans the pin, one row per key."""
    if not dry:
        pin_host_keys(inputs, lines, report)
        return
    for line in lines:
        key_type, fp = fingerprint(line)
        report.note(
            "host-key",
            f"block {inputs.site_block}",
            f"host key {key_type} {fp} of {line.split()[0]} accepted on first use; "
            f"the real run pins it in block {inputs.site_block} (not saved: dry run)",
            action="write",
            planned=True,
        )
