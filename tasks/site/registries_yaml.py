"""Pure: merge the connected registry's mirror into a node's ``registries.yaml``.

K3s reads this file with Go's yaml.v2 into ``{mirrors: map[string]Mirror, configs:
map[string]RegistryConfig}``. We parse it with the same meaning (anchors and ``<<`` merge keys
expanded, map keys taken as their literal text, null entries kept as null), change only the
entries for our host, and render the result deterministically, so that merging into our own
output reproduces it byte for byte. A file K3s would reject is refused, never rewritten.

Node auth model: the file is a consumer of a client-token password slot, like a pull secret.
Which token, slot and creation time ``configs.<host>.auth`` holds (never the value) is recorded
in a header comment written in the same file write as the credential, so the record can never
drift from it::

    # acr-edge: auth for "10.43.0.10:80" is token site1-client password2 created 2026-...

yaml.v2 ignores comments, so K3s never sees it. :func:`node_credential` parses it back and
ignores a header that is not exactly what acr-edge writes or does not match the file's
``configs.<host>.auth.username`` (a hand-edited header is treated as no record).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import SecretStr

from model.errors import PermanentError
from model.site import NodeAuth

_FIX = "repair registries.yaml on the node by hand (K3s would fail to start with it), then re-run"


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
    """``content`` is a SecretStr: the file may hold registry passwords."""

    changed: bool
    content: SecretStr
    reason: str


class _GoYamlLoader(yaml.SafeLoader):
    """SafeLoader with yaml.v2's meaning for mapping keys: literal text, no duplicates."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                None, None, f"expected a mapping, found {node.id}", node.start_mark
            )
        self.flatten_mapping(node)  # expands `<<: *anchor` (yaml.v2 supports merge keys too)
        mapping: dict[Any, Any] = {}
        explicit: set[str] = set()
        for index, (key_node, value_node) in enumerate(node.value):
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key is not a plain value", key_node.start_mark
                )
            key = key_node.value  # "10.0.0.1:80" stays text whatever resolver would say
            # flatten_mapping puts merged pairs first; explicit keys after them override.
            if key in explicit:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            if index >= getattr(node, "merged_count", 0):
                explicit.add(key)
            mapping[key] = self.construct_object(value_node, deep=True)
        return mapping


def _is_merge(key_node: yaml.Node) -> bool:
    return key_node.tag == "tag:yaml.org,2002:merge"


def _flatten(self: _GoYamlLoader, node: yaml.MappingNode) -> None:
    explicit = sum(1 for k, _ in node.value if not _is_merge(k))
    yaml.SafeLoader.flatten_mapping(self, node)
    node.merged_count = len(node.value) - explicit  # type: ignore[attr-defined]


_GoYamlLoader.flatten_mapping = _flatten  # type: ignore[method-assign,assignment]


class _Dumper(yaml.SafeDumper):
    """Block style; strings with ':' or '*' double-quoted, as K3s's docs write host keys."""

    def ignore_aliases(self, data: Any) -> bool:
        return True  # expand shared structures; anchors in our output would only confuse


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if (":" in value or value == "*" or value == "") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def parse(text: str, *, path: str = "registries.yaml") -> dict[str, Any]:
    """Parse and validate as K3s would; returns ``{}`` for an empty file."""
    try:
        documents = list(yaml.load_all(text, Loader=_GoYamlLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        # Only the problem, never the snippet: the file may hold passwords.
        raise PermanentError(
            f"{path} does not parse as YAML ({where}{exc.problem or exc.context})",
            resource=path,
            fix=_FIX,
        ) from None
    except yaml.YAMLError as exc:
        raise PermanentError(
            f"{path} does not parse as YAML ({type(exc).__name__})", resource=path, fix=_FIX
        ) from None
    documents = [d for d in documents if d is not None]
    if len(documents) > 1:
        raise PermanentError(f"{path} holds several YAML documents", resource=path, fix=_FIX)
    data = documents[0] if documents else {}
    validate(data, path=path)
    return data  # type: ignore[no-any-return]


def _reject(path: str, what: str) -> PermanentError:
    return PermanentError(f"{path}: {what}; K3s would reject this file", resource=path, fix=_FIX)


def validate(data: Any, *, path: str = "registries.yaml") -> None:
    """Refuse shapes that yaml.v2 cannot unmarshal into K3s's Registry struct."""
    if not isinstance(data, dict):
        raise _reject(path, "the top level is not a mapping")
    if _has_surrogate(data):
        # JSON writers escape non-BMP characters as surrogate pairs; yaml.v2 refuses those.
        raise _reject(path, "a \\u escape encodes a UTF-16 surrogate (write the character itself)")
    mirrors = data.get("mirrors")
    if mirrors is not None:
        if not isinstance(mirrors, dict):
            raise _reject(path, "'mirrors' is not a mapping")
        for host, mirror in mirrors.items():
            if mirror is None:
                continue
            if not isinstance(mirror, dict):
                raise _reject(path, f"mirrors.{host} is not a mapping")
            endpoint = mirror.get("endpoint")
            if endpoint is not None:
                if not isinstance(endpoint, list):
                    raise _reject(path, f"mirrors.{host}.endpoint is not a list")
                if any(isinstance(e, dict | list) for e in endpoint):
                    raise _reject(path, f"mirrors.{host}.endpoint holds a non-string item")
            rewrite = mirror.get("rewrite")
            if rewrite is not None and not isinstance(rewrite, dict):
                raise _reject(path, f"mirrors.{host}.rewrite is not a mapping")
    configs = data.get("configs")
    if configs is not None:
        if not isinstance(configs, dict):
            raise _reject(path, "'configs' is not a mapping")
        for host, config in configs.items():
            if config is None:
                continue
            if not isinstance(config, dict):
                raise _reject(path, f"configs.{host} is not a mapping")
            for section in ("auth", "tls"):
                value = config.get(section)
                if value is not None and not isinstance(value, dict):
                    raise _reject(path, f"configs.{host}.{section} is not a mapping")


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def render(data: dict[str, Any]) -> str:
    if not data:
        return "{}\n"
    return yaml.dump(  # type: ignore[no-any-return]
        data,
        Dumper=_Dumper,
        default_flow_style=False,
        sort_keys=False,
        allow_unicode=True,
        width=4096,
    )


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


def _auth_username(data: dict[str, Any], host: str) -> str | None:
    configs = data.get("configs")
    config = configs.get(host) if isinstance(configs, dict) else None
    auth = config.get("auth") if isinstance(config, dict) else None
    if not isinstance(auth, dict):
        return None
    username = auth.get("username")
    return username if isinstance(username, str) else None


def _trusted_records(text: str | None, data: dict[str, Any]) -> dict[str, NodeCredential]:
    """Header records that describe an auth entry the file really has (same username)."""
    return {
        host: record
        for host, record in _header_records(text).items()
        if _auth_username(data, host) == record.token
    }


def node_credential(
    text: str | None, host: str, *, path: str = "registries.yaml"
) -> NodeCredential | None:
    """Which token password ``configs.<host>.auth`` holds, from the acr-edge header; None when
    the file, the auth entry or a matching exact header is missing (then nothing is known about
    the slot and callers treat the node as holding no recorded credential)."""
    if text is None:
        return None
    data = parse(text, path=path)
    return _trusted_records(text, data).get(host)


def mirror_endpoint(host: str) -> str:
    return f"http://{host}"


def merge(
    current: str | None, host: str, auth: NodeAuth | None = None, *, path: str = "registries.yaml"
) -> MergeResult:
    """Desired file content with the http mirror for ``host`` (``"<ip>:<port>"``).

    ``current`` is None when the file does not exist. With ``auth`` (node model) the client
    credentials go to ``configs.<host>.auth``; without it (pull-secret model) a stale
    ``configs.<host>.auth`` that acr-edge may have written earlier is removed.
    """
    if ":" not in host and "." not in host:
        raise PermanentError(
            f"mirror host {host!r} needs a '.' or ':' for K3s to treat it as a registry",
            resource=path,
        )
    data: dict[str, Any] = {} if current is None else parse(current, path=path)
    merged = _apply(data, host, auth)
    records = _trusted_records(current, data)
    wanted = {h: r for h, r in records.items() if h != host and _auth_username(merged, h)}
    if auth is not None and auth.slot:
        wanted[host] = NodeCredential(host, auth.username, auth.slot, auth.created)
    header = "".join(header_line(wanted[h]) + "\n" for h in sorted(wanted))
    after = header + render(merged)
    endpoint = mirror_endpoint(host)
    header_same = records.get(host) == wanted.get(host)
    if current is not None and merged == data and header_same:
        held = f" (node credential: {auth.username} {auth.slot})" if host in wanted and auth else ""
        return MergeResult(
            changed=False,
            content=SecretStr(after),
            reason=f"{path} already mirrors {host} to {endpoint}{held}",
        )
    parts: list[str] = []
    if current is None:
        parts.append(f"creates {path} with the mirror {host} -> {endpoint}")
    elif _mirrors(data).get(host) != _mirrors(merged).get(host):
        what = "fixes" if host in _mirrors(data) else "adds"
        parts.append(f"{what} the mirror {host} -> {endpoint}")
    if current is not None and _config_of(data, host) != _config_of(merged, host):
        parts.append(
            f"sets the node credential for {host} to {auth.username} {auth.slot}".rstrip()
            if auth is not None
            else f"removes the node credential for {host} (pull-secret model)"
        )
    if not header_same:
        parts.append(
            f"records that {wanted[host].token} {wanted[host].slot} is the node credential"
            if host in wanted
            else "drops a header that no longer describes the node credential"
        )
    return MergeResult(changed=True, content=SecretStr(after), reason="; ".join(parts))


def _config_of(data: dict[str, Any], host: str) -> Any:
    configs = data.get("configs")
    return configs.get(host) if isinstance(configs, dict) else None


def _mirrors(data: dict[str, Any]) -> dict[str, Any]:
    mirrors = data.get("mirrors")
    return mirrors if isinstance(mirrors, dict) else {}


def _apply(data: dict[str, Any], host: str, auth: NodeAuth | None) -> dict[str, Any]:
    merged = _deep_copy(data)
    mirrors = merged.get("mirrors")
    if not isinstance(mirrors, dict):
        mirrors = {}
        merged["mirrors"] = mirrors
    entry = mirrors.get(host)
    entry = dict(entry) if isinstance(entry, dict) else {}
    entry["endpoint"] = [mirror_endpoint(host)]
    mirrors[host] = entry

    configs = merged.get("configs")
    if auth is not None:
        if not isinstance(configs, dict):
            configs = {}
            merged["configs"] = configs
        config = configs.get(host)
        config = dict(config) if isinstance(config, dict) else {}
        config["auth"] = {"username": auth.username, "password": auth.password.get_secret_value()}
        configs[host] = config
    elif isinstance(configs, dict) and isinstance(configs.get(host), dict):
        config = dict(configs[host])
        if "auth" in config:
            del config["auth"]
            if config:
                configs[host] = config
            else:
                del configs[host]
    return merged


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value
