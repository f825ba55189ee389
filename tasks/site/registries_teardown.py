"""Pure: take acr-edge's entries back out of a node's ``registries.yaml`` (and its hosts.toml).

acr-edge's entries for the connected registry's ``host`` are the ones provision writes:

- ``mirrors.<host>`` whose endpoints are exactly one of the routes acr-edge writes for the
  registry's IP: ``[http://<host>]`` (http), ``[https://<ip>:443]`` (https) or a migration
  bridge (``[https://<ip>:443, http://<ip>:80]`` or the reverse); an operator's mirror under
  that name with other endpoints is theirs: left;
- ``configs.<ip>:443.tls`` when its ``ca_file`` is acr-edge's node CA path (any other field of
  that entry, e.g. an auth, stays);
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

from model import tls
from model.errors import PermanentError
from tasks.site import hosts_toml, registries_edit
from tasks.site.registries_decode import FIX, Registries, decode
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


def ours_endpoints(host: str) -> set[tuple[str, ...]]:
    """Every endpoint list acr-edge writes under ``mirrors.<host>`` (see mirror_route)."""
    ip = host.rsplit(":", 1)[0]
    https, http = f"https://{ip}:{tls.HTTPS_PORT}", f"http://{ip}:{tls.HTTP_PORT}"
    return {(mirror_endpoint(host),), (https,), (https, http), (http, https)}


def ca_host_of(host: str) -> str:
    return f"{host.rsplit(':', 1)[0]}:{tls.HTTPS_PORT}"


def _drop_tls(configs: CommentedMap, tls_host: str, ca_file: str) -> None:
    """``configs.<tls_host>.tls`` without acr-edge's ``ca_file`` (the map goes when that was all
    it held; an entry left empty goes too)."""
    config = configs.get(tls_host)
    if not (registries_edit._own(configs, tls_host) and registries_edit._editable(config)):
        return
    value = config.get("tls")
    if not (registries_edit._own(config, "tls") and registries_edit._editable(value)):
        return
    if value.get("ca_file") != ca_file:
        return
    del value["ca_file"]
    if not value:
        del config["tls"]
    if not config and not getattr(config, "merge", None):
        del configs[tls_host]


def _drop(
    text: str, host: str, path: str, *, mirror: bool, tls_host: str | None, ca_file: str | None
) -> str:
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
    if mirror and isinstance(mirrors, CommentedMap) and registries_edit._own(mirrors, host):
        del mirrors[host]
    configs = data.get("configs")
    if tls_host and ca_file and isinstance(configs, CommentedMap):
        _drop_tls(configs, tls_host, ca_file)
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
    ca_file: str | None = None,
) -> TeardownEdit:
    """``current`` without acr-edge's entries for ``host`` (None: the file does not exist).

    ``backups``: backup path -> content of the backups beside the file (for the note only).
    ``ca_file``: the node path of acr-edge's site CA (``configs.<ip>:443.tls`` naming it goes).
    """
    if current is None:
        return _unchanged(None, f"{path} does not exist (nothing of acr-edge's to remove)")
    before = decode(current, path)
    ca_host = ca_host_of(host)
    mirror = before.mirror(host)
    mirror_ours = (
        mirror is not None and mirror.endpoints in ours_endpoints(host) and not mirror.rewrites
    )
    ca_config = before.config(ca_host)
    tls_ours = bool(
        ca_file and ca_config is not None and ca_config.tls and ca_config.tls.ca_file == ca_file
    )
    records = _trusted_records(current, before)
    auth_ours = host in records
    stale_header = any(
        ln.startswith(f'{HEADER_PREFIX}"{host}"') for ln in current.splitlines() if not auth_ours
    )
    if not (mirror_ours or auth_ours or stale_header or tls_ours):
        why = (
            f"mirrors.{host} is not acr-edge's (endpoints {list(mirror.endpoints or [])}): left"
            if mirror is not None
            else f"no mirror, CA trust or node credential of acr-edge's for {host}"
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
    if mirror_ours or tls_ours:
        text = _drop(
            text,
            host,
            path,
            mirror=mirror_ours,
            tls_host=ca_host if tls_ours else None,
            ca_file=ca_file,
        )
    after = decode(text, path)
    _check_only_ours(before, after, host, ca_host, mirror_ours, auth_ours, tls_ours, path)
    parts = []
    if mirror_ours and mirror is not None:
        parts.append(
            f"removes the mirror {host} -> {', '.join(mirror.endpoints or ())} acr-edge wrote"
        )
    if tls_ours:
        parts.append(f"removes configs.{ca_host}.tls trusting acr-edge's CA {ca_file}")
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


def _check_only_ours(
    before: Registries,
    after: Registries,
    host: str,
    ca_host: str,
    mirror_ours: bool,
    auth_ours: bool,
    tls_ours: bool,
    path: str,
) -> None:
    """Only acr-edge's entries changed meaning (else refuse: they share anchors or merges)."""
    ours = {host, ca_host}

    def part(reg: Registries, h: str, attr: str) -> object:
        config = reg.config(h)
        return getattr(config, attr) if config is not None else None

    same = (
        _others(before.mirrors, host) == _others(after.mirrors, host)
        and _others(before.configs, ours) == _others(after.configs, ours)
        and before.auths == after.auths
        and (mirror_ours or after.mirror(host) == before.mirror(host))
        and (auth_ours or part(after, host, "auth") == part(before, host, "auth"))
        and (ca_host == host or part(after, ca_host, "auth") == part(before, ca_host, "auth"))
        and (tls_ours or part(after, ca_host, "tls") == part(before, ca_host, "tls"))
        and (ca_host == host or part(after, host, "tls") == part(before, host, "tls"))
    )
    if not same:
        raise PermanentError(
            f"{path}: acr-edge cannot remove its entries for {host} without changing what "
            "other entries mean to K3s (they share YAML anchors or merge keys with them)",
            resource=path,
            fix=f"remove mirrors.{host} by hand; " + FIX,
        )


def _decodes(text: str, path: str) -> bool:
    if HEADER_PREFIX in text:
        return False  # a backup holding acr-edge's own entries is not the operator's original
    try:
        decode(text, path)
    except PermanentError:
        return False
    return True


def names_host(text: str, host: str) -> bool:
    """Whether registries.yaml still has a mirror or configs entry for ``host``."""
    reg = decode(text)
    return reg.mirror(host) is not None or reg.config(host) is not None


def remove_hosts_toml(current: str | None, host: str, *, path: str) -> TeardownEdit:
    """The hosts.toml for ``host``: removed when K3s generated it (its header), else left."""
    if current is None:
        return _unchanged(None, f"{path} does not exist")
    if not current.startswith(hosts_toml.HEADER):
        return _unchanged(current, f"{path} was not generated by K3s (no header): left")
    return TeardownEdit(True, None, f"{path} was generated by K3s for {host}: removes it")
