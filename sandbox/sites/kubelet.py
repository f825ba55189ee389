"""A node's kubelet, for pods the scheduler bound to that node.

Each container image is pulled by the node's containerd (``containerd.Containerd``: this node's
certs.d files now, this node's credentials as loaded at its last K3s start). While the node's
K3s service is not active (restarting, failed, stopped) the kubelet does nothing: it runs inside
the K3s process. Failures give ErrImagePull, then ImagePullBackOff, an Event, and retries with
backoff until the pod is deleted.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

from sandbox.sites.containerd import Containerd, ImageRef, PullOutcome, parse_image
from sandbox.sites.kube_objects import BY_KIND, Obj
from sandbox.sites.kube_store import now

if TYPE_CHECKING:
    from sandbox.sites.node import SimulatedNode
    from sandbox.sites.site import SimulatedSite

POD, EVENT = BY_KIND["Pod"], BY_KIND["Event"]
__all__ = ["ImageRef", "Kubelet", "PullOutcome", "parse_image"]


class Kubelet:
    def __init__(
        self, site: SimulatedSite, node: SimulatedNode, loop: asyncio.AbstractEventLoop
    ) -> None:
        self.site = site
        self.node = node
        self.store = site.store
        self.loop = loop
        self.containerd = Containerd(site, node)
        self.pulls: list[tuple[str, bool, str]] = []  # (image, ok, message), for tests
        self._logs: dict[tuple[str, str], str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopped = False

    def log(self, namespace: str, name: str) -> str:
        return self._logs.get((namespace, name), "")

    def stop(self) -> None:
        self.stopped = True
        for task in list(self._tasks):
            task.cancel()

    def spawn(self, namespace: str, name: str, uid: str) -> None:
        """Run a pod bound to this node (called on the loop by the scheduler)."""
        task = self.loop.create_task(self._run(namespace, name, uid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def pull(self, pod: Obj, image: str) -> PullOutcome:
        return await self.containerd.pull(pod, image)

    async def _while_down(self, namespace: str, name: str, uid: str) -> bool:
        """Wait while this node's K3s is not active; False when the pod went away meanwhile."""
        while self.node.k3s.state != "active":
            await asyncio.sleep(0.02)
            if self._current(namespace, name, uid) is None:
                return False
        return self._current(namespace, name, uid) is not None

    def _current(self, namespace: str, name: str, uid: str) -> Obj | None:
        pod = self.store.find(POD, namespace, name)
        if self.stopped or pod is None or pod["metadata"]["uid"] != uid:
            return None
        return pod

    async def _run(self, namespace: str, name: str, uid: str) -> None:
        knobs = self.site.knobs
        if not await self._while_down(namespace, name, uid):
            return
        pod = self._current(namespace, name, uid)
        if pod is None:
            return
        containers = pod["spec"]["containers"]
        started = now()
        self._set_status(
            namespace,
            name,
            "Pending",
            started,
            [self._container(c, {"waiting": {"reason": "ContainerCreating"}}) for c in containers],
        )
        backoff = knobs.pull_backoff
        while True:
            outcomes: list[PullOutcome] = []
            for container in containers:
                self._event(pod, "Normal", "Pulling", f'Pulling image "{container["image"]}"')
                await asyncio.sleep(knobs.pull_time)
                if not await self._while_down(namespace, name, uid):
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
                "hostIP": self.node.internal_ip,
                "podIP": f"10.42.{self.node.index - 1}.20",
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
                "source": {"component": "kubelet", "host": self.node.name},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
            },
        )
