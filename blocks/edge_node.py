"""Per-node settings of an `EdgeSite`: how one node of the cluster is reached where it differs
from the site's SSH settings, and the field checks the site block shares with it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from blocks import forms
from model import names, patterns
from model.errors import InputError

# Chart values that carry secrets must come from the flow (connection string) or a secret
# reference, never from plain block configuration that the UI shows and the API returns.
_SECRET_VALUE_KEYS = frozenset(
    {"connectionstring", "password", "syncpassword", "token", "key", "crt", "cacrt", "privatekey"}
)
# Values the block sets from dedicated fields; a second source would make the digest ambiguous.
_MANAGED_VALUE_PATHS = frozenset(
    {
        "httpEnabled",
        "service.clusterIP",
        "pvc.storageClassName",
        "pvc.storageRequest",
        "acrEdge",
        # transport: acr-edge issues the certificate and names its Secret
        "tls",
        "cert-manager",
    }
)


def _walk_keys(value: Any, prefix: str = "") -> list[str]:
    paths: list[str] = []
    if isinstance(value, dict):
        for key, sub in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            paths.append(path)
            paths.extend(_walk_keys(sub, path))
    elif isinstance(value, list):
        for item in value:
            paths.extend(_walk_keys(item, prefix))
    return paths


def check_chart_values(value: dict[str, Any]) -> dict[str, Any]:
    """Extra Helm values: never a secret, never a value a dedicated block field sets."""
    paths = _walk_keys(value)
    for path in paths:  # a secret is named first, even under a managed path
        leaf = path.rsplit(".", 1)[-1].lower().replace("-", "").replace("_", "")
        if leaf in _SECRET_VALUE_KEYS or "password" in leaf or "connectionstring" in leaf:
            raise ValueError(
                f"chart_values.{path} would carry a secret; secrets never go in block "
                "configuration (the connection string is supplied by the flow)"
            )
    for path in paths:
        if path in _MANAGED_VALUE_PATHS:
            raise ValueError(
                f"chart_values.{path} is set from a dedicated block field; use that field"
            )
    return value


def check_ssh_host(value: str, field: str = "ssh_host") -> str:
    if not patterns.matches(forms.SSH_HOST, value):
        raise ValueError(
            f"{field} must be a host name or IP address without spaces, not starting with "
            "'-' (e.g. k3s-server-1.plant01.example.com or 10.0.0.5)"
        )
    return value


def check_ssh_user(value: str) -> str:
    try:
        return names.validate_ssh_user(value)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def check_unit_name(value: str, field: str) -> str:
    if not patterns.matches(patterns.SYSTEMD_UNIT, value):
        raise ValueError(f"{field} {value!r} is not a systemd unit name (like k3s or k3s-agent)")
    return value


def check_known_hosts(value: list[str], field: str = "known_hosts") -> list[str]:
    """known_hosts lines parsed as ssh does; comments and blanks dropped."""
    from paramiko.hostkeys import HostKeyEntry

    cleaned = []
    for i, line in enumerate(value):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = HostKeyEntry.from_line(line)
        except Exception as exc:  # paramiko raises several types for bad base64
            raise ValueError(f"{field}[{i}] is not a known_hosts line: {exc}") from None
        if entry is None:
            raise ValueError(f"{field}[{i}] is not a known_hosts line")
        cleaned.append(line)
    return cleaned


class NodeOverride(BaseModel):
    """One node reached differently from the site's defaults (its InternalIP with the site's
    SSH port and user). Only the fields given here differ."""

    model_config = ConfigDict(hide_input_in_errors=True, extra="forbid")

    name: str = Field(
        title="Node name",
        description="The Kubernetes node name, as `kubectl get nodes` prints it. Required. "
        "Example: `agent-2`.",
    )
    ssh_host: str | None = Field(
        default=None,
        title="SSH host",
        description="Host name or address to reach this node at. Default: the node's "
        "InternalIP. Example: `agent-2.plant01.example.com`.",
        json_schema_extra=forms.pattern(forms.SSH_HOST),
    )
    ssh_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        title="SSH port",
        description="SSH port of this node (1-65535). Default: the site's SSH port. "
        "Example: `2222`.",
    )
    ssh_user: str | None = Field(
        default=None,
        title="SSH user",
        description="SSH user on this node (POSIX name: lowercase letters, digits, `_`, `.`, "
        "`-`). Default: the site's SSH user. Example: `edge`.",
        json_schema_extra=forms.pattern(patterns.SSH_USER),
    )
    known_hosts: list[str] = Field(
        default_factory=list,
        title="Pinned host keys",
        description="known_hosts lines pinning this node's host key; the site's pinned keys "
        "are searched as well. Default: none. Example: "
        "`10.0.0.7 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...`.",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not patterns.matches(patterns.DNS1123_SUBDOMAIN, value):
            raise ValueError(f"nodes: {value!r} is not a Kubernetes node name")
        return value

    @field_validator("ssh_host")
    @classmethod
    def _check_host(cls, value: str | None) -> str | None:
        return None if value is None else check_ssh_host(value)

    @field_validator("ssh_user")
    @classmethod
    def _check_user(cls, value: str | None) -> str | None:
        return None if value is None else check_ssh_user(value)

    @field_validator("known_hosts")
    @classmethod
    def _check_known_hosts(cls, value: list[str]) -> list[str]:
        return check_known_hosts(value)


def check_node_overrides(value: list[Any]) -> list[Any]:
    """One override per node name: two would leave which one applies to chance."""
    seen: set[str] = set()
    for override in value:
        if override.name in seen:
            raise ValueError(f"nodes: node {override.name} is given twice")
        seen.add(override.name)
    return value
