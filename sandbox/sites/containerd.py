"""A node's containerd image pull, as the kubelet asks for it.

Each pull reads that node's ``certs.d`` FILES now (``containerd_hosts.routes``): the
``[host."..."]`` endpoints in order, then the root ``server``. A mirror endpoint works only when
it is ``http://<clusterIP>:<port>`` of a connected registry Service whose runtime is Ready and
the credentials pass the Azure sandbox pull-check. Credentials: the pod's imagePullSecrets entry
for exactly the image's host (kubelet sends nothing else), else registries.yaml ``configs`` auth
as THIS node's K3s loaded it at its last start. ``fail_pulls`` on the node fails every pull.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sandbox.sites.containerd_hosts import HostsFileError, routes
from sandbox.sites.kube_objects import BY_KIND, Obj

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
        except HostsFileError as exc:
            return PullOutcome(False, f"{prefix}: {exc}")
        errors: list[str] = []
        for endpoint in found.endpoints:
            outcome = await self._try_endpoint(pod, ref, endpoint)
            if outcome.ok:
                return outcome
            errors.append(outcome.message)
        if not errors:
            return PullOutcome(False, f"{prefix}: no registry host configured for {ref.host}")
        # containerd reports the first failure when a mirror failed, else the default's
        return PullOutcome(False, f"{prefix}: {errors[0]}")

    async def _try_endpoint(self, pod: Obj, ref: ImageRef, endpoint: str) -> PullOutcome:
        url = urlsplit(endpoint)
        ip, port = url.hostname or "", url.port or (443 if url.scheme == "https" else 80)
        if self._service_at(ip, port) is None and not ip.startswith("10.43."):
            return PullOutcome(False, self._default_error(ref, endpoint))
        return await self._try_mirror(pod, ref, endpoint)

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

    async def _try_mirror(self, pod: Obj, ref: ImageRef, endpoint: str) -> PullOutcome:
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
        if url.scheme == "https":
            # Go's client, TLS to a plain-HTTP listener
            return PullOutcome(
                False,
                f'failed to do request: Head "{target}": http: server gave HTTP response to '
                "HTTPS client",
            )
        release = (svc["spec"].get("selector") or {}).get("app", "")
        state = self.site.runtime.ready_release_for(svc["metadata"]["namespace"], release)
        if state is None:
            return PullOutcome(
                False,
                f'failed to do request: Head "{target}": dial tcp '
                f"{ip}:{port}: connect: connection refused (connected "
                "registry not ready)",
            )
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
                f"http://{url.netloc}/oauth2/token: 401 Unauthorized "
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
