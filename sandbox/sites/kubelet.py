"""The node's kubelet + containerd, for pods created through the API.

A pod is scheduled on the node, then each container image ``<host>/<repo>:<tag>`` is pulled the
way containerd on K3s does it: through the ``hosts.toml`` endpoints generated at the last K3s
restart, then the default ``https://<host>`` endpoint. A mirror pull works only when the endpoint
is ``http://<clusterIP>:<port>`` of a connected registry Service whose runtime is Ready and the
credentials pass the Azure sandbox pull-check. Credentials: the pod's imagePullSecrets entry for
exactly the image's host (kubelet sends nothing else), else registries.yaml ``configs`` auth as
loaded at the last restart. Failures give ErrImagePull, then ImagePullBackOff, an Event, and
retries with backoff until the pod is deleted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sandbox.sites.k3s_registries import host_dir_name
from sandbox.sites.kube_objects import BY_KIND, Obj, ResourceType
from sandbox.sites.kube_store import now
from sandbox.sites.runtime import MANAGED_ANNOTATION

if TYPE_CHECKING:
    from sandbox.sites.site import SimulatedSite

POD, EVENT = BY_KIND["Pod"], BY_KIND["Event"]


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


class Kubelet:
    def __init__(self, site: SimulatedSite, loop: asyncio.AbstractEventLoop) -> None:
        self.site = site
        self.store = site.store
        self.loop = loop
        self.pulls: list[tuple[str, bool, str]] = []  # (image, ok, message), for tests
        self._logs: dict[tuple[str, str], str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopped = False
        self.store.subscribe(self._on_change)

    def log(self, namespace: str, name: str) -> str:
        return self._logs.get((namespace, name), "")

    def stop(self) -> None:
        self.stopped = True
        for task in list(self._tasks):
            task.cancel()

    def _on_change(self, event: str, rt: ResourceType, obj: Obj) -> None:
        if rt.kind != "Pod" or event != "ADDED":
            return
        if MANAGED_ANNOTATION in (obj["metadata"].get("annotations") or {}):
            return
        meta = obj["metadata"]
        self.loop.call_soon_threadsafe(self._spawn, meta["namespace"], meta["name"], meta["uid"])

    def _spawn(self, namespace: str, name: str, uid: str) -> None:
        task = self.loop.create_task(self._run(namespace, name, uid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _current(self, namespace: str, name: str, uid: str) -> Obj | None:
        pod = self.store.find(POD, namespace, name)
        if self.stopped or pod is None or pod["metadata"]["uid"] != uid:
            return None
        return pod

    async def _run(self, namespace: str, name: str, uid: str) -> None:
        knobs = self.site.knobs
        pod = self._current(namespace, name, uid)
        if pod is None:
            return

        def schedule(p: Obj) -> None:
            p["spec"]["nodeName"] = self.site.name

        self.store.mutate(POD, namespace, name, schedule)
        containers = pod["spec"]["containers"]
        started = now()
        self._set_status(
            namespace,
            name,
            "Pending",
            started,
            [self._container(c, {"waiting": {"reason": "ContainerCreating"}}) for c in containers],
        )
        self._event(
            pod,
            "Normal",
            "Scheduled",
            f"Successfully assigned {namespace}/{name} to {self.site.name}",
        )
        backoff = knobs.pull_backoff
        while True:
            outcomes: list[PullOutcome] = []
            for container in containers:
                self._event(pod, "Normal", "Pulling", f'Pulling image "{container["image"]}"')
                await asyncio.sleep(knobs.pull_time)
                if self._current(namespace, name, uid) is None:
                    return
                outcome = await self.pull(pod, container["image"])
                self.pulls.append((container["image"], outcome.ok, outcome.message))
                outcomes.append(outcome)
            if all(o.ok for o in outcomes):
                break
            statuses = []
            for container, outcome in zip(containers, outcomes, strict=True):
                if outcome.ok:
                    statuses.append(
                        self._container(
                            container, {"waiting": {"reason": "PodInitializing"}}, outcome.image_id
                        )
                    )
                    continue
                statuses.append(
                    self._container(
                        container,
                        {"waiting": {"reason": "ErrImagePull", "message": outcome.message}},
                    )
                )
                self._event(
                    pod,
                    "Warning",
                    "Failed",
                    f'Failed to pull image "{container["image"]}": {outcome.message}',
                )
                self._event(pod, "Warning", "Failed", "Error: ErrImagePull")
            self._set_status(namespace, name, "Pending", started, statuses)
            await asyncio.sleep(backoff)
            if self._current(namespace, name, uid) is None:
                return
            for status in statuses:
                waiting = status["state"].get("waiting", {})
                if waiting.get("reason") == "ErrImagePull":
                    waiting["reason"] = "ImagePullBackOff"
                    waiting["message"] = f'Back-off pulling image "{status["image"]}": ' + (
                        waiting.get("message", "")
                    )
            self._set_status(namespace, name, "Pending", started, statuses)
            self._event(
                pod, "Normal", "BackOff", f'Back-off pulling image "{containers[0]["image"]}"'
            )
            await asyncio.sleep(backoff)
            if self._current(namespace, name, uid) is None:
                return
            backoff = min(backoff * 2, knobs.pull_backoff * 8)
        for container in containers:
            self._event(
                pod, "Normal", "Pulled", f'Successfully pulled image "{container["image"]}"'
            )
            self._event(pod, "Normal", "Started", f"Started container {container['name']}")
        self._logs[(namespace, name)] = "".join(
            f"pulled {c['image']} ({o.image_id})\n"
            for c, o in zip(containers, outcomes, strict=True)
        )
        run_start = now()
        self._set_status(
            namespace,
            name,
            "Running",
            started,
            [
                self._container(c, {"running": {"startedAt": run_start}}, o.image_id, ready=True)
                for c, o in zip(containers, outcomes, strict=True)
            ],
            ready=True,
        )
        if pod["spec"].get("restartPolicy", "Always") == "Always":
            return
        await asyncio.sleep(knobs.pod_run_time)
        if self._current(namespace, name, uid) is None:
            return
        self._set_status(
            namespace,
            name,
            "Succeeded",
            started,
            [
                self._container(
                    c,
                    {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "startedAt": run_start,
                            "finishedAt": now(),
                        }
                    },
                    o.image_id,
                )
                for c, o in zip(containers, outcomes, strict=True)
            ],
        )

    # --- the pull -------------------------------------------------------------------------------

    async def pull(self, pod: Obj, image: str) -> PullOutcome:
        ref = parse_image(image)
        hosts = self.site.k3s.hosts.get(host_dir_name(ref.host)) or self.site.k3s.hosts.get(
            "_default"
        )
        endpoints = list(hosts.hosts) if hosts else []
        default = hosts.server if hosts and hosts.server else f"https://{ref.host}/v2"
        prefix = (
            f'failed to pull and unpack image "{ref.ref}": failed to resolve reference "{ref.ref}"'
        )
        mirror_errors: list[str] = []
        for endpoint in endpoints:
            outcome = await self._try_mirror(pod, ref, endpoint)
            if outcome.ok:
                return outcome
            mirror_errors.append(outcome.message)
        if mirror_errors:
            return PullOutcome(False, f"{prefix}: {mirror_errors[0]}")
        return PullOutcome(False, f"{prefix}: {self._default_error(ref, default)}")

    def _default_error(self, ref: ImageRef, default: str) -> str:
        url = f"{default}/{ref.repository}/manifests/{ref.tag}"
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
        target = f"{endpoint}/{ref.repository}/manifests/{ref.tag}"
        svc = self._service_at(ip, port)
        if svc is None:
            return PullOutcome(
                False,
                f'failed to do request: Head "{target}": dial tcp '
                f"{ip}:{port}: connect: connection refused",
            )
        if url.scheme == "https":
            return PullOutcome(
                False,
                f'failed to do request: Head "{target}": tls: first record '
                "does not look like a TLS handshake",
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
            auth = self.site.k3s.registries.auths.get(host)
            if auth is not None:
                found = _user_pass(
                    {"username": auth.username, "password": auth.password, "auth": auth.auth}
                )
                if found:
                    return found
        return None

    # --- status and events ----------------------------------------------------------------------

    @staticmethod
    def _container(
        container: Obj, state: Obj, image_id: str = "", ready: bool = False
    ) -> dict[str, Any]:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": image_id,
            "ready": ready,
            "started": "running" in state,
            "restartCount": 0,
            "state": state,
        }

    def _set_status(
        self,
        namespace: str,
        name: str,
        phase: str,
        started: str,
        containers: list[dict[str, Any]],
        ready: bool = False,
    ) -> None:
        flag = "True" if ready else "False"
        stamp = now()
        conditions = [
            {"type": "Initialized", "status": "True", "lastTransitionTime": started},
            {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
            {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp},
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": started},
        ]
        self.store.update_status(
            POD,
            namespace,
            name,
            {
                "phase": phase,
                "conditions": conditions,
                "hostIP": "127.0.0.1",
                "podIP": "10.42.0.20",
                "startTime": started,
                "containerStatuses": containers,
                "qosClass": "BestEffort",
            },
        )

    def _event(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        meta = pod["metadata"]
        stamp = now()
        self.store.create(
            EVENT,
            meta["namespace"],
            {
                "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}"},
                "involvedObject": {
                    "kind": "Pod",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "apiVersion": "v1",
                },
                "reason": reason,
                "message": message,
                "type": kind,
                "count": 1,
                "source": {"component": "kubelet", "host": self.site.name},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
            },
        )


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
