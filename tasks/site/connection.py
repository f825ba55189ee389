"""One connection per site per flow run: the SSH session plus a Kubernetes ApiClient.

With ``kube_access="ssh-tunnel"`` the node's own kubeconfig is read over SSH and its API server
is reached through an SSH port forward; TLS is still verified against the kubeconfig's CA and
the original server name. Key material never touches the disk: it lives in memfd files
(``/proc/self/fd/N``) that vanish when the connection closes.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import yaml
from kubernetes import client as k8s

# Imported here, not on first use: the client loads its API classes lazily, and CoreV1Api alone
# costs seconds to import (once per process, not inside a site's first step).
from kubernetes.client import AppsV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from model.errors import PermanentError
from model.retry import call_with_retry
from model.site import NodeTarget, SiteSettings
from tasks.site.ssh import CommandRunner, SshSession

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class SiteConnection:
    """What every site step receives: ``ssh`` for node commands/files, ``api`` for Kubernetes.

    ``node`` is None for the site's own connection (to ``ssh_host``); a connection to one node
    of the cluster (:meth:`for_node`) shares the site's API client and has its own ``ssh``.
    """

    site: SiteSettings
    ssh: CommandRunner
    api: k8s.ApiClient
    recorded_host_key: str | None = None
    node: NodeTarget | None = None
    _closers: list[Any] = field(default_factory=list, repr=False)

    @property
    def service(self) -> str:
        """The K3s/RKE2 unit on this connection's node (a server's for the site's own)."""
        return self.node.service if self.node is not None else self.site.service_name

    def for_node(
        self, target: NodeTarget, ssh: CommandRunner, *, recorded_host_key: str | None = None
    ) -> SiteConnection:
        """The connection to ``target`` over ``ssh``: same site and API, named after the node.
        Closing it closes nothing shared (the caller registers what it opened)."""
        return SiteConnection(
            site=self.site, ssh=ssh, api=self.api, recorded_host_key=recorded_host_key, node=target
        )

    @property
    def core(self) -> CoreV1Api:
        return CoreV1Api(self.api)

    @property
    def apps(self) -> AppsV1Api:
        return AppsV1Api(self.api)

    @property
    def resource(self) -> str:
        return self.node.resource if self.node is not None else self.site.resource

    def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()
        self._closers.clear()


@dataclass(frozen=True)
class _Answer:
    """A definite API answer (404/409/422) that must reach the caller, not the retry loop."""

    exc: ApiException


def kube_call(fn: Callable[[], T], what: str, *, attempts: int = 4) -> T:
    """One idempotent Kubernetes call, transient failures (timeouts, 429, 5xx, dropped
    connections) retried by the one retry helper; ApiException 404/409/422 re-raised as is,
    for the caller to read as an answer."""

    def call() -> T | _Answer:
        try:
            return fn()
        except ApiException as exc:
            if exc.status in (404, 409, 422):
                return _Answer(exc)
            raise

    result = call_with_retry(call, what=what, attempts=attempts, base_delay=0.3, max_delay=5)
    if isinstance(result, _Answer):
        raise result.exc
    return result


def api_status(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None


class _SecretFiles:
    """In-memory files for the client key/cert, closed (and so gone) with the connection."""

    def __init__(self) -> None:
        self._fds: list[int] = []
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    def path_for(self, name: str, data: bytes) -> str:
        if hasattr(os, "memfd_create"):
            fd = os.memfd_create(f"acr-edge-{name}", 0)
            os.write(fd, data)
            self._fds.append(fd)
            return f"/proc/{os.getpid()}/fd/{fd}"
        # Fallback (non-Linux): a 0600 file in a 0700 private dir, deleted on close.
        if self._tmpdir is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="acr-edge-kube-")
        path = os.path.join(self._tmpdir.name, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return path

    def close(self) -> None:
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


def _b64_field(obj: dict[str, Any], key: str) -> bytes | None:
    value = obj.get(f"{key}-data")
    if isinstance(value, str) and value:
        return base64.b64decode(value)
    return None


def parse_kubeconfig(text: str, *, resource: str) -> dict[str, Any]:
    """The current context's cluster and user, as plain dicts; errors never echo content."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError:
        raise PermanentError(
            "the node's kubeconfig does not parse as YAML",
            resource=resource,
            fix="check kubeconfig_path on the site block",
        ) from None
    if not isinstance(config, dict):
        raise PermanentError("the kubeconfig is not a mapping", resource=resource)

    def named(section: str, name: str | None) -> dict[str, Any]:
        items = config.get(section) or []
        for item in items:
            if isinstance(item, dict) and (name is None or item.get("name") == name):
                inner = item.get(section[:-1])
                if isinstance(inner, dict):
                    return inner
        raise PermanentError(
            f"the kubeconfig has no {section[:-1]} {name or ''}".rstrip(), resource=resource
        )

    current = config.get("current-context")
    context: dict[str, Any] = named("contexts", current) if config.get("contexts") else {}
    cluster = named("clusters", context.get("cluster"))
    user = named("users", context.get("user"))
    return {"cluster": cluster, "user": user}


def api_client_from_kubeconfig(
    text: str,
    *,
    resource: str,
    files: _SecretFiles,
    server_override: tuple[str, int] | None = None,
) -> k8s.ApiClient:
    parsed = parse_kubeconfig(text, resource=resource)
    cluster, user = parsed["cluster"], parsed["user"]
    server = cluster.get("server")
    if not isinstance(server, str) or not server.startswith("https://"):
        raise PermanentError(
            "the kubeconfig's server is not an https:// URL",
            resource=resource,
            fix="acr-edge only talks to a TLS-verified API server",
        )
    if cluster.get("insecure-skip-tls-verify"):
        raise PermanentError(
            "the kubeconfig disables TLS verification",
            resource=resource,
            fix="give the cluster's certificate-authority-data instead",
        )
    url = urlsplit(server)
    configuration = k8s.Configuration()
    configuration.verify_ssl = True
    ca = _b64_field(cluster, "certificate-authority")
    if ca is None and cluster.get("certificate-authority"):
        raise PermanentError(
            "the kubeconfig points at a CA file on the node; inline certificate-authority-data",
            resource=resource,
        )
    if ca is not None:
        configuration.ssl_ca_cert = files.path_for("ca.crt", ca)
    cert = _b64_field(user, "client-certificate")
    key = _b64_field(user, "client-key")
    if cert is not None and key is not None:
        configuration.cert_file = files.path_for("client.crt", cert)
        configuration.key_file = files.path_for("client.key", key)
    elif isinstance(user.get("token"), str):
        configuration.api_key = {"authorization": user["token"]}
        configuration.api_key_prefix = {"authorization": "Bearer"}
    else:
        raise PermanentError(
            "the kubeconfig user has neither inline client certificate/key nor a token",
            resource=resource,
        )
    if server_override is None:
        configuration.host = server.rstrip("/")
    else:
        local_host, local_port = server_override
        configuration.host = f"https://{local_host}:{local_port}"
        original = url.hostname or ""
        # The tunnel changes where we connect, not whom we trust: verify the certificate
        # against the name in the kubeconfig.
        if original and original not in ("127.0.0.1", "localhost", local_host):
            configuration.tls_server_name = original
    return k8s.ApiClient(configuration)


def _server_address(text: str, *, resource: str) -> tuple[str, int]:
    cluster = parse_kubeconfig(text, resource=resource)["cluster"]
    url = urlsplit(str(cluster.get("server", "")))
    return url.hostname or "127.0.0.1", url.port or 443


@contextlib.contextmanager
def open_site(site: SiteSettings, *, ssh: SshSession | None = None) -> Iterator[SiteConnection]:
    """Connect once; every step of the run reuses this. Closes SSH, tunnel and key files.

    After a trust-on-first-use connect, ``conn.recorded_host_key`` holds the new known_hosts
    line and ``site.known_hosts`` has it appended: the caller saves the block.
    """
    session = ssh or SshSession.for_site(site)
    files = _SecretFiles()
    api: k8s.ApiClient | None = None
    conn: SiteConnection | None = None
    try:
        if session.recorded_host_key and session.recorded_host_key not in site.known_hosts:
            site.known_hosts.append(session.recorded_host_key)
        if site.kube_access == "kubeconfig":
            assert site.kubeconfig is not None  # the block's validator guarantees it
            api = api_client_from_kubeconfig(
                site.kubeconfig.get_secret_value(), resource=site.resource, files=files
            )
        else:
            raw = session.read_file(site.kubeconfig_path, sudo=site.sudo)
            if raw is None:
                raise PermanentError(
                    f"no kubeconfig at {site.kubeconfig_path} on the node",
                    resource=site.resource,
                    fix="check distribution/kubeconfig_path on the site block",
                )
            text = SecretStr(raw.decode(errors="replace"))
            remote = _server_address(text.get_secret_value(), resource=site.resource)
            local_port = session.forward(*remote)
            api = api_client_from_kubeconfig(
                text.get_secret_value(),
                resource=site.resource,
                files=files,
                server_override=("127.0.0.1", local_port),
            )
        conn = SiteConnection(
            site=site, ssh=session, api=api, recorded_host_key=session.recorded_host_key
        )
        conn._closers.extend([session.close, files.close, api.close])
        yield conn
    finally:
        if conn is not None:  # also closes what was opened on it since (open_nodes)
            conn.close()
        if api is not None:
            with contextlib.suppress(Exception):
                api.close()
        files.close()
        session.close()
