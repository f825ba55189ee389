"""Pure: merge the connected registry's mirror into a node's ``registries.yaml``.

The file is read as K3s reads it (:mod:`tasks.site.registries_decode`: yaml.v2 into wharfie's
types; what K3s would refuse is refused, never rewritten) and edited round-trip
(:mod:`tasks.site.registries_edit`): only ``mirrors.<host>`` and, in the node-credential model,
``configs.<host>.auth`` change; every comment, anchor, quote and layout choice of the operator
stays. A file that already means the desired state is returned byte for byte, so merging into
our own output changes nothing. After an edit the result is decoded again and refused if any
other entry changed meaning (an anchor or merge key could otherwise carry the change along).

Node auth model: the file is a consumer of a client-token password slot, like a pull secret.
Which token, slot and creation time ``configs.<host>.auth`` holds (never the value) is recorded
in a header comment written in the same file write as the credential::

    # acr-edge: auth for "10.43.0.10:80" is token site1-client password2 created 2026-...

yaml.v2 ignores comments, so K3s never sees it. :func:`node_credential` parses it back and
ignores a header that is not exactly what acr-edge writes or does not match the file's
``configs.<host>.auth.username``. That record is also the only proof acr-edge wrote an
``auth``: in the pull-secret model an auth without it belongs to someone else and is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from model.errors import PermanentError
from model.site import MirrorRoute, NodeAuth, as_route
from tasks.site import hosts_toml, registries_edit
from tasks.site.registries_decode import FIX, Auth, Registries, Tls, decode


@dataclass(frozen=True)
class NodeCredential:
    """What the header records about ``configs.<host>.auth`` (no value)."""

    host: str
    token: str
    slot: str
    created: str


HEADER_PREFIX = "# acr-edge: auth for "
_HEADER = re.compile(
    r'^# acr-edge: auth for "(?P<host>[^"\s]+)" is token (?P<token>[A-Za-z0-9-]{1,50}) '
    r"(?P<slot>password[12]) created (?P<created>[0-9T:.+-]{10,40})$"
)


@dataclass(frozen=True)
class MergeResult:
    """``content`` is a SecretStr: the file may hold registry passwords. ``auth_changed``: the
    node credential K3s would load changed (K3s reads it only at start: restart).
    ``mirror_changed``: our mirror entry changed (containerd reads ``hosts_toml`` at every
    pull). ``hosts_toml``: what K3s renders for ``host`` from the merged file (no secrets)."""

    changed: bool
    content: SecretStr
    reason: str
    mirror_changed: bool = False
    auth_changed: bool = False
    hosts_toml: str | None = None


def parse(text: str, *, path: str = "registries.yaml") -> dict[str, Any]:
    """K3s's reading of the file as plain data (``{}`` for an empty file); refuses what K3s
    (or acr-edge, saying so) refuses."""
    return to_data(decode(text, path))


def to_data(registries: Registries) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if registries.mirrors is not None:
        out["mirrors"] = {
            host: {
                **({"endpoint": list(m.endpoints)} if m.endpoints is not None else {}),
                **({"rewrite": dict(m.rewrites)} if m.rewrites is not None else {}),
            }
            for host, m in registries.mirrors.items()
        }
    if registries.configs is not None:
        out["configs"] = {
            host: {
                **({"auth": vars(c.auth)} if c.auth is not None else {}),
                **({"tls": vars(c.tls)} if c.tls is not None else {}),
            }
            for host, c in registries.configs.items()
        }
    if registries.auths is not None:
        out["auths"] = {host: vars(a) for host, a in registries.auths.items()}
    return out


def header_line(record: NodeCredential) -> str:
    return (
        f'{HEADER_PREFIX}"{record.host}" is token {record.token} {record.slot} '
        f"created {record.created}"
    )


def _parse_header_line(line: str) -> NodeCredential | None:
    match = _HEADER.match(line.rstrip("\r\n"))
    if match is None:
        return None
    record = NodeCredential(match["host"], match["token"], match["slot"], match["created"])
    # Only the exact text acr-edge writes counts: anything else was edited by hand.
    return record if header_line(record) == line.rstrip("\r\n") else None


def _header_records(text: str | None) -> dict[str, NodeCredential]:
    """acr-edge header lines at the top of the file (leading comment block), by host."""
    out: dict[str, NodeCredential] = {}
    for line in (text or "").splitlines():
        if not line.startswith("#"):
            break
        record = _parse_header_line(line)
        if record is not None and record.host not in out:
            out[record.host] = record
    return out


def _username(registries: Registries, host: str) -> str | None:
    config = registries.config(host)
    return config.auth.username if config and config.auth else None


def _trusted_records(text: str | None, registries: Registries) -> dict[str, NodeCredential]:
    """Header records that describe an auth entry the file really has (same username)."""
    return {
        host: record
        for host, record in _header_records(text).items()
        if _username(registries, host) == record.token
    }


def node_credential(
    text: str | None, host: str, *, path: str = "registries.yaml"
) -> NodeCredential | None:
    """Which token password ``configs.<host>.auth`` holds, from the acr-edge header; None when
    the file, the auth entry or a matching exact header is missing."""
    if text is None:
        return None
    return _trusted_records(text, decode(text, path)).get(host)


def mirror_endpoint(host: str) -> str:
    return f"http://{host}"


def _without_headers(text: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith(HEADER_PREFIX))


def merge(
    current: str | None,
    route: MirrorRoute | str,
    auth: NodeAuth | None = None,
    *,
    path: str = "registries.yaml",
) -> MergeResult:
    """Desired file content with the mirror ``route`` (a bare ``"<ip>:<port>"`` is the plain
    http mirror of the first version).

    ``current`` is None when the file does not exist. With ``auth`` (node model) the client
    credentials go to ``configs.<host>.auth``; without it (pull-secret model) an auth entry
    acr-edge wrote (its header record says so) is removed, any other is kept. Over https,
    ``configs.<ca_host>.tls`` becomes exactly ``{ca_file: <the site CA on the node>}``.
    """
    route = as_route(route)
    host = route.host
    if ":" not in host and "." not in host:
        raise PermanentError(
            f"mirror host {host!r} needs a '.' or ':' for K3s to treat it as a registry",
            resource=path,
        )
    if auth is not None and route.ca_host not in (None, host):
        raise PermanentError(
            f"the node auth model cannot move {host} to {route.endpoints[0]}: K3s would "
            f"need the credential under configs.{route.ca_host} as well",
            resource=path,
            fix="migrate with auth_model 'pull-secret', or tear the site down and provision "
            "it over https",
        )
    text = current or ""
    before = decode(text, path)
    endpoints = route.endpoints
    shown_endpoints = ", ".join(endpoints)
    records = _trusted_records(text, before)
    mirror = before.mirror(host)
    mirror_ok = mirror is not None and mirror.endpoints == endpoints
    wanted_tls = Tls(ca_file=route.ca_file) if route.ca_host and route.ca_file else None
    tls_ok = wanted_tls is None or (before.config(route.ca_host or "") or _NO_CONFIG).tls == (
        wanted_tls
    )
    held = (before.config(host) or _NO_CONFIG).auth
    if auth is not None:
        wanted_auth: Auth | None = Auth(auth.username, auth.password.get_secret_value())
        action = registries_edit.KEEP if held == wanted_auth else registries_edit.SET
    else:
        wanted_auth = None if host in records else held
        action = registries_edit.DROP if host in records else registries_edit.KEEP
    wanted = {h: r for h, r in records.items() if h != host}
    if auth is not None and auth.slot:
        wanted[host] = NodeCredential(host, auth.username, auth.slot, auth.created)
    header_same = records.get(host) == wanted.get(host)
    if (
        current is not None
        and mirror_ok
        and tls_ok
        and action == registries_edit.KEEP
        and header_same
    ):
        note = f" (node credential: {auth.username} {auth.slot})" if host in wanted and auth else ""
        trust = f", trusting {route.ca_file}" if wanted_tls else ""
        return MergeResult(
            changed=False,
            content=SecretStr(current),
            reason=f"{path} already mirrors {host} to {shown_endpoints}{trust}{note}",
            hosts_toml=hosts_toml.render(before, host),
        )
    body = registries_edit.edit(
        _without_headers(text),
        host,
        None if mirror_ok else endpoints,
        action,
        auth.username if auth else "",
        auth.password.get_secret_value() if auth else "",
        path=path,
        tls_host=None if tls_ok else route.ca_host,
        ca_file=None if tls_ok else route.ca_file,
    )
    after_text = "".join(header_line(wanted[h]) + "\n" for h in sorted(wanted)) + body
    after = decode(after_text, path)
    _check_only_ours(before, after, route, wanted_auth, wanted_tls, path)
    del body
    parts: list[str] = []
    if current is None:
        parts.append(f"creates {path} with the mirror {host} -> {shown_endpoints}")
    elif not mirror_ok:
        verb = "fixes" if mirror is not None else "adds"
        parts.append(f"{verb} the mirror {host} -> {shown_endpoints}")
    if not tls_ok:
        parts.append(f"trusts the site CA {route.ca_file} for {route.ca_host}")
    if current is not None and action != registries_edit.KEEP:
        parts.append(
            f"sets the node credential for {host} to {auth.username} {auth.slot}".rstrip()
            if auth is not None
            else f"removes the node credential acr-edge wrote for {host} (pull-secret model)"
        )
    if not header_same:
        parts.append(
            f"records that {wanted[host].token} {wanted[host].slot} is the node credential"
            if host in wanted
            else "drops a header that no longer describes the node credential"
        )
    return MergeResult(
        changed=True,
        content=SecretStr(after_text),
        reason="; ".join(parts),
        mirror_changed=before.mirror(host) != after.mirror(host)
        or (before.config(route.ca_host or "") != after.config(route.ca_host or "")),
        auth_changed=held != (after.config(host) or _NO_CONFIG).auth,
        hosts_toml=hosts_toml.render(after, host),
    )


class _NoConfig:
    auth: Auth | None = None
    tls: Tls | None = None


_NO_CONFIG = _NoConfig()


def _check_only_ours(
    before: Registries,
    after: Registries,
    route: MirrorRoute,
    auth: Auth | None,
    tls: Tls | None,
    path: str,
) -> None:
    """The edit changed the meaning of acr-edge's entries only (else refuse, write nothing)."""
    host = route.host
    ours = {host} | ({route.ca_host} if route.ca_host and tls else set())
    old_mirror = before.mirror(host)
    new_mirror = after.mirror(host)
    mirrors_ok = (
        new_mirror is not None
        and new_mirror.endpoints == route.endpoints
        and new_mirror.rewrites == (old_mirror.rewrites if old_mirror else None)
        and _others(before.mirrors, {host}) == _others(after.mirrors, {host})
    )
    old_config, new_config = before.config(host), after.config(host)
    configs_ok = (
        _others(before.configs, ours) == _others(after.configs, ours)
        and (new_config.auth if new_config else None) == auth
        and before.auths == after.auths
    )
    if tls is not None and route.ca_host:
        ca_old, ca_new = before.config(route.ca_host), after.config(route.ca_host)
        configs_ok = configs_ok and (ca_new.tls if ca_new else None) == tls
        if route.ca_host != host:
            configs_ok = configs_ok and (ca_new.auth if ca_new else None) == (
                ca_old.auth if ca_old else None
            )
    else:
        configs_ok = configs_ok and (new_config.tls if new_config else None) == (
            old_config.tls if old_config else None
        )
    if not (mirrors_ok and configs_ok):
        raise PermanentError(
            f"{path}: acr-edge cannot set its mirror for {host} without changing what other "
            "entries mean to K3s (they share YAML anchors or merge keys with it)",
            resource=path,
            fix=f"give mirrors.{host} and configs.{host} their own mappings; " + FIX,
        )


def _others(values: Any, hosts: str | set[str]) -> dict[str, Any]:
    skip = {hosts} if isinstance(hosts, str) else hosts
    return {k: v for k, v in (values or {}).items() if k not in skip}
