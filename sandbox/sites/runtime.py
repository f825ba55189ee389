"""The connected-registry runtime of each Helm release, and a plain deployment controller.

After an install/upgrade with a new connection string the runtime activates against the Azure
sandbox (instance id = node name); success makes its pod Ready after the pod-ready-time knob,
failure leaves the pod unready with the runtime's error and the Deployment unavailable.

An HTTPS release (``httpEnabled: false``) mounts its TLS Secret when the pod starts: while the
Secret is missing the pod stays ContainerCreating with the kubelet's FailedMount message (and
retries, as the kubelet does); a Secret the server cannot load crash-loops the container. The
chain loaded then is what the listener serves until the pod is recreated: a changed Secret is
not reloaded (UNCONFIRMED; stricter). ``served_chain`` is what a client's handshake sees.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sandbox.sites import connection_string
from sandbox.sites.azure_link import Activation, AzureLink
from sandbox.sites.kube_objects import BY_KIND, Obj, ResourceType
from sandbox.sites.kube_store import KubeStore, now
from sandbox.sites.tls_serving import (
    BadTlsSecret,
    SecretNotFound,
    ServedChain,
    load_secret,
    stranger_copy,
)

RUNTIME_IMAGE = "mcr.microsoft.com/acr/connected-registry:0.9.0"
MANAGED_ANNOTATION = "sandbox.acr-edge/simulated-by"
CR_LABEL = "app.kubernetes.io/name"
CR_LABEL_VALUE = "connected-registry"


@dataclass
class RuntimeState:
    namespace: str
    release: str
    connected_registry: str = ""
    connection_digest: str = ""  # sha256 of the connection string the pod runs
    template_digest: str = ""  # and of its whole pod template (string, listener, TLS volume)
    ready: bool = False
    error: str = ""
    activations: int = 0
    generation: int = 0
    pod_name: str = ""
    broken: bool = False  # its pod came from a failing upgrade (the fail_upgrade knob)
    https: bool = False  # the pod's listener speaks TLS (httpEnabled: false)
    tls_secret: str = ""  # the Secret its pod mounts as volume "tls" ("" = none configured)
    served: ServedChain | None = None  # loaded when the pod started; never reloaded
    stranger: ServedChain | None = None  # what it serves under the tls_serve_wrong_cert knob
    waiting_reason: str = "CrashLoopBackOff"  # the container's state while not Ready
    history: list[str] = field(default_factory=list)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def deployment_status(generation: int, ready: bool) -> Obj:
    stamp = now()
    if ready:
        return {
            "observedGeneration": generation,
            "replicas": 1,
            "updatedReplicas": 1,
            "readyReplicas": 1,
            "availableReplicas": 1,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": "ReplicaSet has successfully progressed.",
                    "lastUpdateTime": stamp,
                    "lastTransitionTime": stamp,
                },
            ],
        }
    return {
        "observedGeneration": generation,
        "replicas": 1,
        "updatedReplicas": 1,
        "unavailableReplicas": 1,
        "conditions": [
            {
                "type": "Available",
                "status": "False",
                "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability.",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            },
            {
                "type": "Progressing",
                "status": "True",
                "reason": "ReplicaSetUpdated",
                "message": "ReplicaSet is progressing.",
                "lastUpdateTime": stamp,
                "lastTransitionTime": stamp,
            },
        ],
    }


class ConnectedRegistryRuntime:
    def __init__(
        self,
        store: KubeStore,
        azure: AzureLink,
        instance_id: str,
        pod_ready_time: Callable[[], float],
        *,
        serve_wrong_cert: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.azure = azure
        self.instance_id = instance_id
        self._pod_ready_time = pod_ready_time
        self._serve_wrong_cert = serve_wrong_cert
        self.states: dict[tuple[str, str], RuntimeState] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def deploy(
        self,
        namespace: str,
        release: str,
        conn: str,
        *,
        broken: bool = False,
        https: bool = False,
        tls_secret: str = "",
    ) -> None:
        """Called (on the loop) after helm applied the release's objects. ``broken``: the
        revision's pod template is a bad one (a failing upgrade): the old pod is replaced
        (strategy Recreate, as a ReadWriteOnce volume needs) by one that crash-loops.
        ``https``/``tls_secret``: the pod template's listener and its "tls" volume; a change
        of either is a new pod template, so a new pod."""
        state = self.states.setdefault((namespace, release), RuntimeState(namespace, release))
        template = _digest(f"{conn}\n{https}\n{tls_secret}")
        if broken:
            state.generation += 1
            state.ready, state.broken = False, True
            state.https, state.tls_secret = https, tls_secret
            state.served = state.stranger = None
            state.waiting_reason = "CrashLoopBackOff"
            state.error = "Back-off restarting failed container connected-registry"
            state.history.append("upgraded to a pod that never becomes Ready")
            self._new_pod(state)
            self._publish(state)
            return
        if (
            template == state.template_digest
            and not state.broken
            and (state.ready or state.generation)
        ):
            self._publish(state)  # the pod keeps running; helm touched the Deployment only
            return
        state.template_digest = template
        state.connection_digest = _digest(conn)
        state.generation += 1
        state.ready = state.broken = False
        state.error = ""
        state.https, state.tls_secret = https, tls_secret
        state.served = state.stranger = None
        state.waiting_reason = "CrashLoopBackOff"
        state.connected_registry = connection_string.parse(conn).connected_registry
        self._new_pod(state)
        self._publish(state)
        task = asyncio.get_running_loop().create_task(self._activate(state, state.generation, conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def remove(self, namespace: str, release: str) -> None:
        state = self.states.pop((namespace, release), None)
        if state and state.pod_name:
            self._delete_pod(state)

    def ready_release_for(self, namespace: str, release: str) -> RuntimeState | None:
        state = self.states.get((namespace, release))
        return state if state and state.ready else None

    def served_chain(self, state: RuntimeState) -> ServedChain | None:
        """The chain a TLS handshake with this release's pod gets now (None: plain HTTP)."""
        if not state.https or state.served is None:
            return None
        if self._serve_wrong_cert():
            if state.stranger is None:
                state.stranger = stranger_copy(state.served)
            return state.stranger
        return state.served

    async def _mount_tls(self, state: RuntimeState, generation: int) -> bool:
        """The kubelet mounting volume "tls", then the server loading it; False: no start."""
        if not state.tls_secret:
            # UNCONFIRMED (stricter): HTTPS with neither a Secret, inline tls.crt/tls.key nor
            # cert-manager has nothing to serve, so the container exits.
            self._fail(state, "tls: no server certificate configured (tls.secret, tls.crt/tls.key)")
            return False
        warned = False
        while True:
            secret = self.store.find(BY_KIND["Secret"], state.namespace, state.tls_secret)
            try:
                state.served = load_secret(secret, state.tls_secret)
                break
            except SecretNotFound as exc:
                if not warned:
                    state.error, state.waiting_reason = str(exc), "ContainerCreating"
                    state.history.append(f"mount failed: {exc}")
                    self._publish(state)
                    self._pod_event(state, "FailedMount", str(exc))
                    warned = True
            except BadTlsSecret as exc:
                self._fail(state, f"failed to load the TLS server certificate: {exc}")
                return False
            await asyncio.sleep(0.1)  # the kubelet retries the mount
            current = self.states.get((state.namespace, state.release))
            if current is not state or state.generation != generation:
                return False  # a newer pod, or the release was uninstalled
        state.error, state.waiting_reason = "", "CrashLoopBackOff"
        state.history.append(f"serving TLS from secret {state.tls_secret}")
        self._publish(state)
        return True

    def _fail(self, state: RuntimeState, error: str) -> None:
        state.error, state.waiting_reason = error, "CrashLoopBackOff"
        state.history.append(f"container exited: {error}")
        self._publish(state)

    def _pod_event(self, state: RuntimeState, reason: str, message: str) -> None:
        pod = self.store.find(BY_KIND["Pod"], state.namespace, state.pod_name)
        if pod is None:
            return
        stamp = now()
        self.store.create(
            BY_KIND["Event"],
            state.namespace,
            {
                "metadata": {"name": f"{state.pod_name}.{random.getrandbits(64):016x}"},
                "involvedObject": {
                    "kind": "Pod",
                    "namespace": state.namespace,
                    "name": state.pod_name,
                    "uid": pod["metadata"].get("uid", ""),
                    "apiVersion": "v1",
                },
                "reason": reason,
                "message": message,
                "type": "Warning",
                "count": 1,
                "source": {"component": "kubelet", "host": self.store.node_name},
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
            },
        )

    async def _activate(self, state: RuntimeState, generation: int, conn: str) -> None:
        loop = asyncio.get_running_loop()
        if state.https and not await self._mount_tls(state, generation):
            return
        try:
            result: Activation = await loop.run_in_executor(
                None, self.azure.activate, conn, self.instance_id
            )
        except Exception as exc:
            result = Activation(ok=False, code="ActivationError", description=type(exc).__name__)
        if state.generation != generation:
            return
        state.activations += 1
        if not result.ok:
            state.error = f"{result.code}: {result.description}".strip(": ")
            state.history.append(f"activation failed: {state.error}")
            self._publish(state)
            return
        state.history.append("activated")
        await asyncio.sleep(self._pod_ready_time())
        if state.generation != generation:
            return
        state.ready = True
        self._publish(state)

    # --- objects ---------------------------------------------------------------------------------

    def _new_pod(self, state: RuntimeState) -> None:
        if state.pod_name:
            self._delete_pod(state)
        suffix = "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))
        state.pod_name = f"{state.release}-{random.randint(10**8, 10**9 - 1):x}-{suffix}"
        self.store.create(
            BY_KIND["Pod"],
            state.namespace,
            {
                "metadata": {
                    "name": state.pod_name,
                    "labels": {
                        "app": state.release,
                        CR_LABEL: CR_LABEL_VALUE,
                        "app.kubernetes.io/instance": state.release,
                    },
                    "annotations": {MANAGED_ANNOTATION: "connected-registry-runtime"},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": f"{state.release}-rs",
                            "uid": "sim",
                            "controller": True,
                        }
                    ],
                },
                "spec": {
                    "containers": [{"name": "connected-registry", "image": RUNTIME_IMAGE}],
                    "nodeName": self.store.node_name,
                },
            },
        )

    def _delete_pod(self, state: RuntimeState) -> None:
        if self.store.find(BY_KIND["Pod"], state.namespace, state.pod_name):
            self.store.delete(BY_KIND["Pod"], state.namespace, state.pod_name)
        state.pod_name = ""

    def _publish(self, state: RuntimeState) -> None:
        deployment = self.store.find(BY_KIND["Deployment"], state.namespace, state.release)
        if deployment is not None:
            self.store.update_status(
                BY_KIND["Deployment"],
                state.namespace,
                state.release,
                deployment_status(deployment["metadata"].get("generation", 1), state.ready),
            )
        if state.pod_name:
            self.store.update_status(
                BY_KIND["Pod"], state.namespace, state.pod_name, self._pod_status(state)
            )

    def _pod_status(self, state: RuntimeState) -> Obj:
        stamp = now()
        if state.ready:
            container: dict[str, Any] = {"running": {"startedAt": stamp}}
        elif state.error:
            container = {"waiting": {"reason": state.waiting_reason, "message": state.error}}
        else:
            container = {"running": {"startedAt": stamp}}
        ready = "True" if state.ready else "False"
        return {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "podIP": f"10.42.0.{random.randint(2, 250)}",
            "startTime": stamp,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
                {
                    "type": "Ready",
                    "status": ready,
                    "lastTransitionTime": stamp,
                    **(
                        {
                            "reason": "ContainersNotReady",
                            "message": state.error
                            or "containers with unready status: [connected-registry]",
                        }
                        if not state.ready
                        else {}
                    ),
                },
            ],
            "containerStatuses": [
                {
                    "name": "connected-registry",
                    "image": RUNTIME_IMAGE,
                    "imageID": f"{RUNTIME_IMAGE.split(':')[0]}@sha256:{_digest(RUNTIME_IMAGE)}",
                    "ready": state.ready,
                    "restartCount": 0,
                    "started": True,
                    "state": container,
                }
            ],
        }


class DeploymentController:
    """Deployments not owned by a simulated runtime become available after the pod-ready time."""

    def __init__(
        self, store: KubeStore, loop: asyncio.AbstractEventLoop, pod_ready_time: Callable[[], float]
    ) -> None:
        self.store = store
        self.loop = loop
        self._pod_ready_time = pod_ready_time
        store.subscribe(self._on_change)

    def _on_change(self, event: str, rt: ResourceType, obj: Obj) -> None:
        if rt.kind != "Deployment" or event == "DELETED":
            return
        labels = obj["metadata"].get("labels") or {}
        if labels.get(CR_LABEL) == CR_LABEL_VALUE:
            return
        generation = obj["metadata"].get("generation", 1)
        if (obj.get("status") or {}).get("observedGeneration") == generation:
            return
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        self.loop.call_soon_threadsafe(
            self.loop.call_later, self._pod_ready_time(), self._ready, ns, name, generation
        )

    def _ready(self, namespace: str, name: str, generation: int) -> None:
        current = self.store.find(BY_KIND["Deployment"], namespace, name)
        if current and current["metadata"].get("generation", 1) == generation:
            self.store.update_status(
                BY_KIND["Deployment"], namespace, name, deployment_status(generation, True)
            )
