"""The Azure sandbox: one HTTPS server on 127.0.0.1 serving Entra ID, ARM and the ACR data plane.

``AzureSandbox`` is also the Python API for tests: seed data, knobs, faults, request log,
secrets, and the connected-registry runtime hooks.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sandbox.azure import connected_registries as crs
from sandbox.azure import crstate, rbac
from sandbox.azure import resources as res
from sandbox.azure.arm import ArmApi, metadata_endpoints
from sandbox.azure.config import Knobs, SeedConfig
from sandbox.azure.dataplane import DataPlane, is_dataplane_path
from sandbox.azure.entra import ARM_AUDIENCES, Entra, is_entra_path
from sandbox.azure.faults import FaultRule, FaultTable, LoggedRequest, RequestLog
from sandbox.azure.http import ArmError, Request, Response, parse_bool
from sandbox.azure.internal import handle_internal
from sandbox.azure.lro import LroOutcome
from sandbox.azure.runtime import Runtime
from sandbox.azure.store import Principal, Registry, Store, Subscription
from sandbox.azure.throttle import Admission, ArmThrottle, parse_rates, throttled_subscription
from sandbox.tls import SandboxCA, create_ca

TOKEN_PATHS = ("/oauth2/exchange", "/oauth2/token")


def classify_path(path: str) -> str:
    low = path.lower()
    if low.startswith("/_sandbox"):
        return "internal"
    if is_entra_path(path):
        return "entra"
    if is_dataplane_path(path):
        return "dataplane"
    if low.startswith(("/subscriptions", "/tenants", "/metadata")):
        return "arm"
    return "other"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    sandbox: AzureSandbox

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that drop connections (or reject our certificate in a test) are expected.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    server_version = "acr-edge-sandbox"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        body = self._read_body()
        req = Request.build(self.command, self.path, dict(self.headers.items()), body)
        resp = self.server.sandbox.handle(req)
        if resp.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.send_header("x-ms-request-id", secrets.token_hex(16))
        self.end_headers()
        if resp.body and self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch


class AzureSandbox:
    """Start with ``start()`` (or as a context manager); ``info()`` gives sandbox.json fields."""

    def __init__(
        self,
        state_dir: Path,
        *,
        seed: SeedConfig | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        fault_seed: int = 0,
        internal_key: str | None = None,
        throttle: dict[str, Any] | None = None,
        **knobs: Any,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.seed = seed or SeedConfig()
        self.host = host
        self.requested_port = port
        self.knobs = Knobs()
        self.set_knobs(**knobs)
        self.store = Store(self.knobs)
        self.faults = FaultTable(seed=fault_seed)
        # ARM's token buckets, on by default with ARM's rates; ``throttle`` takes the fields
        # of POST /_sandbox/throttle (enabled, reads/writes/deletes, global_multiplier, ...)
        self.throttle = ArmThrottle()
        if throttle:
            self.set_throttle(**throttle)
        self.log = RequestLog()
        self.internal_key = internal_key or secrets.token_urlsafe(24)
        self._key = secrets.token_bytes(32)
        self.entra = Entra(self.store, self._key, self.base_url_fn)
        self.arm = ArmApi(self.store, self.base_url_fn, self.entra.authenticate_arm)
        self.dataplane = DataPlane(
            self.store, self.entra, self._key, self.base_url_fn, self.primary_registry
        )
        self.runtime = Runtime(self.store)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.ca: SandboxCA | None = None
        self._apply_seed()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> AzureSandbox:
        self.ca = create_ca(self.state_dir)
        ctx = self.ca.server_context(self.host, "localhost")
        server = _Server((self.host, self.requested_port), _Handler, bind_and_activate=True)
        # handshake lazily in the handler thread, so a slow client never blocks accept()
        server.socket = ctx.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        server.sandbox = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="azure-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> AzureSandbox:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Azure sandbox is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def base_url_fn(self) -> str:
        return self.base_url

    @property
    def ca_pem(self) -> Path:
        if self.ca is None:
            raise RuntimeError("the Azure sandbox is not running")
        return self.ca.ca_pem

    def info(self) -> dict[str, Any]:
        reg = self.primary_registry()
        s = self.seed
        return {
            "arm_endpoint": self.base_url,
            "authority": self.base_url,
            "tenant_id": s.tenant_id,
            "client_id": s.client_id,
            "client_secret": s.client_secret,
            "subscription_id": s.subscription_id,
            "resource_group": reg.resource_group,
            "registry": reg.name,
            "location": reg.location,
            "login_server": reg.login_server,
            "data_plane_endpoint": self.base_url,
            "ca_bundle": str(self.ca_pem),
            "internal_endpoint": f"{self.base_url}/_sandbox",
            "internal_key": self.internal_key,
        }

    # -- seed -------------------------------------------------------------------------------
    def _apply_seed(self) -> None:
        s = self.seed
        self.store.add_tenant(s.tenant_id)
        self.store.subscriptions[s.subscription_id.lower()] = Subscription(
            id=s.subscription_id, display_name=s.subscription_name, tenant_id=s.tenant_id
        )
        # the seeded principal keeps full rights on the subscription so the normal flows work
        self.add_client(s.client_id, s.client_secret, roles=[s.role])
        self.add_registry(
            s.registry,
            resource_group=s.resource_group,
            location=s.location,
            sku=s.sku,
            data_endpoint_enabled=s.data_endpoint_enabled,
            repositories=s.repository_list(),
        )

    def add_registry(
        self,
        name: str,
        *,
        resource_group: str | None = None,
        location: str | None = None,
        sku: str = "Premium",
        data_endpoint_enabled: bool = False,
        repositories: list[str] | None = None,
    ) -> Registry:
        res.check_name("registries", name)
        with self.store.lock:
            return self.store.add_registry(
                Registry(
                    subscription_id=self.seed.subscription_id,
                    resource_group=resource_group or self.seed.resource_group,
                    name=name,
                    location=location or self.seed.location,
                    sku=sku,
                    data_endpoint_enabled=data_endpoint_enabled,
                    repositories=sorted(set(repositories or [])),
                )
            )

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        *,
        roles: list[str] | tuple[str, ...] = (),
        scope: str | None = None,
    ) -> Principal:
        """Register a service principal in the seed tenant with ``roles`` at ``scope``.

        ``scope`` defaults to the subscription; with no roles the principal can sign in but
        ARM refuses it everything (403 AuthorizationFailed), as for a fresh app registration.
        """
        with self.store.lock:
            self.store.tenants[self.seed.tenant_id.lower()].clients[client_id.lower()] = (
                client_secret
            )
            self.store.remember_secret(client_secret)
            principal = self.store.principals.setdefault(
                client_id.lower(), Principal(client_id=client_id, object_id=rbac.new_object_id())
            )
            for name in roles:
                self.assign_role(client_id, name, scope)
            return principal

    def assign_role(self, client_id: str, role: str, scope: str | None = None) -> None:
        """A role assignment (``role`` is a name from ``sandbox.azure.rbac.ROLES``)."""
        definition = rbac.role(role)
        with self.store.lock:
            principal = self.store.principals[client_id.lower()]
            at = scope or f"/subscriptions/{self.seed.subscription_id}"
            if (at, definition.name) not in principal.assignments:
                principal.assignments.append((at, definition.name))

    def define_role(
        self, name: str, actions: list[str], data_actions: list[str] | None = None
    ) -> None:
        """A custom role definition principals can then be given (``add_principal([name])``)."""
        rbac.define_role(name, actions, data_actions or [])

    def add_principal(
        self, roles: list[str] | tuple[str, ...], *, scope: str | None = None
    ) -> dict[str, str]:
        """A new service principal with ``roles`` at ``scope`` (default: the seed registry).

        Returns ``client_id``, ``client_secret`` and ``object_id`` for tests that need
        credentials of, say, a Reader-only or AcrPull-only principal.
        """
        client_id, secret = str(uuid.uuid4()), secrets.token_urlsafe(24)
        at = scope or self.primary_registry().id
        principal = self.add_client(client_id, secret, roles=list(roles), scope=at)
        return {"client_id": client_id, "client_secret": secret, "object_id": principal.object_id}

    # -- failure knobs ------------------------------------------------------------------------
    def fail_lro(
        self,
        path: str = ".*",
        *,
        method: str = "PUT|PATCH|POST|DELETE",
        status: str = "Failed",
        code: str = "",
        message: str = "",
        http_status: int = 500,
        times: int | None = 1,
    ) -> LroOutcome:
        """Make the next ``times`` matching writes LROs that end ``status`` (Failed/Canceled)."""
        return self.arm.outcomes.add(
            LroOutcome(
                status=status,
                method=method,
                path=path,
                code=code,
                message=message,
                http_status=http_status,
                times=times,
            )
        )

    def clear_lro_outcomes(self) -> None:
        self.arm.outcomes.clear()

    def set_connected_registry_state(
        self,
        connected_registry: str,
        state: str,
        *,
        code: str | None = None,
        description: str | None = None,
        registry: str | None = None,
    ) -> dict[str, Any]:
        """Hold a connected registry ``Syncing``, ``Unhealthy``/``Offline`` with a statusDetails
        ``code`` (see ``sandbox.azure.crstate.STATUS_CODES``), or release it (``Online``)."""
        with self.store.lock:
            child = self._registry(registry).connected_registries.get(connected_registry.lower())
            if child is None:
                raise KeyError(f"no connected registry {connected_registry!r}")
            crstate.hold(child, state, code, description)
            return self.arm._render(self._registry(registry), "connectedregistries", child)

    def primary_registry(self) -> Registry:
        reg = self.store.find_registry(
            self.seed.subscription_id, self.seed.resource_group, self.seed.registry
        )
        if reg is None:
            raise RuntimeError("the seed registry is gone")
        return reg

    def set_repositories(self, repositories: list[str], registry: str | None = None) -> None:
        with self.store.lock:
            reg = self._registry(registry)
            reg.repositories = sorted(set(repositories))

    def add_repositories(self, repositories: list[str], registry: str | None = None) -> None:
        with self.store.lock:
            reg = self._registry(registry)
            reg.repositories = sorted(set(reg.repositories) | set(repositories))

    def _registry(self, name: str | None) -> Registry:
        if name is None:
            return self.primary_registry()
        for reg in self.store.all_registries():
            if reg.name.lower() == name.lower():
                return reg
        raise KeyError(f"no registry {name!r}")

    def seed_resource(
        self, collection: str, name: str, body: dict[str, Any], registry: str | None = None
    ) -> dict[str, Any]:
        """Create a scope map / token / connected registry directly (no HTTP, no LRO).

        ``collection`` is "scopeMaps", "tokens" or "connectedRegistries"; ``body`` is the ARM
        PUT body. Returns the rendered resource.
        """
        coll = collection.lower()
        put = {
            "scopemaps": res.put_scope_map,
            "tokens": res.put_token,
            "connectedregistries": crs.put_connected_registry,
        }[coll]
        with self.store.lock:
            reg = self._registry(registry)
            child, _ = put(self.store, reg, name, body)
            return self.arm._render(reg, coll, child)

    def resource(
        self, collection: str, name: str, registry: str | None = None
    ) -> dict[str, Any] | None:
        """The ARM view of a child resource (as GET would return it), or None."""
        coll = collection.lower()
        with self.store.lock:
            reg = self._registry(registry)
            child = self.arm._table(reg, coll).get(name.lower())
            return None if child is None else self.arm._render(reg, coll, child)

    def password_values(self, token: str, registry: str | None = None) -> dict[str, str]:
        """Current password values by slot (tests only; ARM never returns them on GET)."""
        with self.store.lock:
            child = self._registry(registry).tokens.get(token.lower())
            return {} if child is None else {k: v.value for k, v in child.passwords.items()}

    def snapshot(self) -> dict[str, Any]:
        with self.store.lock:
            out: dict[str, Any] = {}
            for reg in self.store.all_registries():
                out[reg.id] = {
                    "registry": res.render_registry(self.store, reg),
                    "scopeMaps": [
                        res.render_scope_map(self.store, reg, c) for c in reg.scope_maps.values()
                    ],
                    "tokens": [res.render_token(self.store, reg, c) for c in reg.tokens.values()],
                    "connectedRegistries": [
                        crs.render_connected_registry(self.store, reg, c)
                        for c in reg.connected_registries.values()
                    ],
                    "repositoryCount": len(reg.repositories),
                }
            return out

    # -- knobs, faults, log, secrets --------------------------------------------------------
    def set_knobs(self, **knobs: Any) -> None:
        for name, value in knobs.items():
            if not hasattr(self.knobs, name):
                raise ValueError(f"unknown knob {name!r}; known: {sorted(Knobs().__dict__)}")
            current = getattr(self.knobs, name)
            if isinstance(current, bool):
                value = parse_bool(value)  # bool("false") would be True
            setattr(self.knobs, name, type(current)(value))

    set_latency = set_knobs

    def add_fault(
        self,
        kind: str = "503",
        *,
        method: str = ".*",
        path: str = ".*",
        times: int | None = 1,
        rate: float | None = None,
        retry_after: float = 0,
        sequence: list[str] | None = None,
    ) -> FaultRule:
        """Fail matching requests: ``kind`` is "429", "500", "503" or "drop".

        With ``sequence`` (e.g. ``["503", "ok", "drop"]``) each matching request consumes one
        entry; otherwise the rule fires ``times`` times (None = always), each with probability
        ``rate`` (None = 1) drawn from the sandbox's seeded RNG.
        """
        return self.faults.add(
            FaultRule(
                kind="ok" if sequence is not None else kind,
                method=method,
                path=path,
                times=times,
                rate=rate,
                retry_after=retry_after,
                sequence=list(sequence) if sequence is not None else None,
            )
        )

    inject_fault = add_fault

    def script_faults(
        self, sequence: list[str], *, method: str = ".*", path: str = ".*", retry_after: float = 0
    ) -> FaultRule:
        return self.add_fault(method=method, path=path, retry_after=retry_after, sequence=sequence)

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_throttle(
        self,
        *,
        enabled: Any = None,
        reads: dict[str, float] | None = None,
        writes: dict[str, float] | None = None,
        deletes: dict[str, float] | None = None,
        global_multiplier: float | None = None,
        min_retry_after: int | None = None,
        reset: Any = False,
    ) -> dict[str, Any]:
        """ARM throttle knobs (see ``sandbox.azure.throttle``); returns the new status.

        ``reads``/``writes``/``deletes`` are ``{"capacity": N, "refill_per_second": R}`` of the
        per-principal bucket (the subscription's global bucket is ``global_multiplier`` times
        it). New rates or ``reset`` refill every bucket; ``reset`` also zeroes the counts.
        """
        given = {"reads": reads, "writes": writes, "deletes": deletes}
        rates = parse_rates({k: v for k, v in given.items() if v is not None}, self.throttle.rates)
        self.throttle.configure(
            enabled=None if enabled is None else _flag("enabled", enabled),
            rates=rates,
            global_multiplier=None if global_multiplier is None else float(global_multiplier),
            min_retry_after=None if min_retry_after is None else int(min_retry_after),
            reset=_flag("reset", reset),
        )
        return self.throttle.status()

    def throttle_status(self) -> dict[str, Any]:
        """Rates, 429s per kind, and the tokens left (GET /_sandbox/throttle)."""
        return self.throttle.status()

    def requests(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.log.entries() if kind is None or e.kind == kind]

    def clear_requests(self) -> None:
        self.log.clear()

    def arm_counts(self) -> dict[str, int]:
        """ARM reads and writes since the log was last cleared (LRO polls counted apart)."""
        arm = [e for e in self.log.entries() if e.kind == "arm"]
        return {
            "reads": sum(1 for e in arm if not e.write and not e.lro_poll),
            "writes": sum(1 for e in arm if e.write),
            "polls": sum(1 for e in arm if e.lro_poll),
        }

    def secrets(self) -> list[str]:
        with self.store.lock:
            return [self.internal_key, *self.store.issued_secrets]

    # -- runtime hooks ----------------------------------------------------------------------
    def activate(
        self,
        connection_string: str,
        *,
        instance_id: str | None = None,
        login_server: str | None = None,
    ) -> dict[str, Any]:
        with self.store.lock:
            return self.runtime.activate(connection_string, instance_id, login_server)

    def deactivate(self, connected_registry: str) -> dict[str, Any]:
        with self.store.lock:
            for reg in self.store.all_registries():
                child = reg.connected_registries.get(connected_registry.lower())
                if child is not None:
                    crs.deactivate_connected_registry(child)
                    return {"ok": True}
        return {"ok": False, "reason": f"connected registry '{connected_registry}' not found"}

    def pull_check(
        self,
        connected_registry: str,
        username: str,
        password: str,
        repository: str,
        tag: str = "latest",
    ) -> dict[str, Any]:
        with self.store.lock:
            return self.runtime.pull_check(connected_registry, username, password, repository, tag)

    # -- request handling -------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        kind = classify_path(req.path)
        if kind == "internal":
            return handle_internal(self, req)
        if self.knobs.latency > 0:
            time.sleep(self.knobs.latency)
        admission = self._admit(kind, req)
        if admission is not None and not admission.allowed:
            # ARM's front door refuses before any resource provider (or fault) sees it
            resp = Response.json(
                429,
                admission.error_body(),
                {**admission.headers(), "x-ms-failure-cause": "gateway"},
            )
        else:
            faulted = self.faults.pick(req.method, req.path)
            if faulted is not None:
                resp = faulted
            else:
                with self.store.lock:
                    resp = self._route(kind, req)
            if admission is not None:
                resp.headers.update(admission.headers())
        low = req.path.lower()
        lro_poll = kind == "arm" and ("/operationstatuses/" in low or "/operationresults/" in low)
        write = (
            req.method not in ("GET", "HEAD")
            and kind in ("arm", "dataplane")
            and low not in TOKEN_PATHS
        )
        self.log.add(
            LoggedRequest(
                method=req.method,
                path=req.path,
                query=req.raw_query,
                status=resp.status,
                write=write,
                kind=kind,
                lro_poll=lro_poll,
            )
        )
        return resp

    def _admit(self, kind: str, req: Request) -> Admission | None:
        """The throttle's verdict for an authenticated subscription-scoped ARM request.

        Unauthenticated requests are not counted: ARM answers them 401 and names no actor.
        """
        if kind != "arm" or not self.throttle.enabled:
            return None
        subscription = throttled_subscription(req.path)
        if subscription is None:
            return None
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        claims = self.entra.verify(token.strip(), ARM_AUDIENCES)
        if claims is None:
            return None
        actor = str(claims.get("oid") or claims.get("appid") or "")
        return self.throttle.admit(subscription, actor, req.method)

    def _route(self, kind: str, req: Request) -> Response:
        try:
            if kind == "entra":
                return self.entra.handle(req)
            if kind == "dataplane":
                return self.dataplane.handle(req)
            if req.path.lower().rstrip("/") == "/metadata/endpoints":
                return Response.json(200, metadata_endpoints(self.base_url))
            if kind == "arm":
                return self.arm.handle(req)
            return Response.json(
                404, {"error": {"code": "NotFound", "message": f"No route for {req.path}"}}
            )
        except ArmError as err:
            return err.response()
        except Exception as exc:  # a sandbox bug must surface as an answer, not a hang
            return Response.json(
                500,
                {
                    "error": {
                        "code": "SandboxInternalError",
                        "message": f"{type(exc).__name__}: {exc}",
                    }
                },
            )


def _flag(name: str, value: Any) -> bool:
    """A knob's boolean (JSON or its spelling); ValueError, which /_sandbox answers 400."""
    try:
        return parse_bool(value)
    except ArmError as err:
        raise ValueError(f"{name}: {err.message}") from err


def start_azure_sandbox(state_dir: Path, **kwargs: Any) -> AzureSandbox:
    return AzureSandbox(state_dir, **kwargs).start()
