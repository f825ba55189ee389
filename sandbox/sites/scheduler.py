"""The site's scheduler: binds each pod created through the API to one node's kubelet.

``spec.nodeName`` set by the client: that node, no scheduling (the kubelet there runs it when its
K3s is up). Else the Ready nodes whose labels (as the Node objects in the API hold them now)
match ``spec.nodeSelector``, one picked at random; none: the pod stays Pending with
``PodScheduled=False/Unschedulable`` and a FailedScheduling event, and is retried whenever a
Node changes. A NotReady node carries K3s's ``node.kubernetes.io/not-ready`` taint, so it is
never picked. ``nodeAffinity`` is not simulated: such a pod is refused (stricter than K3s).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from typing import TYPE_CHECKING, Any

from sandbox.sites.kube_objects import BY_KIND, Obj, ResourceType
from sandbox.sites.kube_store import now
from sandbox.sites.runtime import MANAGED_ANNOTATION

if TYPE_CHECKING:
    from sandbox.sites.node import SimulatedNode
    from sandbox.sites.site import SimulatedSite

POD, EVENT, NODE = BY_KIND["Pod"], BY_KIND["Event"], BY_KIND["Node"]


class Scheduler:
    def __init__(self, site: SimulatedSite, loop: asyncio.AbstractEventLoop) -> None:
        self.site = site
        self.store = site.store
        self.loop = loop
        self.rng = random.Random()  # reseed for repeatable placement
        self.pending: dict[tuple[str, str], str] = {}  # (namespace, name) -> uid
        self.stopped = False
        self.store.subscribe(self._on_change)

    def _on_change(self, event: str, rt: ResourceType, obj: Obj) -> None:
        if self.stopped:
            return
        meta = obj["metadata"]
        if rt.kind == "Pod" and event == "ADDED":
            if MANAGED_ANNOTATION in (meta.get("annotations") or {}):
                return  # the connected-registry runtime's own pods (on node 1)
            key = (meta["namespace"], meta["name"])
            self.loop.call_soon_threadsafe(self._schedule, *key, meta["uid"], True)
        elif rt.kind == "Pod" and event == "DELETED":
            key = (meta.get("namespace", ""), meta["name"])
            self.loop.call_soon_threadsafe(self.pending.pop, key, None)
        elif rt.kind == "Node" and self.pending:
            self.loop.call_soon_threadsafe(self._retry)

    def _retry(self) -> None:
        for (namespace, name), uid in list(self.pending.items()):
            self._schedule(namespace, name, uid, False)

    def _labels(self, node: SimulatedNode) -> dict[str, str]:
        obj = self.store.find(NODE, "", node.name)
        return dict((obj or {}).get("metadata", {}).get("labels") or {})

    def _schedule(self, namespace: str, name: str, uid: str, first: bool) -> None:
        pod = self.store.find(POD, namespace, name)
        if self.stopped or pod is None or pod["metadata"]["uid"] != uid:
            self.pending.pop((namespace, name), None)
            return
        spec = pod["spec"]
        bound = spec.get("nodeName")
        if bound:
            self.pending.pop((namespace, name), None)
            node = self.site.node(bound) if bound in self.site.node_names else None
            if node is not None and node.kubelet is not None:
                node.kubelet.spawn(namespace, name, uid)
            return
        chosen, reason = self._pick(spec)
        if chosen is None:
            if (namespace, name) not in self.pending or first:
                self._unschedulable(pod, reason)
            self.pending[(namespace, name)] = uid
            return
        self.pending.pop((namespace, name), None)

        def bind(p: Obj) -> None:
            p["spec"]["nodeName"] = chosen.name

        self.store.mutate(POD, namespace, name, bind)
        self._event(
            pod, "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {chosen.name}"
        )
        if chosen.kubelet is not None:
            chosen.kubelet.spawn(namespace, name, uid)

    def _pick(self, spec: dict[str, Any]) -> tuple[SimulatedNode | None, str]:
        nodes = self.site.nodes
        total = len(nodes)
        if (spec.get("affinity") or {}).get("nodeAffinity"):
            return None, f"0/{total} nodes are available: nodeAffinity is not simulated."
        selector = spec.get("nodeSelector") or {}
        matching = [
            n for n in nodes if all(self._labels(n).get(k) == v for k, v in selector.items())
        ]
        ready = [n for n in matching if n.ready]
        if ready:
            return self.rng.choice(ready), ""
        parts = []
        if len(matching) < total:
            parts.append(
                f"{total - len(matching)} node(s) didn't match Pod's node affinity/selector"
            )
        if matching:
            parts.append(
                f"{len(matching)} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}"
            )
        return None, (
            f"0/{total} nodes are available: {', '.join(parts)}. preemption: 0/{total} nodes "
            f"are available: {total} Preemption is not helpful for scheduling."
        )

    def _unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        self.store.update_status(
            POD,
            meta["namespace"],
            meta["name"],
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": message,
                        "lastTransitionTime": now(),
                    }
                ],
                "qosClass": "BestEffort",
            },
        )
        self._event(pod, "Warning", "FailedScheduling", message)

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
                "source": {"component": "default-scheduler"},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
            },
        )
