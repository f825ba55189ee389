"""Entra ID v2.0 endpoints as ClientSecretCredential drives them, and bearer-token checks.

Access tokens are JWT-shaped and HMAC-signed, so ARM and the ACR exchange can tell ours from
anything else without a real signing infrastructure.
"""

from __future__ import annotations

import hmac
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandbox.azure import jwt
from sandbox.azure.http import GatewayError, Request, Response
from sandbox.azure.store import Store

ARM_AUDIENCES = frozenset(
    {
        "https://management.azure.com",
        "https://management.core.windows.net",
    }
)
ACR_AUDIENCE = "https://containerregistry.azure.net"

_OPENID = re.compile(r"^/([^/]+)/v2\.0/\.well-known/openid-configuration$", re.IGNORECASE)
_TOKEN = re.compile(r"^/([^/]+)/oauth2/v2\.0/token$", re.IGNORECASE)


def is_entra_path(path: str) -> bool:
    return bool(_OPENID.match(path) or _TOKEN.match(path))


def audience_of(scope: str) -> str:
    scope = scope.strip()
    if scope.endswith("/.default"):
        scope = scope[: -len("/.default")]
    return scope.rstrip("/")


class Entra:
    def __init__(self, store: Store, key: bytes, base_url: Callable[[], str]) -> None:
        self.store = store
        self.key = key
        self.base_url = base_url

    def handle(self, req: Request) -> Response:
        match = _OPENID.match(req.path)
        if match and req.method == "GET":
            return self._openid(match.group(1))
        match = _TOKEN.match(req.path)
        if match and req.method == "POST":
            return self._token(match.group(1), req)
        return self._error(
            405, "invalid_request", 900561, "The endpoint only accepts POST requests."
        )

    def _openid(self, tenant: str) -> Response:
        if tenant.lower() not in self.store.tenants:
            return self._error(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the "
                f"correct tenant ID and are signing into the correct cloud.",
            )
        base = f"{self.base_url()}/{tenant}"
        return Response.json(
            200,
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "jwks_uri": f"{self.base_url()}/{tenant}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"{base}/v2.0",
                "request_uri_parameter_supported": False,
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "NA",
                "cloud_instance_name": "sandbox",
            },
        )

    def _token(self, tenant: str, req: Request) -> Response:
        form = req.form()
        record = self.store.tenants.get(tenant.lower())
        if record is None:
            return self._error(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return self._error(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{form.get('grant_type')}'.",
            )
        client_id = form.get("client_id", "")
        secret = form.get("client_secret", "")
        expected = record.clients.get(client_id.lower())
        if expected is None:
            return self._error(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the "
                f"directory '{tenant}'. This can happen if the application has not"
                " been installed by the administrator of the tenant.",
            )
        if not hmac.compare_digest(expected.encode(), secret.encode()):
            return self._error(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in "
                f"the request is the client secret value, not the client secret "
                f"ID, for a secret added to app '{client_id}'.",
            )
        scope = form.get("scope", "")
        if not scope.strip().endswith("/.default"):
            return self._error(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope} is not valid. Client "
                "credential flows must have a scope value with /.default suffixed"
                " to the resource identifier (application ID URI).",
            )
        lifetime = self.store.knobs.token_lifetime
        token = self.issue(record.id, client_id, audience_of(scope), lifetime)
        return Response.json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            },
        )

    def issue(self, tenant: str, client_id: str, audience: str, lifetime: int = 3600) -> str:
        now = int(time.time())
        principal = self.store.principals.get(client_id.lower())
        object_id = principal.object_id if principal is not None else client_id
        claims = {
            "aud": audience,
            "iss": f"{self.base_url()}/{tenant}/v2.0",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": client_id,
            "oid": object_id,
            "sub": object_id,
            "tid": tenant,
            "ver": "2.0",
            "jti": str(uuid.uuid4()),
        }
        token = jwt.sign(self.key, claims)
        self.store.remember_secret(token)
        return token

    def verify(self, token: str, audiences: frozenset[str]) -> dict[str, Any] | None:
        claims = jwt.verify(self.key, token)
        if claims is None or claims.get("ver") != "2.0":
            return None
        if str(claims.get("aud", "")).rstrip("/") not in audiences:
            return None
        return claims

    def authenticate_arm(self, req: Request) -> dict[str, Any]:
        header = req.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GatewayError(
                401,
                "InvalidAuthenticationToken",
                "The access token is missing or invalid: send 'Authorization: Bearer "
                "<token>' issued for https://management.azure.com/.",
            )
        claims = self.verify(token.strip(), ARM_AUDIENCES)
        if claims is None:
            raise GatewayError(
                401,
                "InvalidAuthenticationToken",
                "The access token is invalid, expired or was issued for another audience.",
            )
        return claims

    def _error(self, status: int, error: str, code: int, text: str) -> Response:
        now = datetime.now(UTC)
        trace, corr = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: {stamp}"
        )
        return Response.json(
            status,
            {
                "error": error,
                "error_description": description,
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": corr,
                "error_uri": f"{self.base_url()}/error?code={code}",
            },
        )
