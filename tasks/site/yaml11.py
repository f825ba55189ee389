"""Pure: gopkg.in/yaml.v2's ``resolve`` — what a scalar means before it meets a Go type.

Only what K3s's decode needs: whether a scalar is null, a bool (and which), or something else,
and whether an explicit tag fits its value (``!!int abc`` makes yaml.v2 fail the whole file).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

_P = "tag:yaml.org,2002:"
STR, BOOL, INT, FLOAT, NULL = f"{_P}str", f"{_P}bool", f"{_P}int", f"{_P}float", f"{_P}null"
TIMESTAMP, BINARY, MERGE = f"{_P}timestamp", f"{_P}binary", f"{_P}merge"
OTHER = "other"  # a tag yaml.v2 does not resolve: the text is kept as it is
_RESOLVABLE = frozenset({"", STR, BOOL, INT, FLOAT, NULL, TIMESTAMP})

_MAP: dict[str, tuple[str, object]] = {}
for _value, _tag, _words in (
    (True, BOOL, "y Y yes Yes YES true True TRUE on On ON"),
    (False, BOOL, "n N no No NO false False FALSE off Off OFF"),
    (None, NULL, "~ null Null NULL"),
    (float("nan"), FLOAT, ".nan .NaN .NAN"),
    (float("inf"), FLOAT, ".inf .Inf .INF +.inf +.Inf +.INF"),
    (float("-inf"), FLOAT, "-.inf -.Inf -.INF"),
    ("<<", MERGE, "<<"),
):
    for _word in _words.split():
        _MAP[_word] = (_tag, _value)
_MAP[""] = (NULL, None)

_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_DOT_FLOAT = re.compile(r"\.[0-9]+([eE][-+]?[0-9]+)?")
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"([Tt][0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?(Z|[-+][0-9]{2}:[0-9]{2})"
    r"| [0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(\.[0-9]+)?)?"
)
_GO_INT = re.compile(r"[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)")


@dataclass(frozen=True)
class Resolved:
    kind: str  # one of the tags above, or OTHER
    value: object = None
    error: str = ""  # the short tag whose value does not fit (yaml.v2 fails the file)


def _go_int(text: str) -> int | None:
    """strconv.ParseInt/ParseUint(text, 0, 64), the range yaml.v2 accepts."""
    if not _GO_INT.fullmatch(text):
        return None
    sign = -1 if text.startswith("-") else 1
    body = text.lstrip("+-")
    base = 10
    if len(body) > 1 and body[0] == "0":
        base = {"x": 16, "o": 8, "b": 2}.get(body[1].lower(), 8)
        body = body[2:] if body[1].isalpha() else body[1:] or "0"
    number = sign * int(body or "0", base)
    return number if -(2**63) <= number < 2**64 else None


def _implicit(text: str) -> tuple[str, object]:
    if text in _MAP:
        return _MAP[text]
    first = text[:1]
    if first == ".":
        if _DOT_FLOAT.fullmatch(text):
            return FLOAT, float(text)
    elif first in "+-" or first.isdigit():
        if _TIMESTAMP.fullmatch(text):
            return TIMESTAMP, text
        plain = text.replace("_", "")
        number = _go_int(plain)
        if number is not None:
            return INT, number
        if _FLOAT.fullmatch(plain):
            return FLOAT, float(plain)
        if plain.startswith(("0b", "-0b")) and re.fullmatch(r"-?0b[01]+", plain):
            return INT, int(plain.replace("0b", ""), 2)
    return STR, text


def resolve(tag: str, text: str, *, plain: bool = True) -> Resolved:
    """yaml.v2's reading of one scalar: ``tag`` is the explicit tag ("" for none), ``plain``
    False for a quoted or block scalar (then untagged means a string)."""
    if not tag and not plain:
        return Resolved(STR, text)
    if tag == BINARY:
        try:
            return Resolved(BINARY, base64.b64decode(text.replace("\n", ""), validate=True))
        except (binascii.Error, ValueError):
            return Resolved(BINARY, error="!!binary")
    if tag not in _RESOLVABLE:
        return Resolved(OTHER, text)
    kind, value = (STR, text) if tag == STR else _implicit(text)
    if kind == TIMESTAMP and tag not in ("", TIMESTAMP):
        kind, value = _implicit_without_timestamp(text)
    if tag in ("", STR, kind):
        return Resolved(kind, value)
    if tag == FLOAT and kind == INT:
        return Resolved(FLOAT, float(value))  # type: ignore[arg-type]
    return Resolved(kind, value, error="!!" + tag.removeprefix(_P))


def _implicit_without_timestamp(text: str) -> tuple[str, object]:
    # yaml.v2 tries timestamps only for untagged or !!timestamp scalars.
    plain = text.replace("_", "")
    number = _go_int(plain)
    if number is not None:
        return INT, number
    if _FLOAT.fullmatch(plain):
        return FLOAT, float(plain)
    return STR, text
