"""Pure: the connected-registry chart values for a site, and a digest to compare releases.

The release records ``acrEdge.valuesDigest`` (sha256 over the canonical JSON of every other
value, the connection string included) plus non-secret metadata about the sync credential.
A re-run reads only the ``acrEdge`` key of ``helm get values`` and compares digests, so no
value is ever printed or diffed in clear.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

if TYPE_CHECKING:
    from blocks.edge_site import EdgeSite

META_KEY = "acrEdge"
MASK = "***"
_SECRET_KEYS = frozenset({"connectionString"})


@dataclass(frozen=True)
class SyncCredentialRef:
    """Which sync-token password the connection string carries (never the password)."""

    token: str
    slot: str
    created: str


@dataclass(frozen=True)
class ChartValues:
    """``values`` holds the connection string: keep it out of logs, use ``masked()``."""

    values: dict[str, Any]
    digest: str

    def to_yaml_stdin(self) -> SecretStr:
        # JSON is YAML; helm reads it from `-f -`. SecretStr keeps it out of reprs and logs.
        return SecretStr(json.dumps(self.values, sort_keys=True, separators=(",", ":")))

    def __repr__(self) -> str:
        return f"ChartValues(digest={self.digest!r}, values={masked(self.values)!r})"


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def desired_values(site: EdgeSite, connection_string: SecretStr) -> dict[str, Any]:
    """Every chart value except the acr-edge metadata."""
    values: dict[str, Any] = {
        "connectionString": connection_string.get_secret_value(),
        "httpEnabled": site.http_enabled,
    }
    if site.service_cluster_ip:
        values["service"] = {"clusterIP": site.service_cluster_ip}
    pvc: dict[str, Any] = {}
    if site.storage_class:
        pvc["storageClassName"] = site.storage_class
    if site.storage_request:
        pvc["storageRequest"] = site.storage_request
    if pvc:
        values["pvc"] = pvc
    # The block refuses extras that collide with the fields above or carry secrets.
    return _deep_merge(site.chart_values, values)


def digest(values: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``values`` without the metadata key."""
    body = {k: v for k, v in values.items() if k != META_KEY}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def chart_values(
    site: EdgeSite, connection_string: SecretStr, sync_ref: SyncCredentialRef
) -> ChartValues:
    values = desired_values(site, connection_string)
    value_digest = digest(values)
    values[META_KEY] = {
        "valuesDigest": value_digest,
        "syncCredential": {
            "token": sync_ref.token,
            "slot": sync_ref.slot,
            "created": sync_ref.created,
        },
    }
    return ChartValues(values=values, digest=value_digest)


def recorded_digest(release_values: dict[str, Any] | None) -> str | None:
    """The digest a release was installed with; looks only at the metadata key."""
    if not isinstance(release_values, dict):
        return None
    meta = release_values.get(META_KEY)
    if not isinstance(meta, dict):
        return None
    value = meta.get("valuesDigest")
    return value if isinstance(value, str) else None


def masked(values: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to log or show in a plan diff: secret values replaced by ``***``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in _SECRET_KEYS:
            out[key] = MASK
        elif isinstance(value, dict):
            out[key] = masked(value)
        else:
            out[key] = value
    return out


def plan_diff(
    recorded: dict[str, Any] | None, desired: dict[str, Any]
) -> list[tuple[str, Any, Any]]:
    """(path, old, new) for every value that differs, secrets masked."""
    old = masked(recorded or {})
    new = masked(desired)
    changes: list[tuple[str, Any, Any]] = []
    # A changed connection string shows as a changed acrEdge.valuesDigest, never in clear.
    _diff("", old, new, changes)
    return changes


def _diff(prefix: str, old: Any, new: Any, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            _diff(path, old.get(key), new.get(key), out)
    elif old != new:
        out.append((prefix, old, new))
