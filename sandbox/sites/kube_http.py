"""HTTP routing of a node's Kubernetes API onto its KubeStore (what the python client sends).

Missing Content-Type means JSON (the real API server accepts it); errors are Status bodies;
anonymous requests get 401 because K3s runs with anonymous auth off.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sandbox.sites.httpd import Request, Response
from sandbox.sites.kube_objects import BY_PATH, RESOURCES, ApiError, Obj, ResourceType, bad_request
from sandbox.sites.kube_store import KubeStore

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.4+k3s1",
    "gitCommit": "a3fa0dd3ab7d6c6b1ef7b1a2a1a9e4b5b3c6d7e8",
    "gitTreeState": "clean",
    "buildDate": "2024-12-12T00:00:00Z",
    "goVersion": "go1.22.9",
    "compiler": "gc",
    "platform": "linux/amd64",
}


def _resource_list(group_version: str) -> Obj:
    group = group_version.split("/")[0] if "/" in group_version else ""
    resources: list[Obj] = []
    for rt in RESOURCES:
        if rt.group != group:
            continue
        verbs = ["create", "delete", "get", "list", "patch", "update"]
        resources.append(
            {
                "name": rt.plural,
                "singularName": rt.kind.lower(),
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": verbs,
            }
        )
        if rt.plural in ("pods", "deployments", "services", "namespaces", "nodes"):
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }


class KubeApi:
    """Request handler for one node's API server."""

    def __init__(
        self,
        store: KubeStore,
        *,
        unavailable: Callable[[], bool],
        pod_log: Callable[[str, str], str] | None = None,
    ) -> None:
        self.store = store
        self._unavailable = unavailable
        self._pod_log = pod_log
        self.requests = 0

    async def __call__(self, request: Request) -> Response:
        self.requests += 1
        if self._unavailable():
            return Response.json(
                503,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": "the server is currently unable to handle the request",
                    "reason": "ServiceUnavailable",
                    "code": 503,
                },
                **{"Retry-After": "1"},
            )
        if request.peer_cert is None and request.path not in ("/livez", "/readyz", "/healthz"):
            return Response.json(
                401,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": "Unauthorized",
                    "reason": "Unauthorized",
                    "code": 401,
                },
            )
        try:
            return self._route(request)
        except ApiError as err:
            return Response.json(err.code, err.status())

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/") or "/"
        if path in ("/livez", "/readyz", "/healthz"):
            return Response(200, b"ok", content_type="text/plain")
        if path == "/version":
            return Response.json(200, VERSION)
        if path == "/api":
            return Response.json(
                200,
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
                    ],
                },
            )
        if path == "/apis":
            return Response.json(
                200,
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [
                        {
                            "name": "apps",
                            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
                        }
                    ],
                },
            )
        if path == "/api/v1":
            return Response.json(200, _resource_list("v1"))
        if path == "/apis/apps":
            return Response.json(
                200,
                {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    "name": "apps",
                    "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                },
            )
        if path == "/apis/apps/v1":
            return Response.json(200, _resource_list("apps/v1"))
        parts = path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3 and (group, version, rest[2]) in BY_PATH:
            namespace, rest = rest[1], rest[2:]
        rt = BY_PATH.get((group, version, rest[0]))
        if rt is None or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) >= 2 else ""
        sub = rest[2] if len(rest) == 3 else ""
        return self._dispatch(request, rt, namespace, name, sub)

    def _dispatch(
        self, request: Request, rt: ResourceType, namespace: str, name: str, sub: str
    ) -> Response:
        method = request.method
        dry_run = bool(request.query.get("dryRun"))
        if sub and sub not in ("status", "log"):
            raise ApiError(
                404, "NotFound", f"the server could not find the requested resource ({sub})"
            )
        if not name:
            if method == "GET":
                if request.param("watch") in ("true", "1"):
                    raise ApiError(405, "MethodNotAllowed", "watch is not simulated; poll instead")
                items = self.store.list(
                    rt,
                    namespace or None,
                    request.param("labelSelector"),
                    request.param("fieldSelector"),
                )
                for item in items:
                    item.pop("kind", None)
                    item.pop("apiVersion", None)
                return Response.json(
                    200,
                    {
                        "kind": f"{rt.kind}List",
                        "apiVersion": rt.api_version,
                        "metadata": {"resourceVersion": self.store.resource_version()},
                        "items": items,
                    },
                )
            if method == "POST":
                self._need_namespace(rt, namespace)
                return Response.json(
                    201, self.store.create(rt, namespace, self._body(request), dry_run=dry_run)
                )
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        self._need_namespace(rt, namespace)
        if sub == "log":
            if rt.kind != "Pod" or method != "GET":
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            self.store.get(rt, namespace, name)
            text = self._pod_log(namespace, name) if self._pod_log else ""
            return Response(200, text.encode(), content_type="text/plain")
        if method == "GET":
            return Response.json(200, self.store.get(rt, namespace, name))
        if method == "PUT":
            return Response.json(
                200,
                self.store.replace(
                    rt, namespace, name, self._body(request), subresource=sub, dry_run=dry_run
                ),
            )
        if method == "PATCH":
            content_type = request.headers.get("content-type", "")
            return Response.json(
                200,
                self.store.patch(
                    rt,
                    namespace,
                    name,
                    self._body(request),
                    content_type,
                    subresource=sub,
                    dry_run=dry_run,
                ),
            )
        if method == "DELETE":
            obj = self.store.delete(rt, namespace, name)
            if rt.kind in ("Pod", "Namespace"):
                return Response.json(200, obj)
            return Response.json(
                200,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": {
                        "name": name,
                        "group": rt.group,
                        "kind": rt.plural,
                        "uid": obj["metadata"].get("uid"),
                    },
                },
            )
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    @staticmethod
    def _need_namespace(rt: ResourceType, namespace: str) -> None:
        if rt.namespaced and not namespace:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

    @staticmethod
    def _body(request: Request) -> Any:
        content_type = request.headers.get("content-type", "application/json")
        if "yaml" in content_type or "protobuf" in content_type:
            raise ApiError(415, "UnsupportedMediaType", f"{content_type} is not simulated")
        try:
            return json.loads(request.body or b"null")
        except ValueError as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from exc
