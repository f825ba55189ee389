"""``/_sandbox/...``: knobs and runtime hooks over HTTPS, guarded by ``X-Sandbox-Key``."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from sandbox.azure.faults import FaultRule
from sandbox.azure.http import Request, Response

if TYPE_CHECKING:
    from sandbox.azure.server import AzureSandbox


def _bad(message: str, status: int = 400) -> Response:
    return Response.json(status, {"ok": False, "error": message})


def handle_internal(sandbox: AzureSandbox, req: Request) -> Response:
    key = req.headers.get("x-sandbox-key", "")
    if not hmac.compare_digest(key.encode(), sandbox.internal_key.encode()):
        return _bad("missing or wrong X-Sandbox-Key", 401)
    try:
        body: Any = req.json() if req.body else {}
    except ValueError:
        return _bad("body must be JSON")
    body = body or {}
    route = (req.method, req.path.rstrip("/").lower())
    try:
        if route == ("POST", "/_sandbox/runtime/activate"):
            return Response.json(
                200,
                sandbox.activate(
                    str(body.get("connection_string", "")),
                    instance_id=body.get("instance_id"),
                    login_server=body.get("login_server"),
                ),
            )
        if route == ("POST", "/_sandbox/runtime/pull-check"):
            return Response.json(
                200,
                sandbox.pull_check(
                    str(body.get("connected_registry", "")),
                    str(body.get("username", "")),
                    str(body.get("password", "")),
                    str(body.get("repository", "")),
                    str(body.get("tag", "latest")),
                ),
            )
        if route == ("POST", "/_sandbox/runtime/deactivate"):
            return Response.json(200, sandbox.deactivate(str(body.get("connected_registry", ""))))
        if route == ("GET", "/_sandbox/secrets"):
            return Response.json(200, {"secrets": sandbox.secrets()})
        if route == ("GET", "/_sandbox/requests"):
            return Response.json(200, {"requests": sandbox.requests()})
        if route == ("DELETE", "/_sandbox/requests"):
            sandbox.clear_requests()
            return Response.json(200, {"ok": True})
        if route == ("GET", "/_sandbox/faults"):
            return Response.json(200, {"rules": [r.to_dict() for r in sandbox.faults.rules]})
        if route == ("DELETE", "/_sandbox/faults"):
            sandbox.clear_faults()
            return Response.json(200, {"ok": True})
        if route == ("POST", "/_sandbox/faults"):
            if body.get("clear"):
                sandbox.clear_faults()
            if "seed" in body:
                sandbox.faults.reseed(int(body["seed"]))
            added = [sandbox.faults.add(FaultRule(**rule)) for rule in body.get("rules", [])]
            return Response.json(200, {"ok": True, "rules": [r.to_dict() for r in added]})
        if route == ("POST", "/_sandbox/latency"):
            sandbox.set_knobs(**body)
            return Response.json(200, {"ok": True, "knobs": dict(sandbox.knobs.__dict__)})
        if route == ("GET", "/_sandbox/throttle"):
            return Response.json(200, sandbox.throttle_status())
        if route == ("POST", "/_sandbox/throttle"):
            if not isinstance(body, dict):
                return _bad("body must be a JSON object")
            return Response.json(200, {"ok": True, **sandbox.set_throttle(**body)})
        if route == ("GET", "/_sandbox/state"):
            return Response.json(200, sandbox.snapshot())
        if route == ("POST", "/_sandbox/principals"):
            return Response.json(
                200,
                sandbox.add_principal(list(body.get("roles", [])), scope=body.get("scope")),
            )
        if route == ("POST", "/_sandbox/lro-outcomes"):
            if body.get("clear"):
                sandbox.clear_lro_outcomes()
            outcomes = [sandbox.fail_lro(**rule) for rule in body.get("rules", [])]
            return Response.json(200, {"ok": True, "rules": [r.to_dict() for r in outcomes]})
        if route == ("GET", "/_sandbox/lro-outcomes"):
            return Response.json(200, {"rules": [r.to_dict() for r in sandbox.arm.outcomes.rules]})
        if route == ("DELETE", "/_sandbox/lro-outcomes"):
            sandbox.clear_lro_outcomes()
            return Response.json(200, {"ok": True})
        if route == ("POST", "/_sandbox/connected-registry-state"):
            return Response.json(
                200,
                sandbox.set_connected_registry_state(
                    str(body.get("connected_registry", "")),
                    str(body.get("state", "")),
                    code=body.get("code"),
                    description=body.get("description"),
                ),
            )
        if route == ("POST", "/_sandbox/repositories"):
            sandbox.set_repositories(list(body.get("repositories", [])))
            return Response.json(200, {"ok": True})
    except (TypeError, ValueError, KeyError) as exc:
        return _bad(str(exc))
    return _bad(f"no internal endpoint {req.method} {req.path}", 404)
