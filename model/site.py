"""What site tasks read from a site's settings, and the site data types flows pass around.

Tasks type against :class:`SiteSettings` instead of importing the ``EdgeSite`` block (tasks
never import blocks); the block satisfies the protocol because it has these attributes. The
records below are plain data: flows import them from here, not from the I/O modules that
produce them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import SecretStr


class NodeOverrideSettings(Protocol):
    """How one node is reached where it differs from the site's defaults (by node name)."""

    @property
    def name(self) -> str: ...
    @property
    def ssh_host(self) -> str | None: ...
    @property
    def ssh_port(self) -> int | None: ...
    @property
    def ssh_user(self) -> str | None: ...
    @property
    def known_hosts(self) -> list[str]: ...


class SiteSettings(Protocol):
    """The attributes of an edge site that the site tasks (and the SSH session) read.

    Read-only properties so that any object with these attributes satisfies it (the
    ``EdgeSite`` block, a test double of plain data). ``known_hosts`` is the one list a task
    appends to (trust on first use); the caller saves the block.
    """

    @property
    def name(self) -> str: ...
    @property
    def resource(self) -> str: ...

    # SSH
    @property
    def ssh_host(self) -> str: ...
    @property
    def ssh_port(self) -> int: ...
    @property
    def ssh_user(self) -> str: ...
    @property
    def ssh_private_key(self) -> SecretStr: ...
    @property
    def ssh_key_passphrase(self) -> SecretStr | None: ...
    @property
    def known_hosts(self) -> list[str]: ...
    @property
    def trust_on_first_use(self) -> bool: ...
    @property
    def sudo(self) -> bool: ...
    @property
    def connect_timeout(self) -> float: ...
    @property
    def command_timeout(self) -> float: ...

    # the cluster's nodes
    @property
    def nodes(self) -> Sequence[NodeOverrideSettings]: ...
    @property
    def ssh_jump(self) -> bool: ...
    @property
    def node_order(self) -> str: ...
    @property
    def restart_policy(self) -> str: ...
    @property
    def agent_service_name(self) -> str: ...

    # node paths and service
    @property
    def registries_path(self) -> str: ...
    @property
    def kubeconfig_path(self) -> str: ...
    @property
    def service_name(self) -> str: ...
    @property
    def hosts_dir(self) -> str: ...
    @property
    def restart_timeout(self) -> float: ...

    # Kubernetes access
    @property
    def kube_access(self) -> str: ...
    @property
    def kubeconfig(self) -> SecretStr | None: ...

    # the Helm release
    @property
    def chart_ref(self) -> str: ...
    @property
    def chart_version(self) -> str | None: ...
    @property
    def chart_values(self) -> dict[str, Any]: ...
    @property
    def namespace(self) -> str: ...
    @property
    def release_name(self) -> str: ...
    @property
    def storage_class(self) -> str | None: ...
    @property
    def storage_request(self) -> str | None: ...
    @property
    def transport(self) -> str: ...
    @property
    def http_enabled(self) -> bool: ...
    @property
    def service_cluster_ip(self) -> str | None: ...
    @property
    def helm_timeout(self) -> float: ...
    @property
    def ready_timeout(self) -> float: ...

    # consumers of the client credential
    @property
    def app_namespaces(self) -> list[str]: ...
    @property
    def pull_secret_name(self) -> str: ...
    @property
    def patch_default_service_account(self) -> bool: ...
    @property
    def auth_model(self) -> str: ...
    @property
    def canary_timeout(self) -> float: ...


@dataclass(frozen=True)
class NodeFact:
    """One node of the cluster as the Kubernetes API lists it (no secret).

    ``role`` is ``"server"`` when the node carries the control-plane or master role label,
    else ``"agent"``; ``labels`` are sorted (key, value) pairs so that facts compare equal.
    """

    name: str
    role: str
    internal_ip: str
    ready: bool
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NodeTarget:
    """How acr-edge reaches one node: an SSH endpoint, the service to restart on it, and
    whether the SSH connection goes through the site's session as a jump host.

    ``known_hosts`` are the node's own pinned lines from its override (the site's list is
    searched as well).
    """

    name: str
    role: str
    host: str
    port: int
    user: str
    service: str
    via_jump: bool = False
    known_hosts: tuple[str, ...] = ()

    @property
    def resource(self) -> str:
        return f"node {self.name} ({self.user}@{self.host}:{self.port})"


@dataclass(frozen=True)
class SyncCredentialRef:
    """Which sync-token password the connection string carries (never the password)."""

    token: str
    slot: str
    created: str


@dataclass(frozen=True)
class PullSecretMeta:
    """Which client-token password a consumer (pull secret, node) carries; no value."""

    token: str
    slot: str
    created: str


@dataclass(frozen=True)
class NodeAuth:
    """Client credentials for the node auth model (``configs.<host>.auth``).

    ``slot``/``created`` say which token password this is; when given, registries.yaml records
    them in its acr-edge header so later runs know which slot the node uses.
    """

    username: str
    password: SecretStr
    slot: str = ""
    created: str = ""


@dataclass(frozen=True)
class CanaryResult:
    ok: bool
    reason: str
    pod: str = ""


@dataclass(frozen=True)
class ReleaseFact:
    """The Helm release as read (no secret): ``status`` None when there is no release.

    ``credential_reusable``: the release holds a connection string for exactly its recorded
    sync credential, so a settings-only upgrade can re-use it (read back on the node side).
    ``values`` are the release's values with secrets masked (for a plan diff and for naming
    the changed settings).
    """

    status: str | None
    digest: str | None = None
    sync_ref: SyncCredentialRef | None = None
    credential_reusable: bool = False
    values: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def exists(self) -> bool:
        return self.status is not None


@dataclass(frozen=True)
class SiteCheck:
    """One read-only health fact for site-status: ok or not, and what was seen."""

    ok: bool
    value: str


@dataclass(frozen=True)
class MirrorRoute:
    """How containerd on every node reaches the connected registry under the name pods use.

    ``host`` is the ``mirrors`` key (the image host pods and pull secrets name, e.g.
    ``10.43.0.10:443``); ``endpoints`` are tried in order. Over https ``ca_host`` is the
    ``configs`` key of the https endpoint, whose ``tls.ca_file`` is ``ca_file`` on the node,
    holding ``ca_text`` (the site CA certificate; public). No secret here.
    """

    host: str
    endpoints: tuple[str, ...]
    ca_host: str | None = None
    ca_file: str | None = None
    ca_text: str | None = None

    @classmethod
    def http(cls, host: str) -> MirrorRoute:
        return cls(host, (f"http://{host}",))

    @property
    def https(self) -> bool:
        return self.ca_host is not None


def as_route(route: MirrorRoute | str) -> MirrorRoute:
    """A bare host is the first version's plain-http mirror."""
    return route if isinstance(route, MirrorRoute) else MirrorRoute.http(route)
