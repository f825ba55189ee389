"""The `EdgeSite` block: how to reach an edge K3s/RKE2 cluster's nodes and deploy onto it."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from blocks import forms
from blocks.edge_node import check_chart_values, check_unit_name
from blocks.site_access import SiteAccess
from model import names, patterns
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


def _rule(check: Callable[..., Any], *args: Any) -> Any:
    """Run a model.names rule as a pydantic validator (ValueError carries the rule's message)."""
    try:
        return check(*args)
    except InputError as exc:
        raise ValueError(str(exc)) from None


# List items the form checks one by one (the validators below decide).
_Namespace = Annotated[str, Field(json_schema_extra=forms.pattern(patterns.DNS1123_LABEL))]
_Tag = Annotated[str, Field(json_schema_extra=forms.pattern(patterns.BLOCK_NAME))]
_DNS_LABEL_RULE = "1-63 lowercase letters, digits and `-`, starting and ending alphanumeric"


class EdgeSite(SiteAccess):
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
        Load a saved site and read how it is reached:
        ```python
        from blocks.edge_site import EdgeSite

        site = EdgeSite.load("BLOCK_NAME")
        print(site.resource)
        ```
    """

    _block_type_slug: ClassVar[str] = "edge-site"
    _block_type_name: ClassVar[str] = "Edge Site"
    _description: ClassVar[str] = "An edge K3s/RKE2 cluster hosting an ACR connected registry."
    _logo_url: ClassVar[Any] = forms.KUBERNETES_LOGO
    _documentation_url: ClassVar[Any] = forms.CONNECTED_REGISTRY_DOCS

    distribution: Literal["k3s", "rke2"] = Field(
        default="k3s",
        title="Kubernetes distribution",
        description="Which distribution the cluster runs; it sets the default paths and "
        "service names below. Default: `k3s`. Example: `rke2`.",
    )
    registries_path: str = Field(
        default="",
        title="Mirror configuration path",
        description="Path of the containerd mirror configuration on every node. Default "
        "(empty): `/etc/rancher/k3s/registries.yaml` for K3s, `/etc/rancher/rke2/registries.yaml`"
        " for RKE2. Example: `/etc/rancher/k3s/registries.yaml`.",
    )
    kubeconfig_path: str = Field(
        default="",
        title="Kubeconfig path on the node",
        description="Path of the cluster's kubeconfig on the SSH host, read for the SSH "
        "tunnel access. Default (empty): `/etc/rancher/k3s/k3s.yaml` for K3s, "
        "`/etc/rancher/rke2/rke2.yaml` for RKE2. Example: `/etc/rancher/k3s/k3s.yaml`.",
    )
    service_name: str = Field(
        default="",
        title="Server service name",
        description="systemd unit restarted on server nodes when the mirror needs it. Default "
        "(empty): `k3s` for K3s, `rke2-server` for RKE2. Example: `k3s`.",
        json_schema_extra=forms.pattern(patterns.SYSTEMD_UNIT, optional_empty=True),
    )
    agent_service_name: str = Field(
        default="",
        title="Agent service name",
        description="systemd unit restarted on agent nodes when the mirror needs it. Default "
        "(empty): `k3s-agent` for K3s, `rke2-agent` for RKE2. Example: `k3s-agent`.",
        json_schema_extra=forms.pattern(patterns.SYSTEMD_UNIT, optional_empty=True),
    )
    hosts_dir: str = Field(
        default="",
        title="Containerd hosts directory",
        description="containerd's `certs.d` directory, where the registry's CA file goes on "
        "every node. Default (empty): `/var/lib/rancher/k3s/agent/etc/containerd/certs.d` "
        "(RKE2: `/var/lib/rancher/rke2/...`). Example: the default.",
    )
    kube_access: Literal["ssh-tunnel", "kubeconfig"] = Field(
        default="ssh-tunnel",
        title="Kubernetes API access",
        description="`ssh-tunnel`: reach the API through an SSH port forward with the node's "
        "own kubeconfig (nothing more to store). `kubeconfig`: use the Kubeconfig field "
        "instead. Default: `ssh-tunnel`. Example: `kubeconfig` when the API is reachable "
        "directly.",
    )
    kubeconfig: SecretStr | None = Field(
        default=None,
        title="Kubeconfig",
        description="The whole kubeconfig file (YAML or JSON), with its line breaks; used "
        "only when Kubernetes API access is `kubeconfig`. Stored encrypted. Default: none. "
        "Example: `/etc/rancher/k3s/k3s.yaml` with `server:` changed to an address you reach.",
        json_schema_extra=forms.multiline_secret,
    )
    chart_ref: str = Field(
        default="oci://mcr.microsoft.com/acr/connected-registry/chart",
        title="Helm chart",
        description="Helm chart reference of the connected registry runtime. Default: "
        "`oci://mcr.microsoft.com/acr/connected-registry/chart`. Example: a mirror of it, "
        "`oci://myregistry.azurecr.io/helm/connected-registry`.",
    )
    chart_version: str | None = Field(
        default=None,
        title="Helm chart version",
        description="Chart version to install or upgrade to. Default: none (the latest). "
        "Example: `0.3.0`.",
    )
    chart_values: dict[str, Any] = Field(
        default_factory=dict,
        title="Extra Helm values",
        description="Further chart values, never secrets and never the values a field here "
        "sets (TLS, service IP, storage). Default: none. Example: "
        '`{"resources": {"limits": {"memory": "1Gi"}}}`.',
    )
    namespace: str = Field(
        default="connected-registry",
        title="Runtime namespace",
        description=f"Kubernetes namespace of the runtime ({_DNS_LABEL_RULE}). Default: "
        "`connected-registry`. Example: `acr`.",
        json_schema_extra=forms.pattern(patterns.DNS1123_LABEL),
    )
    release_name: str = Field(
        default="connected-registry",
        title="Helm release name",
        description=f"Name of the runtime's Helm release ({_DNS_LABEL_RULE}). Default: "
        "`connected-registry`. Example: `cr-plant01`.",
        json_schema_extra=forms.pattern(patterns.DNS1123_LABEL),
    )
    storage_class: str | None = Field(
        default=None,
        title="Storage class",
        description="StorageClass of the runtime's volume. Default: none (the cluster's "
        "default class; K3s: `local-path`). Example: `longhorn`.",
    )
    storage_request: str | None = Field(
        default=None,
        title="Storage request",
        description="Size of the runtime's volume, a Kubernetes quantity. Default: none (the "
        "chart's). Example: `50Gi`.",
        json_schema_extra=forms.pattern(forms.QUANTITY),
    )
    transport: Literal["https", "http"] = Field(
        default="https",
        title="Transport",
        description="`https`: the registry serves TLS with a certificate from the site's own "
        "CA, which every node trusts. `http`: plain HTTP (no encryption, no server identity on "
        "the site network). Default: `https`. Example: `https`.",
    )
    service_cluster_ip: str | None = Field(
        default=None,
        title="Service cluster IP",
        description="Fixed ClusterIP of the registry's service, inside the service CIDR (the "
        "nodes pull from it; https names it in the certificate). Default: none (Kubernetes "
        "picks one). Example: `10.43.0.50`.",
    )
    service_cidr: str = Field(
        default="10.43.0.0/16",
        title="Service CIDR",
        description="The cluster's service network, which the service cluster IP must be in. "
        "Default: `10.43.0.0/16` (K3s and RKE2). Example: `10.96.0.0/12`.",
    )
    app_namespaces: list[_Namespace] = Field(
        default_factory=lambda: ["default"],
        min_length=1,
        title="App namespaces",
        description="Kubernetes namespaces whose workloads pull from the connected registry: "
        f"each gets the pull secret ({_DNS_LABEL_RULE}; at least one). Default: `default`. "
        "Example: `apps`, `monitoring`.",
    )
    pull_secret_name: str = Field(
        default="acr-edge-pull",
        title="Pull secret name",
        description=f"Name of the pull secret in each app namespace ({_DNS_LABEL_RULE}). "
        "Default: `acr-edge-pull`. Example: `registry-pull`.",
        json_schema_extra=forms.pattern(patterns.DNS1123_LABEL),
    )
    patch_default_service_account: bool = Field(
        default=False,
        title="Patch default service account",
        description="Add the pull secret to each app namespace's `default` service account, "
        "so pods pull without naming it. Default: off. Example: on.",
    )
    auth_model: Literal["pull-secret", "node"] = Field(
        default="pull-secret",
        title="Pull credentials",
        description="`pull-secret`: a pull secret per app namespace; workloads pull "
        "`{registry-host}/{repo}:{tag}`. `node`: the credential goes into every node's "
        "registries.yaml, for workloads that pull the upstream name through the mirror (a "
        "restart per rotation). Default: `pull-secret`. Example: `node`.",
    )
    tags: list[_Tag] = Field(
        default_factory=list,
        title="Tags",
        description="Labels the fleet flows select sites by (lowercase letters, digits, `-`). "
        "Default: none. Example: `wave-1`, `emea`.",
    )
    helm_timeout: float = Field(
        default=300.0,
        gt=0,
        title="Helm timeout",
        description="Seconds a Helm install or upgrade may take. Default: `300`. Example: `600`.",
    )
    ready_timeout: float = Field(
        default=300.0,
        gt=0,
        title="Ready timeout",
        description="Seconds the runtime may take to be Ready and Online after an install. "
        "Default: `300`. Example: `900` on a slow link.",
    )
    restart_timeout: float = Field(
        default=180.0,
        gt=0,
        title="Restart timeout",
        description="Seconds K3s/RKE2 may take to restart and its node to be Ready again. "
        "Default: `180`. Example: `300`.",
    )
    canary_timeout: float = Field(
        default=120.0,
        gt=0,
        title="Canary pull timeout",
        description="Seconds the test pod that proves a pull may take. Default: `120`. "
        "Example: `300`.",
    )
    restart_policy: Literal["auto", "always", "never"] = Field(
        default="auto",
        title="Restart policy",
        description="`auto`: restart K3s only when containerd cannot pick the change up "
        "(node credentials); `always`: restart on every change; `never`: write and report "
        "'restart pending'. Default: `auto`. Example: `never` in a change freeze.",
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

    @field_validator("service_name", "agent_service_name")
    @classmethod
    def _check_service(cls, value: str, info: Any) -> str:
        return check_unit_name(value, info.field_name)

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

    @field_validator("kubeconfig")
    @classmethod
    def _check_kubeconfig(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            forms.check_kubeconfig(value.get_secret_value())
        return value

    @field_validator("storage_request")
    @classmethod
    def _check_quantity(cls, value: str | None) -> str | None:
        if value is not None and not patterns.matches(forms.QUANTITY, value):
            raise ValueError(
                f"storage_request {value!r} is not a Kubernetes quantity (e.g. 50Gi or 500Mi)"
            )
        return value

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            _rule(names.validate_block_name, tag, "tags")
        return value

    @field_validator("chart_values")
    @classmethod
    def _check_chart_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_chart_values(value)

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
