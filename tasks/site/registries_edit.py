"""Pure: the round-trip edit of registries.yaml (ruamel.yaml), touching only acr-edge's entries.

Everything else the operator wrote stays: comments, key order, anchors and aliases, quoting,
a leading ``---`` (and comments above it), flow style (Rancher's one-line JSON stays one
line), and the indentation the file uses. A node that is anchored or comes from a ``<<``
merge may be shared with other entries, so it is never edited in place: acr-edge gives its
entry its own shallow copy (the shared values stay aliases). The caller re-decodes the result
as K3s does and refuses the edit if anything but acr-edge's entries changed meaning.
"""

from __future__ import annotations

import io
import itertools
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from model.errors import PermanentError

_DOC_START = re.compile(r"---[ \t]*(#.*)?")
KEEP, SET, DROP = "keep", "set", "drop"


def _yaml(text: str) -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 1 << 16  # never fold a long line (or the one-line JSON) differently
    mapping, sequence, offset = guess_indent(text)
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    return yaml


def guess_indent(text: str) -> tuple[int, int, int]:
    """(mapping, sequence, dash offset) as the file writes block collections; K3s docs' 2/2/0
    for a new file."""
    mapping, sequence, offset = 2, 2, 0
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    found_map = found_seq = False
    for above, line in itertools.pairwise(lines):
        if not above.rstrip().endswith(":"):
            continue
        step = (len(line) - len(line.lstrip(" "))) - (len(above) - len(above.lstrip(" ")))
        if line.lstrip().startswith("- ") and not found_seq and step >= 0:
            offset, sequence, found_seq = step, step + 2, True
        elif not line.lstrip().startswith("-") and step > 0 and not found_map:
            mapping, found_map = step, True
    return mapping, max(sequence, offset + 2), offset


def _split_document_start(text: str) -> tuple[str, str]:
    """(leading comments and the ``---`` line, the rest): ruamel drops comments above ``---``."""
    lines = text.splitlines(keepends=True)
    for index, line in enumerate(lines):
        stripped = line.strip()
        if _DOC_START.fullmatch(stripped):
            return "".join(lines[: index + 1]), "".join(lines[index + 1 :])
        if stripped and not stripped.startswith("#"):
            break
    return "", text


def _quoted(value: str) -> DoubleQuotedScalarString:
    return DoubleQuotedScalarString(value)


def _own(parent: CommentedMap, key: str) -> bool:
    if key not in parent:
        return False
    return not getattr(parent, "merge", None) or key in parent._ok


def _editable(node: Any) -> bool:
    anchor = getattr(node, "anchor", None)
    return isinstance(node, CommentedMap) and not (anchor is not None and anchor.value)


def _own_map(parent: CommentedMap, key: str, *, host: bool = False) -> CommentedMap:
    """``parent[key]`` as a mapping acr-edge may edit: its own, or a copy of a shared one."""
    value = parent.get(key)
    if _own(parent, key) and _editable(value):
        return value  # type: ignore[no-any-return]
    copy = CommentedMap()
    if isinstance(value, CommentedMap):
        for k, v in value.items():
            copy[k] = v
        if value.fa.flow_style():
            copy.fa.set_flow_style()
    elif parent.fa.flow_style():
        copy.fa.set_flow_style()
    new_key = _quoted(key) if host else _key(parent, key)
    parent[key if key in parent else new_key] = copy
    return copy


def _key(parent: CommentedMap, name: str) -> Any:
    # In a flow mapping (JSON) every new key is double-quoted like its neighbours.
    return _quoted(name) if parent.fa.flow_style() else name


def edit(
    text: str,
    host: str,
    endpoint: str | tuple[str, ...] | None,
    auth: str,
    username: str,
    password: str,
    *,
    path: str = "registries.yaml",
    tls_host: str | None = None,
    ca_file: str | None = None,
) -> str:
    """``text`` with ``mirrors.<host>.endpoint`` = the endpoint(s) (None: keep),
    ``configs.<host>.auth`` set (SET, with username/password), removed (DROP) or kept, and with
    ``tls_host``: ``configs.<tls_host>.tls`` = exactly ``{ca_file: ...}`` (acr-edge's CA)."""
    prefix, body = _split_document_start(text)
    yaml = _yaml(body)
    try:
        data = yaml.load(body)
    except YAMLError:
        # Decoded fine as K3s reads it, but ruamel's (YAML 1.2) parser disagrees: never guess.
        raise PermanentError(
            f"{path}: acr-edge's round-trip editor cannot read this file (K3s can); "
            "it is left as it is",
            resource=path,
            fix="simplify the YAML of the file (anchors, tags, odd quoting), then re-run",
        ) from None
    fresh = data is None
    if fresh:
        data = CommentedMap()
    if endpoint is not None:
        mirrors = _own_map(data, "mirrors")
        entry = _own_map(mirrors, host, host=True)
        endpoints = (endpoint,) if isinstance(endpoint, str) else endpoint
        seq = CommentedSeq([_quoted(e) for e in endpoints])
        if entry.fa.flow_style() or (
            isinstance(entry.get("endpoint"), CommentedSeq) and entry["endpoint"].fa.flow_style()
        ):
            seq.fa.set_flow_style()
        entry[entry_key(entry, "endpoint")] = seq
    if auth == SET:
        configs = _own_map(data, "configs")
        config = _own_map(configs, host, host=True)
        creds = _own_map(config, "auth")
        for name in [k for k in creds if k not in ("username", "password")]:
            del creds[name]
        creds[entry_key(creds, "username")] = (
            _quoted(username) if creds.fa.flow_style() else username
        )
        creds[entry_key(creds, "password")] = _quoted(password)
    elif auth == DROP:
        configs = _own_map(data, "configs")
        config = _own_map(configs, host, host=True)
        if _own(config, "auth"):
            del config["auth"]
        if "auth" in config:  # still there through a merge key: null is Go's nil pointer
            config[_key(config, "auth")] = None
        if not config and not getattr(config, "merge", None):
            del configs[host]
    if tls_host is not None and ca_file is not None:
        configs = _own_map(data, "configs")
        config = _own_map(configs, tls_host, host=True)
        tls = _own_map(config, "tls")
        for name in [k for k in tls if k != "ca_file"]:
            del tls[name]
        tls[entry_key(tls, "ca_file")] = _quoted(ca_file)
    out = io.StringIO()
    yaml.dump(data, out)
    dumped = out.getvalue()
    if fresh:
        kept = body if not body or body.endswith("\n") else body + "\n"
        return prefix + kept + dumped
    return prefix + dumped


def entry_key(parent: CommentedMap, name: str) -> Any:
    """The existing key object (its quoting kept), else a new one."""
    for key in parent:
        if key == name:
            return key
    return _key(parent, name)
