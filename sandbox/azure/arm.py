"""ARM front door: api-version checks, routing, LROs (Azure-AsyncOperation / Location), paging."""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from sandbox.azure import connected_registries as crs
from sandbox.azure import crstate, rbac
from sandbox.azure import resources as res
from sandbox.azure.http import ArmError, GatewayError, Request, Response
from sandbox.azure.lro import LroOutcomes
from sandbox.azure.store import Child, Operation, Principal, Registry, Store

PROVIDER_API_VERSIONS = ("2025-11-01", "2026-01-01-preview", "2026-09-01-preview")
# Live `api-supported-versions` on connectedRegistries (CLI-REC, Mar 2026) listed only
# 2025-09-01-preview, 2025-12-01-preview and 2026-01-01-preview; 2026-09-01-preview is the newest
# preview folder of the spec. The stable 2025-11-01 is refused there (stricter than assuming it).
CR_API_VERSIONS = (
    "2025-09-01-preview",
    "2025-12-01-preview",
    "2026-01-01-preview",
    "2026-09-01-preview",
)
PREVIEW_ONLY_RESYNC = CR_API_VERSIONS
# The 409 AlreadyInUse recording shows the live RP answering a registry PUT at this version.
REGISTRY_ONLY_API_VERSIONS = ("2019-12-01-preview",)
# Operation-id prefixes: "registries" and "token" are recorded (CLI-REC); the others come from
# the 2025-11-01 examples only.
OP_PREFIX = {
    "registry": "registries",
    "scopemaps": "scopemaps",
    "tokens": "token",
    "connectedregistries": "connectedregistries",
}
# Writes ACR answers synchronously (200, final body, no LRO headers). Recorded: scope map PUT,
# connected registry PUT, connected registry DELETE. Assumed alike: scope map PATCH, connected
# registry PATCH, token/scope map DELETE. Token PUT/PATCH and registry PATCH are LROs (recorded
# for token PUT and registry PATCH).
SYNC_WRITES = {
    "scopemaps": ("PUT", "PATCH", "DELETE"),
    "tokens": ("DELETE",),
    "connectedregistries": ("PUT", "PATCH", "DELETE"),
}
_GENERIC_API_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(-preview|-beta)?", re.ASCII)


def _registry_level(low: list[str]) -> bool:
    """True for ``.../registries`` and ``.../registries/{name}`` (not their child resources)."""
    return "registries" in low and len(low) - low.index("registries") <= 2


class ArmApi:
    def __init__(
        self,
        store: Store,
        base_url: Callable[[], str],
        authenticate: Callable[[Request], dict[str, Any]],
    ) -> None:
        self.store = store
        self.base_url = base_url
        self.authenticate = authenticate
        self.outcomes = LroOutcomes()
        self._req: Request | None = None  # the request being answered (under the store lock)
        self._claims: dict[str, Any] = {}

    # -- entry point ------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        self._req = req
        try:
            return self._handle(req)
        except ArmError as err:
            return err.response()
        finally:
            self._req = None

    def _new_op(
        self, style: str, prefix: str, *, final_status: int = 200, final_body: Any = None
    ) -> Operation:
        """A new LRO for the current request, ending as an LroOutcome rule says (if one matches)."""
        req = self._req
        outcome = self.outcomes.take(req.method, req.path) if req is not None else None
        return self.store.new_operation(
            style, prefix, final_status=final_status, final_body=final_body, outcome=outcome
        )

    def _will_fail(self) -> bool:
        req = self._req
        return req is not None and self.outcomes.peek(req.method, req.path) is not None

    def _handle(self, req: Request) -> Response:
        claims = self.authenticate(req)
        self._claims = claims
        segs = [s for s in req.path.split("/") if s]
        low = [s.lower() for s in segs]
        api_version = req.query.get("api-version")
        if api_version is None:
            raise GatewayError(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if low[-3:] == ["providers", "microsoft.authorization", "permissions"]:
            return self._permissions(req, segs, claims)
        self._authorize(req, segs, claims)
        is_provider = "providers" in low and "microsoft.containerregistry" in low
        if len(low) >= 2 and low[-2] in ("operationstatuses", "operationresults"):
            return self._poll(req, segs[-1])
        if is_provider:
            accepted: tuple[str, ...] = PROVIDER_API_VERSIONS
            rtype = "registries"
            if _registry_level(low):
                accepted += REGISTRY_ONLY_API_VERSIONS
            if "connectedregistries" in low:
                accepted, rtype = CR_API_VERSIONS, "registries/connectedRegistries"
            if api_version not in accepted:
                listed = CR_API_VERSIONS if "connectedregistries" in low else PROVIDER_API_VERSIONS
                raise GatewayError(
                    400,
                    "NoRegisteredProviderFound",
                    f"No registered resource provider found for location "
                    f"'{self._location_hint(segs)}' and API version '{api_version}' "
                    f"for type '{rtype}'. The supported api-versions are "
                    f"'{', '.join(listed)}'. The supported locations "
                    f"are 'eastus, westus, westeurope'.",
                )
        elif not _GENERIC_API_VERSION.fullmatch(api_version):
            raise GatewayError(
                400,
                "InvalidApiVersionParameter",
                f"The api-version '{api_version}' is invalid. The supported versions "
                f"are '2022-12-01,2021-04-01,2020-01-01'.",
            )
        return self._route(req, segs, low, api_version, claims)

    # -- authorization ----------------------------------------------------------------------
    def principal(self, claims: dict[str, Any]) -> Principal | None:
        return self.store.principals.get(str(claims.get("appid", "")).lower())

    def _authorize(self, req: Request, segs: list[str], claims: dict[str, Any]) -> None:
        """ARM's RBAC check, before the resource provider sees the request (reads included)."""
        if len(segs) < 3 or segs[0].lower() != "subscriptions":
            return
        if [s.lower() for s in segs[2:]] == ["resources"]:
            return  # a filtered listing (see _resources), not an authorized action
        action = rbac.arm_action(req.method, segs)
        scope = "/" + "/".join(segs)
        if action and not rbac.allowed(self.principal(claims), action, scope):
            raise rbac.authorization_failed(claims, action, scope)

    def _permissions(self, req: Request, segs: list[str], claims: dict[str, Any]) -> Response:
        """``GET {scope}/providers/Microsoft.Authorization/permissions`` (api 2022-04-01)."""
        if req.method != "GET":
            raise GatewayError(405, "MethodNotAllowed", f"{req.method} is not supported here.")
        if not _GENERIC_API_VERSION.fullmatch(req.query.get("api-version", "")):
            raise GatewayError(400, "InvalidApiVersionParameter", "The api-version is invalid.")
        scope = "/" + "/".join(segs[:-3])
        return Response.json(
            200, {"value": rbac.permissions(self.principal(claims), scope), "nextLink": None}
        )

    def _location_hint(self, segs: list[str]) -> str:
        regs = self.store.all_registries()
        return regs[0].location if regs else "eastus"

    # -- routing ----------------------------------------------------------------------------
    def _route(
        self, req: Request, segs: list[str], low: list[str], api: str, claims: dict[str, Any]
    ) -> Response:
        m = req.method
        if low == ["subscriptions"] and m == "GET":
            return self._page(req, [self._subscription(s) for s in self._subs(claims)])
        if low == ["tenants"] and m == "GET":
            tenants = [
                t
                for t in self.store.tenants.values()
                if t.id.lower() == str(claims.get("tid", "")).lower()
            ]
            return self._page(
                req,
                [
                    {
                        "id": f"/tenants/{t.id}",
                        "tenantId": t.id,
                        "tenantCategory": "Home",
                        "displayName": "Sandbox tenant",
                        "defaultDomain": "sandbox.onmicrosoft.com",
                    }
                    for t in tenants
                ],
            )
        if len(low) < 2 or low[0] != "subscriptions":
            raise GatewayError(
                404, "InvalidResourceType", f"The resource path '{req.path}' is not supported."
            )
        sub = self.store.subscriptions.get(low[1])
        if sub is None or sub.tenant_id.lower() != str(claims.get("tid", "")).lower():
            raise GatewayError(
                404, "SubscriptionNotFound", f"The subscription '{segs[1]}' could not be found."
            )
        rest = low[2:]
        if not rest and m == "GET":
            return Response.json(200, self._subscription(sub))
        if rest == ["resources"] and m == "GET":
            return self._resources(req, sub.id)
        if rest == ["providers", "microsoft.containerregistry", "registries"] and m == "GET":
            regs = [
                r
                for r in self.store.all_registries()
                if r.subscription_id.lower() == sub.id.lower()
            ]
            return self._page(req, [res.render_registry(self.store, r) for r in regs])
        if len(rest) >= 2 and rest[0] == "resourcegroups":
            rg = sub.resource_groups.get(rest[1])
            if rg is None:
                raise GatewayError(
                    404, "ResourceGroupNotFound", f"Resource group '{segs[3]}' could not be found."
                )
            rrest = rest[2:]
            if not rrest and m == "GET":
                return Response.json(
                    200,
                    {
                        "id": f"/subscriptions/{sub.id}/resourceGroups/{rg[0]}",
                        "name": rg[0],
                        "type": "Microsoft.Resources/resourceGroups",
                        "location": rg[1],
                        "properties": {"provisioningState": "Succeeded"},
                    },
                )
            if rrest[:3] == ["providers", "microsoft.containerregistry", "registries"]:
                return self._registry_route(req, sub.id, rg[0], segs[7:], rrest[3:], api)
        raise GatewayError(
            404,
            "InvalidResourceType",
            f"The resource path '{req.path}' is not supported by the sandbox.",
        )

    def _registry_route(
        self, req: Request, sub: str, rg: str, segs: list[str], low: list[str], api: str
    ) -> Response:
        m = req.method
        if not low:
            if m != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{m} is not supported here.")
            regs = [
                r
                for r in self.store.all_registries()
                if r.subscription_id.lower() == sub.lower()
                and r.resource_group.lower() == rg.lower()
            ]
            return self._page(req, [res.render_registry(self.store, r) for r in regs])
        reg = self.store.find_registry(sub, rg, segs[0])
        if reg is None and len(segs) == 1 and m == "PUT":
            return self._create_registry(req, sub, rg, segs[0], api)
        if reg is None:
            raise GatewayError(
                404,
                "ResourceNotFound",
                f"The Resource '{res.TYPE_REGISTRY}/{segs[0]}' under resource group "
                f"'{rg}' was not found. For more details please go to "
                f"https://aka.ms/ARMResourceNotFoundFix",
            )
        rest, rlow = segs[1:], low[1:]
        if not rest:
            if m == "GET":
                return Response.json(200, res.render_registry(self.store, reg))
            if m == "PATCH":
                res.update_registry(self.store, reg, self._body(req))
                op = self._new_op("async", OP_PREFIX["registry"])
                reg.op_id = op.id
                # recorded: the 201 body already shows the new dataEndpointHostNames, "Updating"
                body = res.render_registry(self.store, reg)
                body["properties"]["provisioningState"] = "Updating"
                return self._async_created(reg.id, op, api, body)
            if m == "PUT":
                return self._put_registry(req, reg, api)
            raise ArmError(405, "MethodNotAllowed", f"{m} on a registry is not supported.")
        if rlow == ["generatecredentials"] and m == "POST":
            result = res.generate_credentials(self.store, reg, self._body(req))
            op = self._new_op(
                "location", OP_PREFIX["registry"], final_status=200, final_body=result
            )
            return self._accepted(reg.id, op, api)
        if rlow[0] in res.COLLECTIONS:
            return self._child_route(req, reg, rlow[0], rest[1:], rlow[1:], api)
        raise ArmError(
            404,
            "InvalidResourceType",
            f"The resource type '{rest[0]}' is not supported by the sandbox.",
        )

    def _create_registry(self, req: Request, sub: str, rg: str, name: str, api: str) -> Response:
        """PUT of a registry that does not exist here: claims the global DNS name or 409s."""
        res.check_name("registries", name)
        login_server = f"{name.lower()}.azurecr.io"
        if any(r.login_server == login_server for r in self.store.all_registries()):
            # recorded verbatim (409, no target, top-level "status": "Failed")
            raise ArmError(
                409,
                "AlreadyInUse",
                f"The registry DNS name {login_server} is already in use. You can "
                f"check if the name is already claimed using following API: "
                f"https://docs.microsoft.com/en-us/rest/api/containerregistry/"
                f"registries/checknameavailability",
            )
        body = self._body(req)
        if not isinstance(body, dict) or not body.get("location"):
            raise ArmError(
                400,
                "LocationRequired",
                "The location property is required for this definition.",
                target="location",
            )
        sku = str((body.get("sku") or {}).get("name", ""))
        if sku.lower() not in res.SKUS:
            raise ArmError(400, "InvalidSku", f"The SKU '{sku}' is not valid.", target="sku")
        reg = self.store.add_registry(
            Registry(
                subscription_id=self.store.subscriptions[sub.lower()].id,
                resource_group=rg,
                name=name,
                location=str(body["location"]).replace(" ", "").lower(),
                sku=res.SKUS[sku.lower()],
            )
        )
        res.update_registry(self.store, reg, {k: v for k, v in body.items() if k != "sku"})
        op = self._new_op("async", OP_PREFIX["registry"])
        reg.op_id = op.id
        created = res.render_registry(self.store, reg)
        created["properties"]["provisioningState"] = "Creating"
        return self._async_created(reg.id, op, api, created)

    def _put_registry(self, req: Request, reg: Registry, api: str) -> Response:
        """PUT of an existing registry: an update answered synchronously (UNCONFIRMED)."""
        body = self._body(req)
        if (
            isinstance(body, dict)
            and body.get("location")
            and str(body["location"]).replace(" ", "").lower() != reg.location.lower()
        ):
            raise ArmError(
                400,
                "InvalidResourceLocation",
                f"The resource '{reg.name}' already exists in location "
                f"'{reg.location}'; it cannot be moved.",
                target="location",
            )
        res.update_registry(self.store, reg, body)
        reg.op_id = None
        return Response.json(200, res.render_registry(self.store, reg))

    def _table(self, reg: Registry, coll: str) -> dict[str, Child]:
        return {
            "scopemaps": reg.scope_maps,
            "tokens": reg.tokens,
            "connectedregistries": reg.connected_registries,
        }[coll]

    def _render(self, reg: Registry, coll: str, child: Child) -> dict[str, Any]:
        if coll == "connectedregistries":
            # registrySyncResult exists only in the preview api-versions that define it
            api = self._req.query.get("api-version") if self._req is not None else None
            return crs.render_connected_registry(self.store, reg, child, api)
        render = {"scopemaps": res.render_scope_map, "tokens": res.render_token}[coll]
        return render(self.store, reg, child)

    def _child_route(
        self, req: Request, reg: Registry, coll: str, segs: list[str], low: list[str], api: str
    ) -> Response:
        m = req.method
        table = self._table(reg, coll)
        canonical = res.COLLECTIONS[coll][0]
        if not segs:
            if m != "GET":
                raise ArmError(405, "MethodNotAllowed", f"{m} is not supported here.")
            children = sorted(table.values(), key=lambda c: c.name.lower())
            if coll == "connectedregistries" and req.query.get("$filter"):
                terms = crs.parse_cr_filter(req.query["$filter"])
                children = [c for c in children if crs.cr_matches(c, terms)]
            return self._page(req, [self._render(reg, coll, c) for c in children])
        name = segs[0]
        child = table.get(name.lower())
        if len(segs) == 1:
            if m == "GET":
                if child is None:
                    raise self._not_found(reg, canonical, name)
                return Response.json(200, self._render(reg, coll, child))
            if m == "PUT":
                put = {
                    "scopemaps": res.put_scope_map,
                    "tokens": res.put_token,
                    "connectedregistries": crs.put_connected_registry,
                }[coll]
                child, created = put(self.store, reg, name, self._body(req))
                return self._write_done(
                    reg, coll, child, "Creating" if created else "Updating", api, m
                )
            if m == "PATCH":
                if child is None:
                    raise self._not_found(reg, canonical, name)
                patch = {
                    "scopemaps": res.patch_scope_map,
                    "tokens": res.patch_token,
                    "connectedregistries": crs.patch_connected_registry,
                }[coll]
                patch(self.store, reg, child, self._body(req))
                return self._write_done(reg, coll, child, "Updating", api, m)
            if m == "DELETE":
                if child is None:
                    return Response.empty(204)
                self._check_delete(reg, coll, child)
                if self._will_fail():
                    # a delete that fails leaves the resource in place, provisioningState Failed
                    op = self._new_op("location", OP_PREFIX[coll], final_status=200)
                    child.op_id, child.pending_state = op.id, "Deleting"
                    return self._accepted(reg.child_id(canonical, child.name), op, api)
                del table[name.lower()]
                if self._is_sync(coll, m):
                    return Response.empty(200)  # recorded: 200, empty body, no LRO headers
                op = self._new_op("location", OP_PREFIX[coll], final_status=200)
                return self._accepted(reg.child_id(canonical, child.name), op, api)
        if coll == "connectedregistries" and len(segs) == 2 and m == "POST":
            if child is None:
                raise self._not_found(reg, canonical, name)
            if low[1] == "deactivate":
                if not self._will_fail():  # a failed deactivate leaves the activation as it was
                    crs.deactivate_connected_registry(child)
                op = self._new_op("location", OP_PREFIX[coll], final_status=200)
                return self._accepted(reg.child_id(canonical, child.name), op, api)
            if low[1] == "resync" and api in PREVIEW_ONLY_RESYNC:
                return Response.json(200, self._render(reg, coll, child))
        raise ArmError(
            404,
            "InvalidResourceType",
            f"'{req.method} {req.path}' is not supported by the sandbox.",
        )

    def _check_delete(self, reg: Registry, coll: str, child: Child) -> None:
        if coll == "tokens":
            # LEARN (connected-registry glossary / access overview): the sync token must not be
            # deleted while its connected registry exists. Code and status UNCONFIRMED.
            users = sorted(cr.name for cr in crstate.users_of_sync_token(reg, child))
            if users:
                raise ArmError(
                    409,
                    "TokenInUse",
                    f"Token '{child.name}' is the sync token of connected registry(s) "
                    f"{', '.join(users)}; delete the connected registry first.",
                )
        if coll == "connectedregistries" and child.properties["activation"]["status"] == "Active":
            # Stricter choice (UNCONFIRMED): an activated registry must be deactivated first, as
            # redeploying it must (Azure/acr troubleshooting "already activated").
            raise ArmError(
                409,
                "ConnectedRegistryActive",
                f"Connected registry '{child.name}' is active; deactivate it first "
                f"(az acr connected-registry deactivate -r {reg.name} -n {child.name}).",
            )
        if coll == "scopemaps":
            users = [
                t.name
                for t in reg.tokens.values()
                if t.properties["scopeMapId"].lower()
                == reg.child_id("scopeMaps", child.name).lower()
            ]
            if users:
                raise ArmError(
                    409,
                    "ScopeMapInUse",
                    f"Scope map '{child.name}' is used by token(s) "
                    f"{', '.join(sorted(users))}; delete or re-point them first.",
                )

    def _not_found(self, reg: Registry, canonical: str, name: str) -> ArmError:
        return ArmError(
            404,
            "ResourceNotFound",
            f"The Resource '{res.TYPE_REGISTRY}/{reg.name}/{canonical}/{name}' under "
            f"resource group '{reg.resource_group}' was not found. For more details "
            f"please go to https://aka.ms/ARMResourceNotFoundFix",
        )

    # -- LRO plumbing -----------------------------------------------------------------------
    def _retry_after(self) -> dict[str, str]:
        return {"Retry-After": str(int(self.store.knobs.lro_retry_after))}

    def _is_sync(self, coll: str, method: str) -> bool:
        return (
            method in SYNC_WRITES[coll]
            and not self.store.knobs.force_async
            and not self._will_fail()
        )

    def _write_done(
        self, reg: Registry, coll: str, child: Child, state: str, api: str, method: str
    ) -> Response:
        """Answer a PUT/PATCH: 200 with the final resource, or 201 + Azure-AsyncOperation."""
        if self._is_sync(coll, method):
            child.op_id = None
            return Response.json(200, self._render(reg, coll, child))
        op = self._new_op("async", OP_PREFIX[coll])
        child.op_id = op.id
        child.pending_state = state
        canonical = res.COLLECTIONS[coll][0]
        # recorded (token PUT): the 201 body shows "Creating" however quick the operation is
        body = self._render(reg, coll, child)
        body["properties"]["provisioningState"] = state
        return self._async_created(reg.child_id(canonical, child.name), op, api, body)

    def _async_created(
        self, resource_id: str, op: Operation, api: str, body: dict[str, Any]
    ) -> Response:
        url = f"{self.base_url()}{resource_id}/operationStatuses/{op.id}?api-version={api}"
        headers = {"Azure-AsyncOperation": url, **self._retry_after()}
        return Response.json(201, body, headers)

    def _accepted(self, resource_id: str, op: Operation, api: str) -> Response:
        url = f"{self.base_url()}{resource_id}/operationResults/{op.id}?api-version={api}"
        return Response.empty(202, {"Location": url, **self._retry_after()})

    def _poll(self, req: Request, op_id: str) -> Response:
        if req.method != "GET":
            raise ArmError(405, "MethodNotAllowed", "Operation status is read-only.")
        op = self.store.operations.get(op_id.lower())
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        done = op.poll()
        if op.style == "async":
            # recorded: the finished operation's status body is exactly {"status": "Succeeded"}
            if done and op.outcome == "Succeeded":
                return Response.json(200, {"status": "Succeeded"})
            if done:
                # ARM async contract: terminal status plus the error that ended it
                return Response.json(200, {"status": op.outcome, "error": op.error})
            return Response.json(200, {"status": "InProgress"}, self._retry_after())
        if not done:
            url = f"{self.base_url()}{req.path}?{req.raw_query}"
            return Response.empty(202, {"Location": url, **self._retry_after()})
        if op.outcome != "Succeeded":
            # ARM async contract: a failed Location operation answers with the error status
            return Response.json(op.error_status, {"error": op.error, "status": op.outcome})
        if op.final_body is None:
            return Response.empty(op.final_status if op.final_status != 200 else 200)
        return Response.json(op.final_status, op.final_body)

    # -- helpers ----------------------------------------------------------------------------
    def _body(self, req: Request) -> Any:
        try:
            return req.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArmError(
                400,
                "InvalidRequestContent",
                f"The request content was invalid and could not be deserialized: {exc}.",
            ) from exc

    def _subs(self, claims: dict[str, Any]) -> list[Any]:
        tid = str(claims.get("tid", "")).lower()
        return [s for s in self.store.subscriptions.values() if s.tenant_id.lower() == tid]

    def _subscription(self, sub: Any) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{sub.id}",
            "subscriptionId": sub.id,
            "tenantId": sub.tenant_id,
            "displayName": sub.display_name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
            "authorizationSource": "RoleBased",
        }

    def _resources(self, req: Request, sub_id: str) -> Response:
        flt = req.query.get("$filter", "")
        match = re.match(r"^\s*resourceType\s+eq\s+'([^']+)'\s*$", flt, re.IGNORECASE)
        if flt and not match:
            raise GatewayError(
                400,
                "InvalidFilterInQueryString",
                f"Invalid $filter '{flt}': the sandbox supports \"resourceType eq '<type>'\".",
            )
        wanted = match.group(1).lower() if match else None
        items = []
        principal = self.principal(self._claims)
        for reg in self.store.all_registries():
            if reg.subscription_id.lower() != sub_id.lower():
                continue
            if not rbac.allowed(principal, f"{rbac.CR}/read", reg.id):
                continue  # ARM lists only the resources the caller may read
            if wanted and wanted != res.TYPE_REGISTRY.lower():
                continue
            items.append(
                {
                    "id": reg.id,
                    "name": reg.name,
                    "type": res.TYPE_REGISTRY,
                    "sku": {"name": reg.sku, "tier": reg.sku},
                    "location": reg.location,
                    "tags": dict(reg.tags),
                }
            )
        return self._page(req, items)

    def _page(self, req: Request, items: list[dict[str, Any]]) -> Response:
        size = max(1, self.store.knobs.arm_page_size)
        try:
            start = int(req.query.get("$skiptoken", "0") or 0)
        except ValueError as exc:
            raise ArmError(400, "InvalidSkipToken", "The $skipToken is invalid.") from exc
        page = items[start : start + size]
        body: dict[str, Any] = {"value": page}
        if start + size < len(items):
            query = [
                (k, v)
                for k, v in urllib.parse.parse_qsl(req.raw_query, True)
                if k.lower() != "$skiptoken"
            ]
            query.append(("$skipToken", str(start + size)))
            body["nextLink"] = (
                f"{self.base_url()}{urllib.parse.quote(req.path)}?{urllib.parse.urlencode(query)}"
            )
        return Response.json(200, body)


def metadata_endpoints(base: str) -> dict[str, Any]:
    """Azure Stack Hub-shaped cloud metadata for the sandbox (GET /metadata/endpoints)."""
    return {
        "galleryEndpoint": f"{base}/",
        "graphEndpoint": "https://graph.windows.net/",
        "portalEndpoint": f"{base}/",
        "name": "AzureSandbox",
        "resourceManager": f"{base}/",
        "authentication": {
            "loginEndpoint": f"{base}/",
            "audiences": ["https://management.azure.com/", "https://management.core.windows.net/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {
            "acrLoginServer": "azurecr.io",
            "storage": "core.windows.net",
            "keyVaultDns": "vault.azure.net",
        },
        "media": "https://rest.media.azure.net",
    }


def dumps(obj: Any) -> str:
    return json.dumps(obj)
