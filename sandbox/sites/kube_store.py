"""The in-memory object store behind a node's Kubernetes API: CRUD with the API server's rules.

Every write goes through here (HTTP handlers, helm, the runtime, the kubelet), so uids,
resourceVersions, defaults, validation and the 404/409/422 answers are the same whichever way
an object arrives. Listeners hear about each change after the lock is released.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import random
import string
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandbox.sites.kube_objects import (
    BY_KIND,
    ApiError,
    Obj,
    ResourceType,
    already_exists,
    bad_request,
    conflict,
    field_selector_matches,
    invalid,
    json_patch,
    label_selector_matches,
    merge_patch,
    name_problem,
    not_found,
    strategic_merge_patch,
)

SERVICE_CIDR = ipaddress.ip_network("10.43.0.0/16")
Listener = Callable[[str, ResourceType, Obj], None]
WITH_STATUS = {"pods", "deployments", "services", "namespaces", "nodes", "persistentvolumeclaims"}
RT = BY_KIND


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rand_suffix(n: int = 5) -> str:
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


# Lists that a kind's Go type declares without patchStrategy (atomic): a strategic merge patch
# replaces them although a list of the same name merges elsewhere (PodSpec.imagePullSecrets
# merges by name; ServiceAccount.imagePullSecrets does not).
_ATOMIC_LISTS: dict[str, tuple[str, ...]] = {"ServiceAccount": ("imagePullSecrets",)}


class KubeStore:
    def __init__(self, node_name: str, ca_pem: str = "") -> None:
        self.node_name = node_name
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._rv = 0
        self._listeners: list[Listener] = []
        self._ca_pem = ca_pem
        self._bootstrap()

    # --- plumbing ------------------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _notify(self, event: str, rt: ResourceType, obj: Obj) -> None:
        for listener in list(self._listeners):
            listener(event, rt, copy.deepcopy(obj))

    @staticmethod
    def _key(rt: ResourceType, namespace: str, name: str) -> tuple[str, str, str]:
        return (f"{rt.group}/{rt.plural}", namespace if rt.namespaced else "", name)

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def resource_version(self) -> str:
        with self._lock:
            return str(self._rv)

    def _namespace_exists(self, ns: str) -> bool:
        return self._key(RT["Namespace"], "", ns) in self._objects

    def _bootstrap(self) -> None:
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(RT["Namespace"], "", {"metadata": {"name": ns}})
        self.create(
            RT["Service"],
            "default",
            {
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver"}},
                "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443}]},
            },
        )
        self.create(
            RT["Service"],
            "kube-system",
            {
                "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "clusterIP": "10.43.0.10",
                    "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
                },
            },
        )
        self.add_node(self.node_name, "127.0.0.1", server=True, index=1)

    def add_node(self, name: str, internal_ip: str, *, server: bool, index: int) -> None:
        """Register a node as K3s does when its kubelet first posts its status."""
        self.create(RT["Node"], "", self._node_object(name, internal_ip, server, index))

    def _node_object(self, name: str, internal_ip: str, server: bool, index: int) -> Obj:
        labels = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "k3s",
        }
        if server:
            labels["node-role.kubernetes.io/control-plane"] = "true"
            labels["node-role.kubernetes.io/master"] = "true"
        return {
            "metadata": {"name": name, "labels": labels},
            "spec": {"podCIDR": f"10.42.{index - 1}.0/24"},
            "status": {
                "conditions": [self.ready_condition(True)],
                "nodeInfo": {
                    "kubeletVersion": "v1.31.4+k3s1",
                    "kubeProxyVersion": "v1.31.4+k3s1",
                    "kernelVersion": "6.1.0-sim",
                    "machineID": uuid.uuid4().hex,
                    "systemUUID": str(uuid.uuid4()),
                    "bootID": str(uuid.uuid4()),
                    "containerRuntimeVersion": "containerd://1.7.23-k3s2",
                    "osImage": "Simulated K3s node",
                    "architecture": "amd64",
                    "operatingSystem": "linux",
                },
                "addresses": [
                    {"type": "InternalIP", "address": internal_ip},
                    {"type": "Hostname", "address": name},
                ],
            },
        }

    @staticmethod
    def ready_condition(ready: bool) -> Obj:
        return {
            "type": "Ready",
            "status": "True" if ready else "False" if ready is False else "Unknown",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready else "k3s is restarting",
            "lastHeartbeatTime": now(),
            "lastTransitionTime": now(),
        }

    # --- public CRUD ---------------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        with self._lock:
            obj = self._objects.get(self._key(rt, namespace, name))
            if obj is None:
                raise not_found(rt, name)
            return copy.deepcopy(obj)

    def find(self, rt: ResourceType, namespace: str, name: str) -> Obj | None:
        try:
            return self.get(rt, namespace, name)
        except ApiError:
            return None

    def list(
        self,
        rt: ResourceType,
        namespace: str | None,
        label_selector: str = "",
        field_selector: str = "",
    ) -> list[Obj]:
        with self._lock:
            prefix = f"{rt.group}/{rt.plural}"
            items = [
                copy.deepcopy(obj)
                for (kind, ns, _), obj in self._objects.items()
                if kind == prefix and (not namespace or not rt.namespaced or ns == namespace)
            ]
        if label_selector:
            items = [
                o
                for o in items
                if label_selector_matches(label_selector, o["metadata"].get("labels") or {})
            ]
        if field_selector:
            items = [o for o in items if field_selector_matches(field_selector, o)]
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items

    def create(self, rt: ResourceType, namespace: str, body: Obj, dry_run: bool = False) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{_rand_suffix()}"
        name = meta.get("name", "")
        problem = name_problem(name, rt.name_rule)
        if problem:
            raise invalid(rt, str(name), [("metadata.name", problem)])
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["kind"] = rt.kind
        obj["apiVersion"] = rt.api_version
        with self._lock:
            if rt.namespaced and not self._namespace_exists(namespace):
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            key = self._key(rt, namespace, name)
            if key in self._objects:
                raise already_exists(rt, name)
            self._prepare_create(rt, obj)
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = now()
            meta.pop("resourceVersion", None)
            if rt.kind == "Deployment":
                meta["generation"] = 1
            if dry_run:
                return obj
            meta["resourceVersion"] = self._next_rv()
            self._objects[key] = obj
            if rt.kind == "Namespace":
                self._namespace_children(name)
            result = copy.deepcopy(obj)
        self._notify("ADDED", rt, result)
        return result

    def replace(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Obj,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        with self._lock:
            key = self._key(rt, namespace, name)
            old = self._objects.get(key)
            if old is None:
                raise not_found(rt, name)
            new = copy.deepcopy(body)
            meta = new.setdefault("metadata", {})
            if meta.get("name", name) != name:
                raise bad_request("the name of the object does not match the name on the URL")
            sent_rv = meta.get("resourceVersion")
            if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            meta["name"] = name
            for fixed in ("uid", "creationTimestamp", "namespace", "generation"):
                if fixed in old["metadata"]:
                    meta[fixed] = old["metadata"][fixed]
            new["kind"], new["apiVersion"] = rt.kind, rt.api_version
            if rt.plural in WITH_STATUS:
                if subresource == "status":
                    new = {**old, "status": new.get("status", {})}
                    new["metadata"] = copy.deepcopy(old["metadata"])
                else:
                    new["status"] = copy.deepcopy(old.get("status", {}))
            self._prepare_update(rt, old, new)
            if dry_run:
                return new
            if self._comparable(new) == self._comparable(old):
                return copy.deepcopy(old)  # a no-op write keeps its resourceVersion, as k8s does
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._objects[key] = new
            result = copy.deepcopy(new)
        self._notify("MODIFIED", rt, result)
        return result

    @staticmethod
    def _comparable(obj: Obj) -> Obj:
        clone = copy.deepcopy(obj)
        clone["metadata"].pop("resourceVersion", None)
        return clone

    def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch: Any,
        content_type: str,
        *,
        subresource: str = "",
        dry_run: bool = False,
    ) -> Obj:
        # The media type decides, compared whole: "strategic-merge-patch+json" contains
        # "merge-patch+json", so a substring test would apply strategic patches as JSON merges.
        media = content_type.split(";", 1)[0].strip().lower()
        with self._lock:
            current = self.get(rt, namespace, name)
            if media == "application/json-patch+json":
                if not isinstance(patch, list):
                    raise bad_request("json patch must be a list of operations")
                updated = json_patch(current, patch)
            elif media == "application/merge-patch+json":
                updated = merge_patch(current, patch)
            elif media == "application/strategic-merge-patch+json":
                updated = strategic_merge_patch(current, patch)
                # Top-level lists this kind declares without a patch strategy are replaced.
                for field_name in _ATOMIC_LISTS.get(rt.kind, ()):
                    if isinstance(patch, dict) and isinstance(patch.get(field_name), list):
                        updated[field_name] = copy.deepcopy(patch[field_name])
            elif media == "application/apply-patch+yaml":
                raise ApiError(415, "UnsupportedMediaType", "server-side apply is not simulated")
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown "
                    f"format - accepted media types include: application/json-patch+json, "
                    f"application/merge-patch+json, application/strategic-merge-patch+json "
                    f"(got {content_type!r})",
                )
            if not isinstance(updated, dict):
                raise bad_request("patch did not produce an object")
            sent_rv = (
                (patch.get("metadata") or {}).get("resourceVersion")
                if isinstance(patch, dict)
                else None
            )
            if not sent_rv:
                updated.setdefault("metadata", {})["resourceVersion"] = current["metadata"][
                    "resourceVersion"
                ]
            return self.replace(
                rt, namespace, name, updated, subresource=subresource, dry_run=dry_run
            )

    def delete(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        with self._lock:
            key = self._key(rt, namespace, name)
            obj = self._objects.pop(key, None)
            if obj is None:
                raise not_found(rt, name)
            removed: list[tuple[ResourceType, Obj]] = [(rt, obj)]
            if rt.kind == "Namespace":
                for child_key in [k for k in self._objects if k[1] == name and k[1]]:
                    child = self._objects.pop(child_key)
                    removed.append((BY_KIND[child["kind"]], child))
            self._next_rv()
        for kind_rt, gone in removed:
            self._notify("DELETED", kind_rt, gone)
        return copy.deepcopy(obj)

    # --- used by the simulated controllers (no validation, no conflict check) --------------------

    def update_status(self, rt: ResourceType, namespace: str, name: str, status: Obj) -> Obj | None:
        with self._lock:
            key = self._key(rt, namespace, name)
            old = self._objects.get(key)
            if old is None:
                return None
            if old.get("status") == status:
                return copy.deepcopy(old)
            new = copy.deepcopy(old)
            new["status"] = copy.deepcopy(status)
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._objects[key] = new
            result = copy.deepcopy(new)
        self._notify("MODIFIED", rt, result)
        return result

    def mutate(self, rt: ResourceType, namespace: str, name: str, fn: Callable[[Obj], None]) -> Obj:
        """Apply ``fn`` to a copy of the object and store it (controller writes)."""
        with self._lock:
            key = self._key(rt, namespace, name)
            old = self._objects.get(key)
            if old is None:
                raise not_found(rt, name)
            new = copy.deepcopy(old)
            fn(new)
            if new == old:
                return copy.deepcopy(old)
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._objects[key] = new
            result = copy.deepcopy(new)
        self._notify("MODIFIED", rt, result)
        return result

    # --- kind rules ----------------------------------------------------------------------------

    def _namespace_children(self, ns: str) -> None:
        for rt, body in (
            (RT["ServiceAccount"], {"metadata": {"name": "default", "namespace": ns}}),
            (
                RT["ConfigMap"],
                {
                    "metadata": {"name": "kube-root-ca.crt", "namespace": ns},
                    "data": {"ca.crt": self._ca_pem},
                },
            ),
        ):
            key = self._key(rt, ns, body["metadata"]["name"])
            obj: Obj = copy.deepcopy(body)
            obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version
            obj["metadata"].update(
                uid=str(uuid.uuid4()), creationTimestamp=now(), resourceVersion=self._next_rv()
            )
            self._objects[key] = obj

    def _prepare_create(self, rt: ResourceType, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        if rt.kind == "Namespace":
            obj["spec"] = {"finalizers": ["kubernetes"]}
            obj["status"] = {"phase": "Active"}
            obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        elif rt.kind == "Secret":
            self._secret_rules(rt, obj)
        elif rt.kind == "Service":
            self._service_rules(rt, obj, None)
        elif rt.kind == "Pod":
            self._pod_rules(rt, obj)
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rt.kind == "Deployment":
            self._deployment_rules(rt, obj)
            obj["status"] = {}
        elif rt.kind == "PersistentVolumeClaim":
            self._pvc_rules(rt, obj)
            obj["status"] = {"phase": "Bound", "accessModes": obj["spec"]["accessModes"]}

    def _prepare_update(self, rt: ResourceType, old: Obj, new: Obj) -> None:
        if rt.kind == "Secret":
            if new.get("type", old.get("type")) != old.get("type"):
                raise invalid(rt, old["metadata"]["name"], [("type", "field is immutable")])
            self._secret_rules(rt, new)
        elif rt.kind == "Service":
            self._service_rules(rt, new, old)
        elif rt.kind == "Pod":
            old_images = [c.get("image") for c in old["spec"].get("containers", [])]
            new_images = [c.get("image") for c in (new.get("spec") or {}).get("containers", [])]
            if len(old_images) != len(new_images):
                raise invalid(
                    rt,
                    old["metadata"]["name"],
                    [("spec", "Forbidden: pod updates may not change fields other than images")],
                )
        elif rt.kind == "Deployment":
            self._deployment_rules(rt, new)
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        elif rt.kind == "Namespace":
            new["spec"] = old.get("spec", {})
        elif rt.kind == "PersistentVolumeClaim" and (new.get("spec") or {}).get(
            "storageClassName"
        ) != old["spec"].get("storageClassName"):
            raise invalid(
                rt,
                old["metadata"]["name"],
                [("spec", "Forbidden: spec is immutable after creation except resources.requests")],
            )

    @staticmethod
    def _secret_rules(rt: ResourceType, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        obj.setdefault("type", "Opaque")
        data = obj.get("data") or {}
        if not isinstance(data, dict):
            raise bad_request("data must be a map of base64 strings")
        for key, value in data.items():
            try:
                base64.b64decode(str(value), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise bad_request(
                    f'Secret in version "v1" cannot be handled as a Secret: illegal base64 '
                    f"data in data[{key}]"
                ) from exc
        for key, value in (obj.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
        if obj["type"] == "kubernetes.io/dockerconfigjson":
            raw = data.get(".dockerconfigjson")
            if raw is None:
                raise invalid(rt, name, [("data[.dockerconfigjson]", "Required value")])
            try:
                parsed = json.loads(base64.b64decode(raw))
            except (ValueError, binascii.Error) as exc:
                raise invalid(
                    rt,
                    name,
                    [("data[.dockerconfigjson]", f"Invalid value: {exc.__class__.__name__}")],
                ) from exc
            if not isinstance(parsed, dict):
                raise invalid(rt, name, [("data[.dockerconfigjson]", "Invalid value: not a map")])

    def _service_rules(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        name = obj["metadata"]["name"]
        spec = obj.setdefault("spec", {})
        ports = spec.get("ports") or []
        if not ports and spec.get("type", "ClusterIP") != "ExternalName":
            raise invalid(rt, name, [("spec.ports", "Required value")])
        for port in ports:
            if not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
                raise invalid(rt, name, [("spec.ports[0].port", "Invalid value: must be 1-65535")])
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port["port"])
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        requested = spec.get("clusterIP") or ""
        if old is not None:
            previous = old["spec"].get("clusterIP", "")
            if requested and requested != previous:
                raise invalid(
                    rt,
                    name,
                    [("spec.clusterIP", f'Invalid value: "{requested}": field is immutable')],
                )
            spec["clusterIP"] = previous
        elif requested and requested != "None":
            try:
                address = ipaddress.ip_address(requested)
            except ValueError as exc:
                raise invalid(
                    rt,
                    name,
                    [
                        (
                            "spec.clusterIP",
                            f'Invalid value: "{requested}": must be a valid IP address',
                        )
                    ],
                ) from exc
            if address not in SERVICE_CIDR:
                raise invalid(
                    rt,
                    name,
                    [
                        (
                            "spec.clusterIPs",
                            f'Invalid value: ["{requested}"]: failed to allocate IP '
                            f"{requested}: provided IP is not in the valid range. "
                            f"The range of valid IPs is {SERVICE_CIDR}",
                        )
                    ],
                )
            if requested in self._used_ips():
                raise invalid(
                    rt,
                    name,
                    [
                        (
                            "spec.clusterIPs",
                            f'Invalid value: ["{requested}"]: failed to allocate IP '
                            f"{requested}: provided IP is already allocated",
                        )
                    ],
                )
        elif not requested:
            spec["clusterIP"] = self._allocate_ip()
        spec["clusterIPs"] = [spec["clusterIP"]]
        obj.setdefault("status", {"loadBalancer": {}})

    def _used_ips(self) -> set[str]:
        return {
            o["spec"].get("clusterIP", "")
            for (kind, _, _), o in self._objects.items()
            if kind == "/services"
        }

    def _allocate_ip(self) -> str:
        used = self._used_ips()
        while True:
            candidate = str(SERVICE_CIDR[random.randint(11, SERVICE_CIDR.num_addresses - 2)])
            if candidate not in used:
                return candidate

    @staticmethod
    def _pod_rules(rt: ResourceType, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        spec = obj.get("spec")
        if not isinstance(spec, dict) or not spec.get("containers"):
            raise invalid(rt, name, [("spec.containers", "Required value")])
        for i, container in enumerate(spec["containers"]):
            if not container.get("name"):
                raise invalid(rt, name, [(f"spec.containers[{i}].name", "Required value")])
            if not container.get("image"):
                raise invalid(rt, name, [(f"spec.containers[{i}].image", "Required value")])
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("serviceAccountName", "default")
        spec.setdefault("dnsPolicy", "ClusterFirst")

    @staticmethod
    def _deployment_rules(rt: ResourceType, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            raise invalid(rt, name, [("spec", "Required value")])
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        if not selector:
            raise invalid(rt, name, [("spec.selector", "Required value")])
        if any(labels.get(k) != v for k, v in selector.items()):
            raise invalid(
                rt,
                name,
                [
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: {labels}: `selector` does not match template `labels`",
                    )
                ],
            )
        if not (template.get("spec") or {}).get("containers"):
            raise invalid(rt, name, [("spec.template.spec.containers", "Required value")])
        spec.setdefault("replicas", 1)
        spec.setdefault("strategy", {"type": "RollingUpdate"})

    @staticmethod
    def _pvc_rules(rt: ResourceType, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        spec = obj.setdefault("spec", {})
        storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if not storage:
            raise invalid(rt, name, [("spec.resources[storage]", "Required value")])
        spec.setdefault("accessModes", ["ReadWriteOnce"])
        spec.setdefault("storageClassName", "local-path")
        spec.setdefault("volumeMode", "Filesystem")
