"""Pure: the connected-registry chart values for a site, and a digest to compare releases.

The release records ``acrEdge.valuesDigest``: sha256 over the canonical JSON of the non-secret
values, the chart reference and version, and the sync credential reference (token, slot,
creation time) - never the connection string itself. So a changed chart setting and a changed
sync credential both change the digest, and the digest reveals nothing about the secret.
A re-run compares digests; the settings that changed are named from the non-secret values only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from model import tls
from model.errors import InputError
from model.site import SyncCredentialRef
from tasks.azure.connection_string import parse_sync_connection_string

if TYPE_CHECKING:
    from model.site import SiteSettings


META_KEY = "acrEdge"
MASK = "***"
_SECRET_KEYS = frozenset({"connectionString"})


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


@dataclass(frozen=True)
class Serving:
    """How the release serves pulls: ``pull_port`` is the port of the name pods use (kept
    across an http->https migration, so image references and pull secrets stay valid) and
    ``tls_secret`` the kubernetes.io/tls Secret the chart serves (None: plain http)."""

    pull_port: int
    tls_secret: str | None

    @property
    def transport(self) -> str:
        return "http" if self.tls_secret is None else "https"


def recorded_pull_port(values: Any) -> int | None:
    """The pull port a release records; a release from before it was recorded used the port
    of the transport it serves. None: no release values."""
    if not isinstance(values, dict):
        return None
    meta = values.get(META_KEY)
    port = meta.get("pullPort") if isinstance(meta, dict) else None
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return port
    return tls.service_port("http" if values.get("httpEnabled") else "https")


def recorded_tls_secret(values: Any) -> str | None:
    """The ``tls.secret`` a release serves, when it is one of acr-edge's slots."""
    if not isinstance(values, dict) or values.get("httpEnabled"):
        return None
    section = values.get("tls")
    name = section.get("secret") if isinstance(section, dict) else None
    return name if isinstance(name, str) and name else None


def serving_for(
    site: SiteSettings,
    recorded: Any,
    tls_secret: str | None = None,
    *,
    transport: str | None = None,
) -> Serving:
    """What the release should serve: ``transport`` (None: what the release serves now, the
    site's for a new one; only provision changes it, after preparing the nodes), the recorded
    pull port (a new release: the transport's), and ``tls_secret`` (else the one the release
    serves now, else slot ``a``)."""
    port = recorded_pull_port(recorded) or tls.service_port(site.transport)
    if transport is None:
        if isinstance(recorded, dict):
            transport = "https" if recorded_tls_secret(recorded) else "http"
        else:
            transport = site.transport
    if transport == "http":
        return Serving(port, None)
    secret = tls_secret or recorded_tls_secret(recorded)
    if secret not in {tls.server_secret_name(site.release_name, s) for s in tls.SERVER_SLOTS}:
        secret = tls.server_secret_name(site.release_name, tls.SERVER_SLOTS[0])
    return Serving(port, secret)


def public_values(site: SiteSettings, serving: Serving | None = None) -> dict[str, Any]:
    """Every chart value except the connection string and the acr-edge metadata."""
    serving = serving or serving_for(site, None)
    values: dict[str, Any] = {"httpEnabled": serving.tls_secret is None}
    if serving.tls_secret is not None:
        # The site CA's certificate through the chart's own secret reference; cert-manager
        # off, as acr-edge is the issuer (the chart's default would install it).
        values["tls"] = {"secret": serving.tls_secret}
        values["cert-manager"] = {"enabled": False}
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


def desired_values(
    site: SiteSettings, connection_string: SecretStr, serving: Serving | None = None
) -> dict[str, Any]:
    """Every chart value except the acr-edge metadata."""
    return {
        **public_values(site, serving),
        "connectionString": connection_string.get_secret_value(),
    }


def chart_of(site: SiteSettings) -> dict[str, Any]:
    """The chart the release should run (``helm upgrade --version``; not a chart value)."""
    return {"ref": site.chart_ref, "version": site.chart_version}


def _without_secrets(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != META_KEY and k not in _SECRET_KEYS}


def digest(
    values: dict[str, Any],
    chart: dict[str, Any],
    sync_ref: SyncCredentialRef,
    pull_port: int | None = None,
) -> str:
    """sha256 of the non-secret ``values``, the chart, the sync credential reference and the
    pull port (when it is not the transport's own: older digests stay valid)."""
    body: dict[str, Any] = {
        "values": _without_secrets(values),
        "chart": chart,
        "syncCredential": _ref_dict(sync_ref),
    }
    if pull_port is not None:
        body["pullPort"] = pull_port
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _port_part(serving: Serving) -> int | None:
    return None if serving.pull_port == tls.service_port(serving.transport) else serving.pull_port


def desired_digest(
    site: SiteSettings, sync_ref: SyncCredentialRef, serving: Serving | None = None
) -> str:
    """The digest a release of ``site`` carrying ``sync_ref`` should record."""
    serving = serving or serving_for(site, None)
    return digest(public_values(site, serving), chart_of(site), sync_ref, _port_part(serving))


def _ref_dict(sync_ref: SyncCredentialRef) -> dict[str, str]:
    return {"token": sync_ref.token, "slot": sync_ref.slot, "created": sync_ref.created}


def chart_values(
    site: SiteSettings,
    connection_string: SecretStr,
    sync_ref: SyncCredentialRef,
    serving: Serving | None = None,
) -> ChartValues:
    serving = serving or serving_for(site, None)
    values = desired_values(site, connection_string, serving)
    value_digest = desired_digest(site, sync_ref, serving)
    values[META_KEY] = {
        "valuesDigest": value_digest,
        "chart": chart_of(site),
        "syncCredential": _ref_dict(sync_ref),
        "pullPort": serving.pull_port,
    }
    return ChartValues(values=values, digest=value_digest)


def recorded_sync_credential(release_values: Any) -> SyncCredentialRef | None:
    """``acrEdge.syncCredential`` of a release's values; looks only at the metadata key."""
    if not isinstance(release_values, dict):
        return None
    meta = release_values.get(META_KEY)
    cred = meta.get("syncCredential") if isinstance(meta, dict) else None
    if not isinstance(cred, dict):
        return None
    token, slot, created = cred.get("token"), cred.get("slot"), cred.get("created")
    if not all(isinstance(v, str) and v for v in (token, slot, created)):
        return None
    return SyncCredentialRef(token=str(token), slot=str(slot), created=str(created))


def changed_settings(
    release_values: dict[str, Any] | None, site: SiteSettings, serving: Serving | None = None
) -> list[str]:
    """Dotted paths of the non-secret settings where the release differs from ``site``
    (``pvc.storageRequest``, ``chart.version``, ``tls.secret``); safe to log."""
    recorded = release_values if isinstance(release_values, dict) else {}
    serving = serving or serving_for(site, release_values)
    changes: list[tuple[str, Any, Any]] = []
    _diff("", _without_secrets(recorded), public_values(site, serving), changes, leaves=True)
    meta = recorded.get(META_KEY)
    recorded_chart = meta.get("chart") if isinstance(meta, dict) else None
    # Releases from before the chart was recorded: the version passed then is unknown.
    if isinstance(recorded_chart, dict):
        _diff("chart", recorded_chart, chart_of(site), changes, leaves=True)
    return [path for path, _, _ in changes]


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


def _diff(
    prefix: str, old: Any, new: Any, out: list[tuple[str, Any, Any]], *, leaves: bool = False
) -> None:
    """``leaves``: a map added or removed as a whole is reported per leaf (``pvc.storageRequest``
    rather than ``pvc``)."""
    if leaves and old is None and isinstance(new, dict):
        old = {}
    if leaves and new is None and isinstance(old, dict):
        new = {}
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            _diff(path, old.get(key), new.get(key), out, leaves=leaves)
    elif old != new:
        out.append((prefix, old, new))


def kept_connection_string(values: Any, sync_ref: SyncCredentialRef | None) -> SecretStr | None:
    """The connection string of a release's values, if it is the one ``sync_ref`` describes
    (recorded with it, parses, names its token); None otherwise. Never echoes the text."""
    if sync_ref is None or recorded_sync_credential(values) != sync_ref:
        return None
    raw = values.get("connectionString") if isinstance(values, dict) else None
    if not isinstance(raw, str) or not raw:
        return None
    candidate = SecretStr(raw)
    del raw
    try:
        settings = parse_sync_connection_string(candidate)
    except InputError:
        return None  # its text is never echoed: InputError names only the field
    if settings.sync_token != sync_ref.token:
        return None
    return candidate
