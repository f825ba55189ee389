"""Pure Kubernetes API pieces: resource table, Status errors, name rules, selectors, patches."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    name_rule: str = "subdomain"  # or "label" (DNS-1123 label) or "label1035"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", namespaced=False, name_rule="label"),
    ResourceType("", "v1", "nodes", "Node", namespaced=False),
    ResourceType("", "v1", "secrets", "Secret"),
    ResourceType("", "v1", "services", "Service", name_rule="label1035"),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount"),
    ResourceType("", "v1", "configmaps", "ConfigMap"),
    ResourceType("", "v1", "pods", "Pod"),
    ResourceType("", "v1", "events", "Event"),
    ResourceType("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ResourceType("apps", "v1", "deployments", "Deployment"),
)
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {r.kind: r for r in RESOURCES}


class ApiError(Exception):
    """An error the API server answers with a ``Status`` body."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> Obj:
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(rt: ResourceType, name: str) -> ApiError:
    group = f".{rt.group}" if rt.group else ""
    return ApiError(
        404,
        "NotFound",
        f'{rt.plural}{group} "{name}" not found',
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


def already_exists(rt: ResourceType, name: str) -> ApiError:
    group = f".{rt.group}" if rt.group else ""
    return ApiError(
        409,
        "AlreadyExists",
        f'{rt.plural}{group} "{name}" already exists',
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


def conflict(rt: ResourceType, name: str) -> ApiError:
    group = f".{rt.group}" if rt.group else ""
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.plural}{group} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        {"name": name, "group": rt.group, "kind": rt.plural},
    )


def invalid(rt: ResourceType, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid; ``causes`` are (field, message) pairs."""
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(
        422,
        "Invalid",
        f'{rt.kind} "{name}" is invalid: {text}',
        {
            "name": name,
            "group": rt.group,
            "kind": rt.kind,
            "causes": [
                {"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes
            ],
        },
    )


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def name_problem(name: Any, rule: str) -> str | None:
    """Why ``name`` is not a valid object name under ``rule``, or None."""
    if not isinstance(name, str) or not name:
        return "name or generateName is required"
    if rule == "label" or rule == "label1035":
        pattern = _LABEL if rule == "label" else _LABEL1035
        if len(name) > 63 or not pattern.match(name):
            what = "RFC 1123" if rule == "label" else "RFC 1035"
            return f'Invalid value: "{name}": a lowercase {what} label must consist of lower case '
        return None
    if len(name) > 253 or not all(_LABEL.match(part) for part in name.split(".")):
        return (
            f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
            "alphanumeric characters, '-' or '.'"
        )
    return None


# --- selectors ------------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*([^\s!=]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality (=, ==, !=), set (in, notin) and existence (key, !key) requirements."""
    for req in _split_selector(selector):
        m = _SET_RE.match(req)
        if m:
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            present = key in labels and labels[key] in values
            if (op == "in") != present:
                return False
            continue
        if "!=" in req:
            key, value = (s.strip() for s in req.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in req:
            key, value = (s.strip() for s in req.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif req.startswith("!"):
            if req[1:] in labels:
                return False
        elif req not in labels:
            return False
    return True


def field_value(obj: Obj, path: str) -> Any:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def field_selector_matches(selector: str, obj: Obj) -> bool:
    for req in _split_selector(selector):
        negate = "!=" in req
        key, value = (s.strip() for s in req.replace("==", "=").replace("!=", "=").split("=", 1))
        actual = field_value(obj, key)
        actual_text = "" if actual is None else str(actual)
        if (actual_text == value) == negate:
            return False
    return True


# --- patches --------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Merge keys of the list fields strategic merge patch merges by key (from the k8s API types).
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "ports": "port",
    "conditions": "type",
    "secrets": "name",
    "tolerations": "key",
}


def strategic_merge_patch(target: Any, patch: Any, field_name: str = "") -> Any:
    """Strategic merge patch for the built-in types: lists with a known merge key merge by key."""
    if isinstance(patch, dict):
        if patch.get("$patch") == "replace":
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
        if patch.get("$patch") == "delete":
            return None
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue
            if value is None:
                result.pop(key, None)
            else:
                merged = strategic_merge_patch(result.get(key), value, key)
                if merged is None:
                    result.pop(key, None)
                else:
                    result[key] = merged
        return result
    if isinstance(patch, list) and field_name in MERGE_KEYS and isinstance(target, list):
        key = MERGE_KEYS[field_name]
        if field_name == "ports" and patch and "containerPort" in patch[0]:
            key = "containerPort"
        result_list = copy.deepcopy(target)
        for item in patch:
            if not isinstance(item, dict):
                result_list.append(copy.deepcopy(item))
                continue
            idx = next(
                (i for i, cur in enumerate(result_list) if cur.get(key) == item.get(key)), None
            )
            if item.get("$patch") == "delete":
                if idx is not None:
                    result_list.pop(idx)
            elif idx is None:
                result_list.append({k: v for k, v in item.items() if k != "$patch"})
            else:
                result_list[idx] = strategic_merge_patch(result_list[idx], item, "")
        return result_list
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def json_patch(doc: Any, ops: list[Any]) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, move, copy, test)."""
    doc = copy.deepcopy(doc)

    def parent(tokens: list[str]) -> tuple[Any, str]:
        cur = doc
        for tok in tokens[:-1]:
            cur = cur[int(tok)] if isinstance(cur, list) else cur[tok]
        return cur, tokens[-1]

    def get(tokens: list[str]) -> Any:
        cur = doc
        for tok in tokens:
            cur = cur[int(tok)] if isinstance(cur, list) else cur[tok]
        return cur

    def add(tokens: list[str], value: Any) -> None:
        nonlocal doc
        if not tokens:
            doc = value
            return
        container, last = parent(tokens)
        if isinstance(container, list):
            container.insert(len(container) if last == "-" else int(last), value)
        else:
            container[last] = value

    def remove(tokens: list[str]) -> Any:
        container, last = parent(tokens)
        return container.pop(int(last)) if isinstance(container, list) else container.pop(last)

    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request("json patch operations need 'op' and 'path'")
        tokens = _pointer(op["path"])
        try:
            kind = op["op"]
            if kind == "add":
                add(tokens, copy.deepcopy(op["value"]))
            elif kind == "remove":
                remove(tokens)
            elif kind == "replace":
                get(tokens)
                remove(tokens)
                add(tokens, copy.deepcopy(op["value"]))
            elif kind == "move":
                add(tokens, remove(_pointer(op["from"])))
            elif kind == "copy":
                add(tokens, copy.deepcopy(get(_pointer(op["from"]))))
            elif kind == "test":
                if get(tokens) != op["value"]:
                    raise ApiError(
                        422,
                        "Invalid",
                        f"the server rejected our request: test failed at {op['path']}",
                    )
            else:
                raise bad_request(f"unknown json patch op {kind!r}")
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: {exc!r}",
            ) from exc
    return doc
