"""Read-only ARM GETs for the dry-run plan: the same resources the ensure-steps diff against."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError

from tasks.errors import call_with_retry

if TYPE_CHECKING:
    from tasks.azure.context import AzureContext

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
