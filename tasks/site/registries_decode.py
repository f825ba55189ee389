"""Pure: read registries.yaml exactly as K3s reads it, or refuse it with the file and line.

K3s (rancher/wharfie ``GetPrivateRegistries``) calls gopkg.in/yaml.v2 ``Unmarshal`` (not strict)
into ``Registry{mirrors, configs, auths}``. What follows from yaml.v2's decode.go/resolve.go,
and is done here on the composed graph (:mod:`tasks.site.registries_graph`): unknown keys are
ignored (their values never decoded); a duplicate key is last-wins; ``<<`` merges in place
(earlier entries of a merge list win); a repeated or merged struct field decodes *into* the
value already there (maps union, ``auth``/``tls`` field by field), while a map entry is
decoded fresh; plain ``null``/``~``/empty set the zero value (``Null``/``NULL`` too, but they
leave a pointer allocated: ``tls: NULL`` is an empty TLS config); any scalar goes into a
string field as its literal text; a bool takes only YAML 1.1 booleans (a quoted ``"true"`` is
a type error); a wrong container is a type error; any type error fails the whole file (K3s
does not start); more than 99% of >1000 decode steps coming from aliases is refused too.

acr-edge is stricter in a few places, each said so in its message (several documents,
duplicate keys, non-core tags, non-UTF-8, :data:`MAX_BYTES`, :data:`MAX_NODES`). Messages name
the file, the line and a key path (field names and host keys), never a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from tasks.site.registries_graph import (
    FIX,
    K3S,
    MAX_BYTES,
    MAX_NODES,
    Alias,
    check_size,
    compose,
    decode_bytes,
    is_merge,
    label,
    line_of,
    refusal,
)
from tasks.site.yaml11 import BINARY, BOOL, NULL, resolve

__all__ = [
    "FIX",
    "MAX_BYTES",
    "MAX_NODES",
    "Auth",
    "Mirror",
    "Registries",
    "RegistryConfig",
    "Tls",
    "check_size",
    "decode",
    "decode_bytes",
]


@dataclass(frozen=True)
class Auth:
    username: str = ""
    password: str = field(default="", repr=False)
    auth: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Tls:
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    insecure_skip_verify: bool = False


@dataclass(frozen=True)
class RegistryConfig:
    auth: Auth | None = None
    tls: Tls | None = None


@dataclass(frozen=True)
class Mirror:
    endpoints: tuple[str, ...] | None = None
    rewrites: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Registries:
    """wharfie's ``Registry`` after K3s's decode (Go nil maps/slices/pointers are None)."""

    mirrors: Mapping[str, Mirror] | None = None
    configs: Mapping[str, RegistryConfig] | None = None
    auths: Mapping[str, Auth] | None = None

    def mirror(self, host: str) -> Mirror | None:
        return (self.mirrors or {}).get(host)

    def config(self, host: str) -> RegistryConfig | None:
        return (self.configs or {}).get(host)


def decode(text: str, path: str = "registries.yaml") -> Registries:
    """The file as K3s's ``Registry``, or a PermanentError saying why K3s (or acr-edge) refuses."""
    root = compose(text, path)
    go = _Go(path)
    value = go.decode(root, _REGISTRY, _zero(_REGISTRY), "") if root is not None else {}
    return _registries(value or {})


# -- Go types: a struct is a dict of field -> (yaml key, type); "str"/"bool" leaves, ("map", T),
# ("slice", T), ("ptr", T).
_AUTH = {"username": "str", "password": "str", "auth": "str", "identity_token": "str"}
_TLS = {"ca_file": "str", "cert_file": "str", "key_file": "str", "insecure_skip_verify": "bool"}
_MIRROR = {"endpoint": ("slice", "str"), "rewrite": ("map", "str")}
_CONFIG = {"auth": ("ptr", _AUTH), "tls": ("ptr", _TLS)}
_REGISTRY = {
    "mirrors": ("map", _MIRROR),
    "configs": ("map", _CONFIG),
    "auths": ("map", _AUTH),
}
_NEEDS = {"str": "text", "bool": "true or false", "map": "a mapping", "slice": "a list"}


def _zero(kind: Any) -> Any:
    if kind == "str":
        return ""
    if kind == "bool":
        return False
    if isinstance(kind, dict):
        return dict.fromkeys(kind)
    return None  # map, slice, ptr: nil


class _TypeError(Exception):
    def __init__(self, line: int, where: str, needs: str, found: str) -> None:
        super().__init__(f"{where or 'the top level'} is {found} where K3s needs {needs}")
        self.line = line


class _Go:
    """yaml.v2's decoder (decode.go ``unmarshal``/``prepare``/``scalar``/``mapping``...)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self.aliases = 0
        self.depth = 0

    def decode(self, node: Any, kind: Any, current: Any, where: str) -> Any:
        try:
            return self._unmarshal(node, kind, current, where)
        except _TypeError as exc:
            raise refusal(self.path, f"{exc}; {K3S}", line=exc.line) from None

    def _unmarshal(self, node: Any, kind: Any, current: Any, where: str) -> Any:
        self.count += 1
        if self.depth:
            self.aliases += 1
        if self.aliases > 100 and self.count > 1000 and self.aliases / self.count > 0.99:
            raise refusal(self.path, f"is mostly alias expansion; {K3S}", line=line_of(node))
        if isinstance(node, Alias):
            self.depth += 1
            try:
                return self._unmarshal(node.node, kind, current, where)
            finally:
                self.depth -= 1
        if _prepare_null(node):
            return self._scalar(node, kind, where)
        if isinstance(kind, tuple) and kind[0] == "ptr":
            target = current if current is not None else _zero(kind[1])
            return self._unmarshal_value(node, kind[1], target, where)
        return self._unmarshal_value(node, kind, current, where)

    def _unmarshal_value(self, node: Any, kind: Any, current: Any, where: str) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, kind, where)
        if isinstance(node, yaml.MappingNode):
            if isinstance(kind, dict):
                return self._struct(node, kind, current, where)
            if isinstance(kind, tuple) and kind[0] == "map":
                return self._map(node, kind[1], current, where)
            raise _TypeError(line_of(node), where, _needs(kind), "a mapping")
        if isinstance(kind, tuple) and kind[0] == "slice":
            return [
                self._unmarshal(c, kind[1], _zero(kind[1]), f"{where}[{i}]")
                for i, c in enumerate(node.value)
            ]
        raise _TypeError(line_of(node), where, _needs(kind), "a list")

    def _scalar(self, node: Any, kind: Any, where: str) -> Any:
        resolved = resolve(node.tag or "", node.value, plain=not node.style)
        if resolved.value is None and resolved.kind == NULL:
            return _zero(kind)  # a nil pointer stays nil; an allocated one holds a zero struct
        if kind == "str":
            if resolved.kind == BINARY:
                return bytes(resolved.value).decode("utf-8", "replace")  # type: ignore[call-overload]
            return node.value  # any scalar: its literal text
        if kind == "bool" and resolved.kind == BOOL:
            return resolved.value
        found = "a quoted or non-boolean value" if kind == "bool" else "a single value"
        raise _TypeError(line_of(node), where, _needs(kind), found)

    def _key(self, node: Any, where: str) -> str:
        text = self._unmarshal(node, "str", "", where + " (a key)")
        return str(text)

    def _map(self, node: Any, elem: Any, current: Any, where: str) -> dict[str, Any]:
        out = current if current is not None else {}
        for key, value in node.value:
            if is_merge(key):
                self._merge(value, lambda n: self._map(n, elem, out, where), where)
                continue
            name = self._key(key, where)
            out[name] = self._unmarshal(value, elem, _zero(elem), f"{where}.{label(name)}")
        return out

    def _struct(self, node: Any, fields: dict[str, Any], current: Any, where: str) -> Any:
        out = current if isinstance(current, dict) else _zero(fields)
        for key, value in node.value:
            if is_merge(key):
                self._merge(value, lambda n: self._struct(n, fields, out, where), where)
                continue
            name = self._key(key, where)
            if name in fields:
                path = f"{where}.{name}" if where else name
                out[name] = self._unmarshal(value, fields[name], out[name], path)
        return out

    def _merge(self, node: Any, into: Callable[[Any], Any], where: str) -> None:
        """``<<``: a mapping, an alias of one, or a list of those (earlier ones win)."""
        items = list(reversed(node.value)) if isinstance(node, yaml.SequenceNode) else [node]
        for item in items:
            inner = item.node if isinstance(item, Alias) else item
            if not isinstance(inner, yaml.MappingNode):
                raise refusal(
                    self.path,
                    f"a <<: merge in {where or 'the top level'} is not a mapping; {K3S}",
                    line=line_of(item),
                )
            self.count += 1
            into(inner)


def _needs(kind: Any) -> str:
    if isinstance(kind, dict):
        return "a mapping"
    if isinstance(kind, tuple):
        return _NEEDS["map" if kind[0] in ("map", "ptr") else "slice"]
    return _NEEDS[kind]


def _prepare_null(node: Any) -> bool:
    """yaml.v2 ``prepare``: these nulls return before a nil pointer is allocated."""
    if isinstance(node, yaml.ScalarNode):
        tag = node.tag or ""
        return tag == NULL or (
            not tag and (node.value in ("null", "~") or (node.value == "" and not node.style))
        )
    return False


def _auth(value: dict[str, Any] | None) -> Auth | None:
    if value is None:
        return None
    return Auth(
        value["username"] or "",
        value["password"] or "",
        value["auth"] or "",
        value["identity_token"] or "",
    )


def _registries(value: dict[str, Any]) -> Registries:
    def mirror(m: dict[str, Any]) -> Mirror:
        ends = m.get("endpoint")
        return Mirror(None if ends is None else tuple(ends), m.get("rewrite"))

    def config(c: dict[str, Any]) -> RegistryConfig:
        tls = c.get("tls")
        return RegistryConfig(
            _auth(c.get("auth")),
            None
            if tls is None
            else Tls(
                tls["ca_file"] or "",
                tls["cert_file"] or "",
                tls["key_file"] or "",
                bool(tls["insecure_skip_verify"]),
            ),
        )

    def each(values: Any, make: Callable[[Any], Any]) -> dict[str, Any] | None:
        if values is None:
            return None
        return {k: make(v if v is not None else {}) for k, v in values.items()}

    return Registries(
        mirrors=each(value.get("mirrors"), mirror),
        configs=each(value.get("configs"), config),
        auths=each(value.get("auths"), lambda a: _auth(a) or Auth()),
    )
