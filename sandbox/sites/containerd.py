"""A node's containerd image pull, as the kubelet asks for it.

Each pull reads that node's ``certs.d`` FILES now (``containerd_hosts.routes``): the
``[host."..."]`` endpoints in order, then the root ``server``. A mirror endpoint works only when
it is ``http://<clusterIP>:<port>`` of a connected registry Service whose runtime is Ready and
the credentials pass the Azure sandbox pull-check. Credentials: the pod's imagePullSecrets entry
for exactly the image's host (kubelet sends nothing else), else registries.yaml ``configs`` auth
as THIS node's K3s loaded it at its last start. ``fail_pulls`` on the node fails every pull.

HTTPS: an ``https://`` endpoint whose connected registry listens TLS is verified for real
(``tls_serving.verify``) against the CA files its hosts.toml entry lists (``ca = [...]``), read
from the node's files at this pull (a relative path is relative to the node's root, as every
sandbox node path); an entry without ``ca`` trusts only the system roots, which know no private
CA. containerd loads every entry's CA files before it tries any endpoint, so one it cannot read
or parse fails the whole pull. ``skip_verify = true`` is honoured as containerd does. Plain HTTP
to the TLS port gets Go's 400 ("Client sent an HTTP request to an HTTPS server.").
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography import x509

from sandbox.sites.containerd_hosts import HostEntry, HostsFileError, routes
from sandbox.sites.kube_objects import BY_KIND, Obj
from sandbox.sites.tls_serving import load_ca_file, verify

if TYPE_CHECKING:
    from sandbox.sites.node import SimulatedNode
    from sandbox.sites.site import SimulatedSite


@dataclass(frozen=True)
class ImageRef:
    host: str
    repository: str
    tag: str

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repository}:{self.tag}"


def parse_image(image: str) -> ImageRef:
    name, tag = image, "latest"
    if "@" in name:
        name, tag = name.split("@", 1)
    else:
        last = name.rsplit("/", 1)[-1]
        if ":" in last:
            name, tag = name.rsplit(":", 1)
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return ImageRef(first, rest, tag)
    repo = name if "/" in name else f"library/{name}"
    return ImageRef("docker.io", repo, tag)


@dataclass(frozen=True)
class PullOutcome:
    ok: bool
    message: str = ""
    image_id: str = ""


class Containerd:
    def __init__(self, site: SimulatedSite, node: SimulatedNode) -> None:
        self.site = site
        self.node = node
        self.store = site.store

    async def pull(self, pod: Obj, image: str) -> PullOutcome:
        ref = parse_image(image)
        prefix = (
            f'failed to pull and unpack image "{ref.ref}": failed to resolve reference "{ref.ref}"'
        )
        if self.node.knobs.fail_pulls:
            return PullOutcome(
                False,
                f'{prefix}: failed to do request: Head "https://{ref.host}/v2/{ref.repository}/'
                f'manifests/{ref.tag}": dial tcp: i/o timeout '
                f"(fail_pulls knob on {self.node.name})",
            )
        try:
            found = routes(self.node.hosts_dir, ref.host)
            roots = [self._roots(entry) for entry in found.entries]
        except HostsFileError as exc:
            return PullOutcome(False, f"{prefix}: {exc}")
        errors: list[str] = []
        for entry, trusted in zip(found.entries, roots, strict=True):
            outcome = await self._try_endpoint(pod, ref, entry, trusted)
            if outcome.ok:
                return outcome
            errors.append(outcome.message)
        if not errors:
            return PullOutcome(False, f"{prefix}: no registry host configured for {ref.host}")
        # containerd reports the first failure when a mirror failed, else the default's
        return PullOutcome(False, f"{prefix}: {errors[0]}")

    def _roots(self, entry: HostEntry) -> list[x509.Certificate]:
        """The CA certificates of one host entry, read now (containerd's ConfigureHosts)."""
        roots: list[x509.Certificate] = []
        for name in entry.ca:
            path = Path(name) if Path(name).is_absolute() else self.node.root / name
            try:
                data = path.read_bytes()
            except OSError as exc:
                reason = (exc.strerror or type(exc).__name__).lower()
                raise HostsFileError(
                    f'unable to read CA cert "{name}": open {name}: {reason}'
                ) from exc
            found = load_ca_file(data)
            if not found:
                raise HostsFileError(f'unable to load CA cert "{name}"')
            roots += found
        return roots

    async def _try_endpoint(
        self, pod: Obj, ref: ImageRef, entry: HostEntry, roots: list[x509.Certificate]
    ) -> PullOutcome:
        endpoint = entry.url
        url = urlsplit(endpoint)
        ip, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
        if self._service_at(ip, port) is None and not ip.startswith("10.43."):
            return PullOutcome(False, self._default_error(ref, endpoint))
        return await self._try_mirror(pod, ref, entry, roots)

    def _default_error(self, ref: ImageRef, default: str) -> str:
        url = f"{default.rstrip('/')}/{ref.repository}/manifests/{ref.tag}"
        host = urlsplit(default).hostname or ""
        if self._service_at(host, urlsplit(default).port or 443) is not None or host.startswith(
            "10.43."
        ):
            return (
                f'failed to do request: Head "{url}": http: server gave HTTP response to '
                "HTTPS client"
            )
        return f'failed to do request: Head "{url}": dial tcp: lookup {host}: no such host'

    def _service_at(self, ip: str, port: int) -> Obj | None:
        for svc in self.store.list(BY_KIND["Service"], None):
            if svc["spec"].get("clusterIP") == ip and any(
                p.get("port") == port for p in svc["spec"].get("ports", [])
            ):
                return svc
        return None

    async def _try_mirror(
        self, pod: Obj, ref: ImageRef, entry: HostEntry, roots: list[x509.Certificate]
    ) -> PullOutcome:
        endpoint = entry.url
        url = urlsplit(endpoint)
        ip, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
        target = f"{endpoint.rstrip('/')}/{ref.repository}/manifests/{ref.tag}"
        svc = self._service_at(ip, port)
        if svc is None:
            return PullOutcome(
                False,
                f'failed to do request: Head "{target}": dial tcp '
                f"{ip}:{port}: connect: connection refused",
            )
        release = (svc["spec"].get("selector") or {}).get("app", "")
        runtime = self.site.runtime
        listener = runtime.states.get((svc["metadata"]["namespace"], release))
        tls_listener = listener is not None and listener.https
        if url.scheme == "https" and not tls_listener:
            # Go's client, TLS to a plain-HTTP listener
            return PullOutcome(
                False,
                f'failed to do request: Head "{target}": http: server gave HTTP response to '
                "HTTPS client",
            )
        state = runtime.ready_release_for(svc["metadata"]["namespace"], release)
        if state is None:
            return PullOutcome(
                False,
                f'failed to do request: Head "{target}": dial tcp '
                f"{ip}:{port}: connect: connection refused (connected "
                "registry not ready)",
            )
        if url.scheme != "https" and tls_listener:
            # Go's HTTPS server answers plain HTTP on its TLS port with a 400
            return PullOutcome(
                False,
                f"unexpected status from HEAD request to {target}: 400 Bad Request "
                "(Client sent an HTTP request to an HTTPS server.)",
            )
        if url.scheme == "https":
            chain = runtime.served_chain(state)
            problem = (
                "tls: handshake failure (no certificate served)"
                if chain is None
                else None
                if entry.skip_verify
                else verify(chain, roots, ip)
            )
            if problem is not None:
                return PullOutcome(False, f'failed to do request: Head "{target}": {problem}')
        creds = self._credentials(pod, ref.host, url.netloc)
        if creds is None:
            return PullOutcome(
                False,
                f"pull access denied, repository does not exist or may "
                f"require authorization: authorization failed: no basic "
                f"auth credentials (via {url.netloc})",
            )
        username, password = creds
        loop = asyncio.get_running_loop()
        try:
            check = await loop.run_in_executor(
                None,
                self.site.azure.pull_check,
                state.connected_registry,
                username,
                password,
                ref.repository,
                ref.tag,
            )
        except Exception as exc:
            return PullOutcome(False, f"pull check failed: {type(exc).__name__}")
        if not check.ok:
            return PullOutcome(
                False,
                f"failed to authorize: failed to fetch oauth token: "
                f"unexpected status from GET request to "
                f"{url.scheme}://{url.netloc}/oauth2/token: 401 Unauthorized "
                f"({check.reason})",
            )
        digest = hashlib.sha256(f"{state.connected_registry}/{ref.repository}:{ref.tag}".encode())
        return PullOutcome(
            True, image_id=f"{ref.host}/{ref.repository}@sha256:{digest.hexdigest()}"
        )

    def _credentials(self, pod: Obj, image_host: str, endpoint_host: str) -> tuple[str, str] | None:
        names = [s.get("name") for s in pod["spec"].get("imagePullSecrets") or []]
        namespace = pod["metadata"]["namespace"]
        sa = self.store.find(
            BY_KIND["ServiceAccount"], namespace, pod["spec"].get("serviceAccountName", "default")
        )
        names += [s.get("name") for s in (sa or {}).get("imagePullSecrets") or []]
        for name in names:
            secret = self.store.find(BY_KIND["Secret"], namespace, str(name))
            if secret is None or secret.get("type") != "kubernetes.io/dockerconfigjson":
                continue
            try:
                config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
            except (KeyError, ValueError, binascii.Error):
                continue
            for key, entry in (config.get("auths") or {}).items():
                host = urlsplit(key if "://" in key else f"//{key}").netloc
                if host == image_host and isinstance(entry, dict):
                    found = _user_pass(entry)
                    if found:
                        return found
        for host in (endpoint_host, image_host):
            auth = self.node.k3s.registries.auths.get(host)
            if auth is not None:
                found = _user_pass(
                    {"username": auth.username, "password": auth.password, "auth": auth.auth}
                )
                if found:
                    return found
        return None


def _user_pass(entry: dict[str, Any]) -> tuple[str, str] | None:
    if entry.get("username") and entry.get("password"):
        return str(entry["username"]), str(entry["password"])
    if entry.get("auth"):
        try:
            user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except (ValueError, binascii.Error):
            return None
        if user and password:
            return user, password
    return None
