"""Per-node settings of an `EdgeSite`: how one node of the cluster is reached where it differs
from the site's SSH settings, and the field checks the site block shares with it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from model import names, patterns
from model.errors import InputError


def check_ssh_host(value: str, field: str = "ssh_host") -> str:
    if not value or any(c.isspace() for c in value) or value.startswith("-"):
        raise ValueError(f"{field} must be a host name or IP address without spaces")
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
        description="The Kubernetes node name (as `kubectl get nodes` shows it).",
    )
    ssh_host: str | None = Field(
        default=None,
        title="SSH host",
        description="Host name or address to reach this node at, instead of its InternalIP.",
    )
    ssh_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        title="SSH port",
        description="SSH port of this node, instead of the site's ssh_port.",
    )
    ssh_user: str | None = Field(
        default=None,
        title="SSH user",
        description="SSH user on this node, instead of the site's ssh_user.",
    )
    known_hosts: list[str] = Field(
        default_factory=list,
        title="Pinned host keys",
        description="known_hosts lines pinning this node's host key (the site's known_hosts "
        "are searched as well).",
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
