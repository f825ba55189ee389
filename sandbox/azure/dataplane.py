"""ACR data plane: the challenge/exchange/token flow of azure-containerregistry and the catalog."""

from __future__ import annotations

import base64
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from sandbox.azure import jwt, rbac
from sandbox.azure.credentials import grants, matching_password, scope_map_actions
from sandbox.azure.entra import ACR_AUDIENCE, ARM_AUDIENCES, Entra
from sandbox.azure.http import Request, Response
from sandbox.azure.store import Child, Registry, Store, utcnow

CATALOG_SCOPE = "registry:catalog:*"


def is_dataplane_path(path: str) -> bool:
    low = path.lower()
    return low in ("/oauth2/exchange", "/oauth2/token", "/v2", "/v2/") or low.startswith(
        ("/acr/v1/", "/v2/_catalog")
    )


# Headers ACR's registry front end puts on catalog and challenge answers (recording).
_EXPOSE = "Docker-Content-Digest, WWW-Authenticate, Link, X-Ms-Correlation-Request-Id"


def _acr_json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """Registry-style JSON as recorded: compact, newline-terminated, correlation id."""
    hdrs = {
        "Content-Type": "application/json; charset=utf-8",
        "X-Ms-Correlation-Request-Id": str(uuid.uuid4()),
    }
    hdrs.update(headers or {})
    body = json.dumps(payload, separators=(",", ":")) + "\n"
    return Response(status=status, body=body.encode(), headers=hdrs)


def _registry_json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    """``_acr_json`` plus the distribution headers of /v2 and /acr/v1 answers."""
    return _acr_json(
        status,
        payload,
        {
            "Docker-Distribution-Api-Version": "registry/2.0",
            "Access-Control-Expose-Headers": _EXPOSE,
            **(headers or {}),
        },
    )


def _errors(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, detail: Any = None
) -> Response:
    item: dict[str, Any] = {"code": code, "message": message}
    if detail is not None:
        item["detail"] = detail
    return _acr_json(status, {"errors": [item]}, headers)


class DataPlane:
    def __init__(
        self,
        store: Store,
        entra: Entra,
        key: bytes,
        base_url: Callable[[], str],
        primary: Callable[[], Registry],
    ) -> None:
        self.store = store
        self.entra = entra
        self.key = key
        self.base_url = base_url
        self.primary = primary

    def handle(self, req: Request) -> Response:
        low = req.path.lower()
        if low == "/oauth2/exchange" and req.method == "POST":
            return self._exchange(req)
        if low == "/oauth2/token" and req.method == "POST":
            return self._token_from_refresh(req)
        if low == "/oauth2/token" and req.method == "GET":
            return self._token_from_login(req)
        if low in ("/acr/v1/_catalog", "/v2/_catalog") and req.method == "GET":
            return self._catalog(req)
        if low in ("/v2", "/v2/") and req.method == "GET":
            principal = self._principal(req)
            if principal is None:
                return self._challenge(None)
            return _registry_json(200, {})
        return _errors(404, "NOT_FOUND", f"{req.method} {req.path} is not served by the sandbox")

    # -- registry lookup --------------------------------------------------------------------
    def _registry(self, service: str | None) -> Registry | None:
        if not service:
            return self.primary()
        for reg in self.store.all_registries():
            if reg.login_server == service.lower():
                return reg
        return None

    def _challenge(self, reg: Registry | None, scope: str = CATALOG_SCOPE) -> Response:
        reg = reg or self.primary()
        header = (
            f'Bearer realm="{self.base_url()}/oauth2/token",service="{reg.login_server}",'
            f'scope="{scope}"'
        )
        name, _, action = scope.rpartition(":")
        typ, _, res_name = name.partition(":")
        item = {
            "code": "UNAUTHORIZED",
            "message": "authentication required, visit "
            "https://aka.ms/acr/authorization for more information.",
            "detail": [{"Type": typ, "Name": res_name, "Action": action}],
        }
        return _registry_json(401, {"errors": [item]}, {"WWW-Authenticate": header})

    # -- token endpoints --------------------------------------------------------------------
    def _exchange(self, req: Request) -> Response:
        form = req.form()
        grant = form.get("grant_type", "")
        if grant not in ("access_token", "access_token_refresh_token"):
            return _errors(400, "UNSUPPORTED", f"grant_type '{grant}' is not supported")
        reg = self._registry(form.get("service"))
        if reg is None:
            return _errors(400, "INVALID_SERVICE", f"unknown service '{form.get('service')}'")
        claims = self.entra.verify(form.get("access_token", ""), ARM_AUDIENCES | {ACR_AUDIENCE})
        if claims is None:
            return _errors(401, "UNAUTHORIZED", "the AAD access token is invalid or expired")
        now = int(time.time())
        refresh = jwt.sign(
            self.key,
            {
                "jti": str(uuid.uuid4()),
                "sub": claims.get("oid"),
                "nbf": now,
                "iat": now,
                "exp": now + self.store.knobs.token_lifetime * 3,
                "iss": "Azure Container Registry",
                "aud": reg.login_server,
                "version": "1.0",
                "grant_type": "refresh_token",
                "tenant": claims.get("tid"),
                "permissions": {"actions": ["*"], "notActions": []},
                "roles": [],
            },
        )
        self.store.remember_secret(refresh)
        return _acr_json(200, {"refresh_token": refresh})

    def _token_from_refresh(self, req: Request) -> Response:
        form = req.form()
        grant = form.get("grant_type", "")
        reg = self._registry(form.get("service"))
        if reg is None:
            return _errors(400, "INVALID_SERVICE", f"unknown service '{form.get('service')}'")
        if grant == "password":
            # Anonymous token request (recorded). Answered only when the registry allows
            # anonymous pull; what ACR answers otherwise is UNCONFIRMED (we challenge again).
            if not reg.extra.get("anonymousPullEnabled"):
                return self._challenge(reg, form.get("scope") or CATALOG_SCOPE)
            return self._issue_access(
                reg, form.get("scope", ""), principal={"sub": "acr_anon_pull"}
            )
        if grant != "refresh_token":
            return _errors(400, "UNSUPPORTED", f"grant_type '{grant}' is not supported")
        claims = jwt.verify(self.key, form.get("refresh_token", ""))
        if (
            claims is None
            or claims.get("grant_type") != "refresh_token"
            or claims.get("aud") != reg.login_server
        ):
            return _errors(401, "UNAUTHORIZED", "the refresh token is invalid or expired")
        scope = self._permitted_scope(reg, str(claims["sub"]), form.get("scope", ""))
        return self._issue_access(reg, scope, principal={"aad": claims["sub"]})

    def _permitted_scope(self, reg: Registry, object_id: str, scope_text: str) -> str:
        """ACR grants an Entra identity only what its roles allow: the catalog needs AcrPull
        (``registries/pull/read``, also in Reader/Contributor/Owner) in "RBAC Registry
        Permissions" mode, or Container Registry Repository Catalog Lister (data action
        ``registries/catalog/read``); anything else is dropped from the access token."""
        principal = self.store.principal_by_object_id(object_id)
        # "RBAC Registry + ABAC Repository Permissions": AcrPull (and Owner/Contributor/Reader)
        # no longer grant data-plane access; only the data action counts (ACR ABAC docs).
        abac = reg.extra.get("roleAssignmentMode") == "AbacRepositoryPermissions"
        can_pull = not abac and rbac.allowed(principal, rbac.PULL, reg.id)
        can_list = can_pull or rbac.allowed(principal, rbac.CATALOG_DATA_ACTION, reg.id, data=True)
        kept = []
        for item in scope_text.split():
            kind = item.split(":", 1)[0].lower()
            if (kind == "registry" and can_list) or (kind == "repository" and can_pull):
                kept.append(item)
        return " ".join(kept)

    def _token_from_login(self, req: Request) -> Response:
        reg = self._registry(req.query.get("service"))
        if reg is None:
            return _errors(400, "INVALID_SERVICE", f"unknown service '{req.query.get('service')}'")
        token = self._basic(req, reg)
        if token is None:
            return _errors(
                401,
                "UNAUTHORIZED",
                "authentication required",
                {"WWW-Authenticate": f'Basic realm="{self.base_url()}"'},
            )
        return self._issue_access(reg, req.query.get("scope", ""), principal={"token": token.name})

    def _issue_access(self, reg: Registry, scope_text: str, principal: dict[str, str]) -> Response:
        now = int(time.time())
        access = []
        for scope in scope_text.split():
            name, _, actions = scope.rpartition(":")
            typ, _, res_name = name.partition(":")
            access.append({"type": typ, "name": res_name, "actions": actions.split(",")})
        token = jwt.sign(
            self.key,
            {
                "jti": str(uuid.uuid4()),
                "nbf": now,
                "iat": now,
                "exp": now + self.store.knobs.token_lifetime,
                "iss": "Azure Container Registry",
                "aud": reg.login_server,
                "version": "3.0",
                "access": access,
                **principal,
            },
        )
        self.store.remember_secret(token)
        return _acr_json(200, {"access_token": token})

    # -- principals -------------------------------------------------------------------------
    def _basic(self, req: Request, reg: Registry) -> Child | None:
        header = req.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        token = reg.tokens.get(user.lower())
        if token is None or token.properties.get("status") != "enabled":
            return None
        slot, _ = matching_password(token, password, utcnow())
        return token if slot is not None else None

    def _principal(self, req: Request) -> tuple[Registry, dict[str, Any]] | None:
        header = req.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            claims = jwt.verify(self.key, value.strip())
            if claims is None or "access" not in claims:
                return None
            reg = self._registry(str(claims.get("aud")))
            return (reg, claims) if reg is not None else None
        if scheme.lower() == "basic":
            reg = self.primary()
            token = self._basic(req, reg)
            if token is None:
                return None
            return reg, {
                "token": token.name,
                "access": [{"type": "registry", "name": "catalog", "actions": ["*"]}],
            }
        return None

    # -- catalog ----------------------------------------------------------------------------
    def _catalog(self, req: Request) -> Response:
        found = self._principal(req)
        if found is None:
            return self._challenge(None)
        reg, claims = found
        allowed = any(
            a.get("type") == "registry"
            and a.get("name") == "catalog"
            and "*" in a.get("actions", [])
            for a in claims.get("access", [])
        )
        if not allowed:
            return _errors(
                401,
                "UNAUTHORIZED",
                "authentication required, insufficient scopes",
                {"WWW-Authenticate": self._challenge(reg).headers["WWW-Authenticate"]},
            )
        repos = reg.repositories
        if "token" in claims:
            token = reg.tokens.get(str(claims["token"]).lower())
            actions = (
                scope_map_actions(reg.scope_maps, token.properties["scopeMapId"]) if token else []
            )
            repos = [
                r
                for r in repos
                if grants(actions, r, "metadata/read") or grants(actions, r, "content/read")
            ]
        cap = self.store.knobs.catalog_page_cap
        raw_n = req.query.get("n")
        try:
            n = int(raw_n) if raw_n not in (None, "") else cap
        except ValueError:
            return _errors(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
        if n <= 0:
            return _errors(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
        n = min(n, cap)
        last = req.query.get("last") or ""
        remaining = [r for r in repos if r > last] if last else list(repos)
        page = remaining[:n]
        headers: dict[str, str] = {}
        if len(remaining) > n:
            path = req.path if req.path.lower().startswith("/v2") else "/acr/v1/_catalog"
            query = f"last={urllib.parse.quote(page[-1], safe='')}&n={n}&orderby="
            headers["Link"] = f'<{path}?{query}>; rel="next"'
        return _registry_json(200, {"repositories": page}, headers)
