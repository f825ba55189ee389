"""The `EdgeSite` block: how to reach an edge K3s/RKE2 cluster's nodes and deploy onto it."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from blocks.edge_node import (
    NodeOverride,
    check_known_hosts,
    check_node_overrides,
    check_ssh_host,
    check_unit_name,
)
from model import names
from model.errors import InputError

# Distribution defaults; every path stays overridable on the block.
DISTRIBUTION_DEFAULTS: dict[str, dict[str, str]] = {
    "k3s": {
        "registries_path": "/etc/rancher/k3s/registries.yaml",
        "kubeconfig_path": "/etc/rancher/k3s/k3s.yaml",
        "service_name": "k3s",
        "agent_service_name": "k3s-agent",
        "hosts_dir": "/var/lib/rancher/k3s/agent/etc/containerd/certs.d",
    },
    "rke2": {
        "registries_path": "/etc/rancher/rke2/registries.yaml",
        "kubeconfig_path": "/etc/rancher/rke2/rke2.yaml",
        "service_name": "rke2-server",
        "agent_service_name": "rke2-agent",
        "hosts_dir": "/var/lib/rancher/rke2/agent/etc/containerd/certs.d",
    },
}

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


def _rule(check: Callable[..., Any], *args: Any) -> Any:
    """Run a model.names rule as a pydantic validator (ValueError carries the rule's message)."""
    try:
        return check(*args)
    except InputError as exc:
        raise ValueError(str(exc)) from None


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


class EdgeSite(Block):
    """One edge K3s or RKE2 cluster that hosts a connected registry.

    ``ssh_host`` is one server of the cluster, reached over SSH with a pinned host key. Every
    node the Kubernetes API lists is reached at its InternalIP with the site's SSH settings
    (``nodes`` overrides host, port, user and pinned key per node), through the ``ssh_host``
    session as a jump host when ``ssh_jump`` is on. The Kubernetes API is reached either through
    an SSH port forward using the node's own kubeconfig (``kube_access="ssh-tunnel"``, default)
    or with a kubeconfig stored on the block (``kube_access="kubeconfig"``).

    ``auth_model`` decides where the client-token credentials for image pulls live:

    * ``"pull-secret"`` (default): a ``kubernetes.io/dockerconfigjson`` secret per app namespace
      for the connected registry's host. Credentials stay in the cluster, scoped per namespace,
      and rotate without restarting K3s. Workloads must pull ``<cr-host>/<repo>:<tag>``.
    * ``"node"``: the credentials go into ``registries.yaml`` ``configs.<host>.auth``, because
      kubelet pull secrets are never sent to a mirror. Needed when workloads pull by the
      upstream name (``contoso.azurecr.io/repo``) through the mirror; the cost is a node-wide
      credential on disk (mode 0600) and a K3s restart on every rotation.

    Example:
        ```python
        from blocks.edge_site import EdgeSite
        site = EdgeSite.load("plant01")
        ```
    """

    # Validation errors must not echo rejected input: it can be a key, a kubeconfig or a value
    # that was refused precisely because it carries a secret.
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_slug: ClassVar[str] = "edge-site"
    _block_type_name: ClassVar[str] = "Edge Site"
    _description: ClassVar[str] = "An edge K3s/RKE2 cluster hosting an ACR connected registry."

    name: str = Field(description="Connected registry name (lowercase alphanumeric, 5-50).")
    ssh_host: str
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_user: str = "root"
    ssh_private_key: SecretStr
    ssh_key_passphrase: SecretStr | None = None
    known_hosts: list[str] = Field(
        default_factory=list, description="Pinned known_hosts lines for the node's host key."
    )
    trust_on_first_use: bool = Field(
        default=False,
        description="Accept and record the host key when none is pinned (save the block after).",
    )
    sudo: bool = Field(default=False, description="Run privileged commands via `sudo -n`.")
    distribution: Literal["k3s", "rke2"] = "k3s"
    registries_path: str = ""
    kubeconfig_path: str = ""
    service_name: str = Field(
        default="", description="Service restarted on servers (k3s / rke2-server by default)."
    )
    agent_service_name: str = Field(
        default="",
        title="Agent service name",
        description="Service restarted on agent nodes (k3s-agent / rke2-agent by default).",
    )
    hosts_dir: str = ""
    kube_access: Literal["ssh-tunnel", "kubeconfig"] = "ssh-tunnel"
    kubeconfig: SecretStr | None = None
    chart_ref: str = "oci://mcr.microsoft.com/acr/connected-registry/chart"
    chart_version: str | None = None
    chart_values: dict[str, Any] = Field(default_factory=dict)
    namespace: str = "connected-registry"
    release_name: str = "connected-registry"
    storage_class: str | None = None
    storage_request: str | None = None
    transport: Literal["https", "http"] = Field(
        default="https",
        description="https (default): the registry serves TLS with a certificate from the "
        "site's own CA, which every node trusts. http: the first version's plain-HTTP mode "
        "(no encryption, no server identity on the site network).",
    )
    service_cluster_ip: str | None = None
    service_cidr: str = "10.43.0.0/16"
    app_namespaces: list[str] = Field(default_factory=lambda: ["default"])
    pull_secret_name: str = "acr-edge-pull"
    patch_default_service_account: bool = False
    auth_model: Literal["pull-secret", "node"] = "pull-secret"
    tags: list[str] = Field(default_factory=list)
    connect_timeout: float = Field(default=10.0, gt=0)
    command_timeout: float = Field(default=120.0, gt=0)
    helm_timeout: float = Field(default=300.0, gt=0)
    ready_timeout: float = Field(default=300.0, gt=0)
    restart_timeout: float = Field(default=180.0, gt=0)
    canary_timeout: float = Field(default=120.0, gt=0)
    nodes: list[NodeOverride] = Field(
        default_factory=list,
        title="Node overrides",
        description="Per node (by name): SSH host, port, user or pinned host key where they "
        "differ from the site's; every other node is reached at its InternalIP.",
    )
    ssh_jump: bool = Field(
        default=True,
        title="Jump through ssh_host",
        description="Reach the other nodes through the ssh_host session as a jump host "
        "(ProxyJump; each hop's host key pinned). Off: connect to each node directly.",
    )
    node_order: Literal["agents-first", "servers-first"] = Field(
        default="agents-first",
        title="Node order",
        description="Which nodes converge first, one at a time (each role by name).",
    )
    restart_policy: Literal["auto", "always", "never"] = Field(
        default="auto",
        title="Restart policy",
        description="auto: restart K3s only when containerd cannot pick the change up "
        "(node credentials); always: restart on every change; never: write and report "
        "'restart pending'.",
    )
    retry_attempts: int = Field(
        default=6,
        ge=1,
        le=50,
        description="Attempts (first try included) per SSH connect and per idempotent node "
        "read when the connection drops or times out.",
    )

    @model_validator(mode="before")
    @classmethod
    def _distribution_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        distribution = data.get("distribution", "k3s")
        defaults = DISTRIBUTION_DEFAULTS.get(str(distribution))
        if defaults is None:
            return data  # the Literal check reports the bad distribution
        data = dict(data)
        for key, value in defaults.items():
            if not data.get(key):
                data[key] = value
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return str(_rule(names.validate_cr_name, value))

    @field_validator("ssh_host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        return check_ssh_host(value)

    @field_validator("ssh_user")
    @classmethod
    def _check_user(cls, value: str) -> str:
        return str(_rule(names.validate_ssh_user, value))

    @field_validator("known_hosts")
    @classmethod
    def _check_known_hosts(cls, value: list[str]) -> list[str]:
        return check_known_hosts(value)

    @field_validator("service_name", "agent_service_name")
    @classmethod
    def _check_service(cls, value: str, info: Any) -> str:
        return check_unit_name(value, info.field_name)

    @field_validator("nodes")
    @classmethod
    def _check_nodes(cls, value: list[NodeOverride]) -> list[NodeOverride]:
        return check_node_overrides(value)

    @field_validator("namespace", "app_namespaces", "release_name", "pull_secret_name")
    @classmethod
    def _check_dns_labels(cls, value: str | list[str], info: Any) -> str | list[str]:
        if isinstance(value, str):
            return str(_rule(names.validate_dns_label, value, info.field_name))
        return list(_rule(names.validate_dns_labels, value, info.field_name))

    @field_validator("service_cidr")
    @classmethod
    def _check_cidr(cls, value: str) -> str:
        try:
            ipaddress.ip_network(value)
        except ValueError:
            raise ValueError(f"service_cidr {value!r} is not a CIDR like 10.43.0.0/16") from None
        return value

    @field_validator("chart_values")
    @classmethod
    def _check_chart_values(cls, value: dict[str, Any]) -> dict[str, Any]:
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

    @model_validator(mode="after")
    def _check_consistency(self) -> EdgeSite:
        if self.service_cluster_ip is not None:
            try:
                ip = ipaddress.ip_address(self.service_cluster_ip)
            except ValueError:
                raise ValueError(
                    f"service_cluster_ip {self.service_cluster_ip!r} is not an IP address"
                ) from None
            net = ipaddress.ip_network(self.service_cidr)
            if ip not in net or ip in (net.network_address, net.broadcast_address):
                raise ValueError(
                    f"service_cluster_ip {ip} is outside the service CIDR {net} "
                    "(set service_cidr if the cluster uses another one)"
                )
        if self.kube_access == "kubeconfig" and self.kubeconfig is None:
            raise ValueError("kube_access='kubeconfig' needs the kubeconfig field")
        return self

    @property
    def http_enabled(self) -> bool:
        """The chart's ``httpEnabled``: derived from ``transport``, never set on its own."""
        return self.transport == "http"

    @property
    def resource(self) -> str:
        """How errors and results name this site."""
        return f"site {self.name} ({self.ssh_user}@{self.ssh_host}:{self.ssh_port})"
