"""Pure: take acr-edge's entries back out of a node's ``registries.yaml`` (and its hosts.toml).

acr-edge's entries for the connected registry's ``host`` are the ones provision writes:

- ``mirrors.<host>`` whose endpoints are exactly ``[http://<host>]`` (an operator's mirror under
  that name with other endpoints is theirs: left);
- ``configs.<host>.auth`` only when the acr-edge header records it (node auth model), and that
  header line.

The edit is the same round-trip edit provision uses (:mod:`tasks.site.registries_edit`): every
comment, anchor, quote and layout choice of the operator stays, so a file whose only change was
ours comes back byte for byte. A ``mirrors``/``configs`` map left empty by the removal goes too;
a file left with nothing at all (acr-edge created it) is removed. A backup beside the file that
is byte-identical to the result is named (the operator can see it is their original). The result
is decoded again and refused if any other entry changed meaning.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import SecretStr
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from model.errors import PermanentError
from tasks.site import hosts_toml, registries_edit
from tasks.site.registries_decode import FIX, decode
from tasks.site.registries_yaml import (
    HEADER_PREFIX,
    _others,
    _trusted_records,
    header_line,
    mirror_endpoint,
)


@dataclass(frozen=True)
class TeardownEdit:
    """``content`` None with ``changed``: remove the file. ``backup``: a backup path whose bytes
    equal the result. ``content`` is a SecretStr: the file may hold other registries' passwords.
    """

    changed: bool
    content: SecretStr | None
    reason: str
    backup: str | None = None


def _unchanged(current: str | None, reason: str) -> TeardownEdit:
    return TeardownEdit(False, None if current is None else SecretStr(current), reason)


def _drop_mirror(text: str, host: str, path: str) -> str:
    prefix, body = registries_edit._split_document_start(text)
    yaml = registries_edit._yaml(body)
    try:
        data = yaml.load(body)
    except YAMLError:
        raise PermanentError(
            f"{path}: acr-edge's round-trip editor cannot read this file (K3s can); "
            "it is left as it is",
            resource=path,
            fix="remove mirrors." + host + " by hand, then re-run",
        ) from None
    if not isinstance(data, CommentedMap):
        return text
    mirrors = data.get("mirrors")
    if isinstance(mirrors, CommentedMap) and registries_edit._own(mirrors, host):
        del mirrors[host]
    for key in ("mirrors", "configs"):
        value = data.get(key)
        if (
            registries_edit._own(data, key)
            and isinstance(value, CommentedMap)
            and not value
            and not getattr(value, "merge", None)
            and not (getattr(value, "anchor", None) and value.anchor.value)
        ):
            del data[key]
    if not data:
        comments = [ln for ln in body.splitlines() if ln.lstrip().startswith("#")]
        return prefix + "".join(c + "\n" for c in comments)
    out = io.StringIO()
    yaml.dump(data, out)
    return prefix + out.getvalue()


def remove_ours(
    current: str | None,
    host: str,
    *,
    path: str = "registries.yaml",
    backups: Mapping[str, str] | None = None,
) -> TeardownEdit:
    """``current`` without acr-edge's entries for ``host`` (None: the file does not exist).

    ``backups``: backup path -> content of the backups beside the file (for the note only).
    """
    if current is None:
        return _unchanged(None, f"{path} does not exist (nothing of acr-edge's to remove)")
    before = decode(current, path)
    endpoint = mirror_endpoint(host)
    mirror = before.mirror(host)
    mirror_ours = mirror is not None and mirror.endpoints == (endpoint,) and not mirror.rewrites
    records = _trusted_records(current, before)
    auth_ours = host in records
    stale_header = any(
        ln.startswith(f'{HEADER_PREFIX}"{host}"') for ln in current.splitlines() if not auth_ours
    )
    if not (mirror_ours or auth_ours or stale_header):
        why = (
            f"mirrors.{host} is not acr-edge's (endpoints {list(mirror.endpoints or [])}): left"
            if mirror is not None
            else f"no mirror or node credential of acr-edge's for {host}"
        )
        return _unchanged(current, f"{path}: {why}")
    lines = current.splitlines(keepends=True)
    own_headers = {header_line(r) for h, r in records.items() if h == host}
    kept_lines = [
        ln
        for ln in lines
        if not (
            ln.rstrip("\r\n") in own_headers
            or (stale_header and ln.startswith(f'{HEADER_PREFIX}"{host}"'))
        )
    ]
    text = "".join(kept_lines)
    if auth_ours:
        text = registries_edit.edit(text, host, None, registries_edit.DROP, "", "", path=path)
    if mirror_ours:
        text = _drop_mirror(text, host, path)
    after = decode(text, path)
    old_config, new_config = before.config(host), after.config(host)
    if not (
        _others(before.mirrors, host) == _others(after.mirrors, host)
        and _others(before.configs, host) == _others(after.configs, host)
        and before.auths == after.auths
        and (new_config.tls if new_config else None) == (old_config.tls if old_config else None)
        and (mirror_ours or after.mirror(host) == mirror)
        and (
            auth_ours
            or (new_config.auth if new_config else None)
            == (old_config.auth if old_config else None)
        )
    ):
        raise PermanentError(
            f"{path}: acr-edge cannot remove its entries for {host} without changing what "
            "other entries mean to K3s (they share YAML anchors or merge keys with them)",
            resource=path,
            fix=f"remove mirrors.{host} by hand; " + FIX,
        )
    parts = []
    if mirror_ours:
        parts.append(f"removes the mirror {host} -> {endpoint} acr-edge wrote")
    if auth_ours:
        parts.append(f"removes the node credential acr-edge wrote for {host}")
    elif stale_header:
        parts.append(f"drops acr-edge's header for {host}")
    if not text.strip():
        return TeardownEdit(
            True, None, f"{path}: " + "; ".join(parts) + "; nothing else left: removes the file"
        )
    # The operator's original bytes, when a backup beside the file means exactly the result (the
    # merge may have re-spaced a one-line JSON file, say): restored from it byte for byte.
    backup = next(
        (
            p
            for p, c in sorted((backups or {}).items())
            if c == text or (_decodes(c, path) and decode(c, path) == after)
        ),
        None,
    )
    if backup is not None:
        parts.append(
            f"the result is byte-identical to the backup {backup}"
            if (backups or {})[backup] == text
            else f"restores the backup {backup} byte for byte (it means exactly the result)"
        )
        text = (backups or {})[backup]
    return TeardownEdit(True, SecretStr(text), f"{path}: " + "; ".join(parts), backup=backup)


def _decodes(text: str, path: str) -> bool:
    if HEADER_PREFIX in text:
        return False  # a backup holding acr-edge's own entries is not the operator's original
    try:
        decode(text, path)
    except PermanentError:
        return False
    return True


def remove_hosts_toml(current: str | None, host: str, *, path: str) -> TeardownEdit:
    """The hosts.toml for ``host``: removed when K3s generated it (its header), else left."""
    if current is None:
        return _unchanged(None, f"{path} does not exist")
    if not current.startswith(hosts_toml.HEADER):
        return _unchanged(current, f"{path} was not generated by K3s (no header): left")
    return TeardownEdit(True, None, f"{path} was generated by K3s for {host}: removes it")
