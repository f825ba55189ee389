"""Pure: registries.yaml's YAML node graph, with every refusal that needs no Go types.

Composed with PyYAML's parser (a port of the libyaml parser that yaml.v2 is also a port of),
aliases kept as :class:`Alias` so nothing is expanded; checked for size, several documents,
tags, duplicate keys, surrogate escapes and the size the aliases would expand to. See
:mod:`tasks.site.registries_decode` for what K3s then does with it.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from model.errors import PermanentError
from tasks.site.yaml11 import NULL, resolve

MAX_BYTES = 64 * 1024
MAX_NODES = 10_000
FIX = "correct registries.yaml on the node by hand, then re-run (a backup sits beside it)"
K3S = "K3s would refuse this file and not start"
STRICT = "acr-edge refuses it"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{t}"
    for t in ("str", "int", "bool", "float", "null", "binary", "timestamp", "merge")
)


def refusal(path: str, what: str, *, line: int | None = None) -> PermanentError:
    where = f"line {line}: " if line else ""
    return PermanentError(f"{path}: {where}{what}", resource=path, fix=FIX)


def check_size(n_bytes: int, path: str) -> None:
    """Refuse a file over :data:`MAX_BYTES` before it is read or parsed."""
    if n_bytes > MAX_BYTES:
        raise refusal(
            path,
            f"is {n_bytes} bytes, over acr-edge's limit of {MAX_BYTES} for registries.yaml; "
            f"{STRICT} (no registries.yaml needs that much)",
        )


def decode_bytes(raw: bytes, path: str) -> str:
    """The file's text; non-UTF-8 bytes are refused with their line (never shown)."""
    check_size(len(raw), path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise refusal(path, "holds bytes that are not UTF-8 text; " + STRICT, line=line) from None


class Alias:
    """An alias kept as such in the composed graph, so nothing is ever expanded."""

    def __init__(self, node: Any, mark: Any) -> None:
        self.node, self.start_mark = node, mark


class _Composer(
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    yaml.composer.Composer,
    yaml.resolver.BaseResolver,
):
    def __init__(self, text: str) -> None:
        yaml.reader.Reader.__init__(self, text)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        yaml.resolver.BaseResolver.__init__(self)

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        return ""  # no tag written: yaml.v2 resolves it itself (see tasks.site.yaml11)

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.get_event()
            if event.anchor not in self.anchors:
                raise yaml.composer.ComposerError(
                    None, None, "found undefined alias", event.start_mark
                )
            return Alias(self.anchors[event.anchor], event.start_mark)
        return super().compose_node(parent, index)


def line_of(node: Any) -> int:
    return int(node.start_mark.line) + 1


def _no_quotes(problem: str) -> str:
    # PyYAML quotes tokens and characters of the file in some problems: drop every quoted part.
    return re.sub(r"'[^']*'|\"[^\"]*\"|#x[0-9a-f]+", "…", problem)


def compose(text: str, path: str = "registries.yaml") -> Any:
    """The one document's node graph (None for an empty file), after every refusal that needs
    no types: size, syntax, several documents, tags, duplicate keys, alias expansion."""
    check_size(len(text.encode("utf-8", errors="surrogatepass")), path)
    loader = None
    try:
        loader = _Composer(text)  # the reader checks every character here
        docs = []
        while loader.check_node():
            docs.append(loader.get_node())
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise refusal(
            path, "holds a control character YAML does not allow; " + K3S, line=line
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1} column {mark.column + 1})" if mark else ""
        problem = _no_quotes(str(exc.problem or exc.context or "syntax error"))
        raise refusal(path, f"does not parse as YAML{where}: {problem}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise refusal(path, f"does not parse as YAML ({type(exc).__name__})") from None
    finally:
        if loader is not None:
            loader.dispose()
    real = [d for d in docs if not _is_empty(d)]
    if len(real) > 1:
        raise refusal(
            path,
            f"holds {len(real)} YAML documents; K3s would read only the first and ignore the "
            f"rest without a word, so {STRICT}: keep one document",
            line=line_of(real[1]),
        )
    if not real:
        return None
    root = real[0]
    _check_graph(root, path)
    return root


def _is_empty(node: Any) -> bool:
    return (
        isinstance(node, yaml.ScalarNode) and node.value == "" and not node.tag and not node.style
    )


def _check_graph(root: Any, path: str) -> None:
    """Tags, duplicate keys, surrogates and the expanded size, each node visited once."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any) -> int:
        if isinstance(node, Alias):
            if id(node.node) in active:
                raise refusal(path, "an alias refers to its own anchor; " + K3S, line=line_of(node))
            return 1 + size(node.node)
        key = id(node)
        if key in sizes:
            return sizes[key]
        active.add(key)
        _check_node(node, path)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        if total > MAX_NODES:
            raise refusal(
                path,
                f"expands to more than {MAX_NODES} YAML nodes through its aliases; {STRICT} "
                "(a registries.yaml this large is an alias bomb, not a configuration)",
                line=line_of(node),
            )
        return total

    size(root)


def _check_node(node: Any, path: str) -> None:
    tag = node.tag or ""
    if isinstance(node, yaml.ScalarNode):
        if tag and tag not in _SCALAR_TAGS:
            raise _bad_tag(path, node)
        if any("\ud800" <= ch <= "\udfff" for ch in node.value):
            raise refusal(
                path,
                "a \\u escape encodes a UTF-16 surrogate (write the character); " + K3S,
                line=line_of(node),
            )
        if tag:  # an explicit core tag must fit its value, as yaml.v2's resolve checks
            resolved = resolve(tag, node.value)
            if resolved.error:
                raise refusal(
                    path,
                    f"a value does not fit its {resolved.error} tag; {K3S}",
                    line=line_of(node),
                )
        return
    if tag and tag != (_MAP if isinstance(node, yaml.MappingNode) else _SEQ):
        raise _bad_tag(path, node)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or is_merge(key):
                continue
            text = (
                key.value
                if resolve(key.tag or "", key.value, plain=not key.style).kind != NULL
                else ""
            )
            if text in seen:
                raise refusal(
                    path,
                    f"a key appears twice in one mapping (lines {seen[text]} and "
                    f"{line_of(key)}). K3s would accept this file and silently use the last value; "
                    f"{STRICT} because which of the two the operator meant is not knowable and "
                    "an edit could keep the wrong one. Remove one of them",
                    line=line_of(key),
                )
            seen[text] = line_of(key)


def _bad_tag(path: str, node: Any) -> PermanentError:
    return refusal(
        path,
        "uses a YAML tag other than the standard ones (!!str, !!int, !!bool, !!map, ...); K3s's "
        f"reader would mostly ignore it, {STRICT} so that what it checks is what K3s reads",
        line=line_of(node),
    )


def label(key: str) -> str:
    """A host key as messages show it: not at all (keys are file content; the line says which)."""
    return "<host>"


def is_merge(node: Any) -> bool:
    return (
        isinstance(node, yaml.ScalarNode)
        and node.value == "<<"
        and ((not node.tag and not node.style) or node.tag == "tag:yaml.org,2002:merge")
    )
