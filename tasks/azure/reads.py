"""Read-only ARM GETs: the resources the ensure-steps diff against (for the dry-run plan), and
what a client scope map grants (for the canary image)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from model.retry import call_with_retry
from tasks.azure.actions import readable_repositories

if TYPE_CHECKING:
    from model.azure_context import AzureContext

Json = dict[str, Any]


def _rest(model: Any) -> Json:
    return dict(model.as_dict()) if hasattr(model, "as_dict") else dict(model)


def read_arm(ctx: AzureContext, kind: str, name: str = "") -> Json | None:
    """GET ``registry`` / ``scopeMaps`` / ``tokens`` / ``connectedRegistries``; None if absent."""
    rg, reg = ctx.resource_group, ctx.registry
    getters = {
        "registry": lambda: ctx.mgmt.registries.get(rg, reg),
        "scopeMaps": lambda: ctx.mgmt.scope_maps.get(rg, reg, name),
        "tokens": lambda: ctx.mgmt.tokens.get(rg, reg, name),
        "connectedRegistries": lambda: ctx.cr_mgmt.connected_registries.get(rg, reg, name),
    }
    get = getters[kind]

    def call() -> Json | None:
        try:
            return _rest(get())
        except ResourceNotFoundError:
            return None

    what = f"{kind}/{name}" if name else f"registries/{reg}"
    return call_with_retry(call, what=what, **ctx.retry_kwargs())


def client_repositories(ctx: AzureContext, scope_map_name: str) -> list[str]:
    """What the client scope map grants; the canary pulls the first of them."""
    rg, reg = ctx.resource_group, ctx.registry

    def read() -> list[str]:
        sm = ctx.mgmt.scope_maps.get(rg, reg, scope_map_name)
        # SDK 15 nests fields under ``properties``; older models had them flat.
        props = getattr(sm, "properties", None)
        return list(getattr(props, "actions", None) or getattr(sm, "actions", None) or [])

    actions = call_with_retry(read, what=f"scopeMaps/{scope_map_name}", **ctx.retry_kwargs())
    return readable_repositories(actions)
