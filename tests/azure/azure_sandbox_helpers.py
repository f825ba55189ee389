"""Helpers for the Azure integration tests: the sandbox's internal API and a block for it."""

from __future__ import annotations

import json
from typing import Any

import requests

from blocks import ParentRegistry


class Internal:
    """The sandbox's /_sandbox endpoints (request log, faults, runtime), over HTTPS."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.base = info["arm_endpoint"].rstrip("/") + "/_sandbox"
        self.session = requests.Session()
        # Per request: a session-level verify loses to REQUESTS_CA_BUNDLE, which is exported here.
        self.ca = info["ca_bundle"]
        self.session.headers["X-Sandbox-Key"] = info["internal_key"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(
            method,
            self.base + path,
            data=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json"},
            timeout=30,
            verify=self.ca,
        )
        response.raise_for_status()
        return response.json() if response.content else None

    def requests(self) -> list[dict[str, Any]]:
        data = self.call("GET", "/requests")
        return list(data["requests"] if isinstance(data, dict) else data)

    def clear_requests(self) -> None:
        self.call("DELETE", "/requests")

    def writes(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if r.get("write")]

    def activate(self, connection_string: str) -> dict[str, Any]:
        return dict(
            self.call("POST", "/runtime/activate", {"connection_string": connection_string})
        )


def block_for(info: dict[str, Any], **over: Any) -> ParentRegistry:
    args: dict[str, Any] = {
        "subscription_id": info["subscription_id"],
        "resource_group": info["resource_group"],
        "registry_name": info["registry"],
        "auth": "service-principal",
        "tenant_id": info["tenant_id"],
        "client_id": info["client_id"],
        "client_secret": info["client_secret"],
        "arm_endpoint": info["arm_endpoint"],
        "authority_host": info["authority"],
        "data_plane_endpoint": info["data_plane_endpoint"],
        "ca_bundle_path": info["ca_bundle"],
    }
    args.update(over)
    return ParentRegistry(**args)
