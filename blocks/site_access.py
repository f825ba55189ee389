"""Who an edge site is and how acr-edge reaches its nodes: the connected registry's name and the
SSH settings. `EdgeSite` (blocks/edge_site.py) adds the cluster and the runtime on top; the split
keeps each module readable (one resource each) and the block form in this order."""

from __future__ import annotations

from typing import ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator

from blocks import forms
from blocks.edge_node import (
    NodeOverride,
    check_known_hosts,
    check_node_overrides,
    check_ssh_host,
    check_ssh_user,
)
from model import names, patterns
from model.errors import InputError


class SiteAccess(Block):
    """The name and SSH access of an edge site; not a block type of its own (see EdgeSite).

    Example:
        ```python
        from blocks.edge_site import EdgeSite

        site = EdgeSite.load("BLOCK_NAME")
        ```
    """

    # Validation errors must not echo rejected input: it can be a key, a kubeconfig or a value
    # that was refused precisely because it carries a secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_slug: ClassVar[str] = "acr-edge-site-access"

    name: str = Field(
        title="Connected registry name",
        description="Name of the site's connected registry in the parent registry: 5-50 "
        "lowercase letters and digits. Required. Example: `plant01`.",
        json_schema_extra=forms.pattern(patterns.CR_NAME),
    )
    ssh_host: str = Field(
        title="SSH host",
        description="Host name or address of one server node of the cluster, reached over "
        "SSH. Required. Example: `k3s-1.plant01.example.com` or `10.0.0.5`.",
        json_schema_extra=forms.pattern(forms.SSH_HOST),
    )
    ssh_port: int = Field(
        default=22,
        ge=1,
        le=65535,
        title="SSH port",
        description="SSH port of the SSH host (1-65535). Default: `22`. Example: `2222`.",
    )
    ssh_user: str = Field(
        default="root",
        title="SSH user",
        description="User acr-edge logs in as (POSIX name: lowercase letters, digits, `_`, "
        "`.`, `-`, at most 32). Default: `root`; another user needs Sudo on. Example: `edge`.",
        json_schema_extra=forms.pattern(patterns.SSH_USER),
    )
    ssh_private_key: SecretStr = Field(
        title="SSH private key",
        description="The whole private key file (OpenSSH or PEM; Ed25519, ECDSA or RSA), with "
        "its line breaks. Stored encrypted, shown as `********` once saved. Required. Example: "
        "the contents of `~/.ssh/id_ed25519`, from `-----BEGIN OPENSSH PRIVATE KEY-----` to "
        "its END line.",
        json_schema_extra=forms.multiline_secret,
    )
    ssh_key_passphrase: SecretStr | None = Field(
        default=None,
        title="SSH key passphrase",
        description="Passphrase of an encrypted private key. Default: none (the key is not "
        "encrypted). Example: the passphrase given to `ssh-keygen`.",
    )
    known_hosts: list[str] = Field(
        default_factory=list,
        title="Pinned host keys",
        description="known_hosts lines pinning the nodes' SSH host keys (as `ssh-keyscan` "
        "prints them, after checking them). Default: none, which refuses to connect unless "
        "Trust on first use is on. Example: `10.0.0.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...`.",
    )
    trust_on_first_use: bool = Field(
        default=False,
        title="Trust on first use",
        description="Accept and pin a host key the first time a node is reached when none is "
        "pinned; the run saves it on the block. Default: off (every host key must be pinned). "
        "Example: on for a lab site.",
    )
    sudo: bool = Field(
        default=False,
        title="Sudo",
        description="Run privileged commands through `sudo -n` (the SSH user needs "
        "passwordless sudo for them). Default: off (the SSH user is root). Example: on with "
        "SSH user `edge`.",
    )
    connect_timeout: float = Field(
        default=10.0,
        gt=0,
        title="SSH connect timeout",
        description="Seconds one SSH connect may take. Default: `10`. Example: `30`.",
    )
    command_timeout: float = Field(
        default=120.0,
        gt=0,
        title="Command timeout",
        description="Seconds one command on a node may take. Default: `120`. Example: `300`.",
    )
    nodes: list[NodeOverride] = Field(
        default_factory=list,
        title="Node overrides",
        description="Per node (by name): SSH host, port, user or pinned host key where they "
        "differ from the site's; every other node is reached at its InternalIP. Default: "
        "none. Example: `agent-2` at `agent-2.plant01.example.com`.",
    )
    ssh_jump: bool = Field(
        default=True,
        title="Jump through the SSH host",
        description="Reach the other nodes through the SSH host's session as a jump host "
        "(ProxyJump; each hop's host key pinned). Off: connect to each node directly. "
        "Default: on. Example: off when every node is reachable.",
    )
    node_order: Literal["agents-first", "servers-first"] = Field(
        default="agents-first",
        title="Node order",
        description="Which nodes converge first, one at a time (each role by name). Default: "
        "`agents-first`. Example: `servers-first`.",
    )
    retry_attempts: int = Field(
        default=6,
        ge=1,
        le=50,
        title="Retry attempts",
        description="Attempts (first try included, 1-50) per SSH connect and per idempotent "
        "node read when the connection drops or times out. Default: `6`. Example: `10`.",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        try:
            return names.validate_cr_name(value)
        except InputError as exc:
            raise ValueError(f"name: {exc}") from None

    @field_validator("ssh_host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return check_ssh_host(value)

    @field_validator("ssh_user")
    @classmethod
    def _check_user(cls, value: str) -> str:
        return check_ssh_user(value)

    @field_validator("ssh_private_key")
    @classmethod
    def _check_key(cls, value: SecretStr) -> SecretStr:
        # A key pasted into a one-line input arrives with spaces for line breaks.
        return SecretStr(forms.repair_private_key(value.get_secret_value()))

    @field_validator("known_hosts")
    @classmethod
    def _check_known_hosts(cls, value: list[str]) -> list[str]:
        return check_known_hosts(value)

    @field_validator("nodes")
    @classmethod
    def _check_nodes(cls, value: list[NodeOverride]) -> list[NodeOverride]:
        return check_node_overrides(value)

    @property
    def resource(self) -> str:
        """How errors and results name this site."""
        return f"site {self.name} ({self.ssh_user}@{self.ssh_host}:{self.ssh_port})"
