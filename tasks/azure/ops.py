"""Azure I/O steps (design.md "Step interfaces"): read, diff (desired.py), write the difference.

Every function takes an :class:`AzureContext` first, wraps each SDK call in ``call_with_retry``
(the SDK's own retry is off) and returns a StepResult whose message explains itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from azure.core.exceptions import ResourceNotFoundError
from pydantic import SecretStr

from model import names
from model.azure_context import AzureContext
from model.errors import AcrEdgeError, InputError, PermanentError, TransientError, classify
from model.result import StepResult
from model.retry import backoff_delays, call_with_retry
from tasks.azure import actions as act
from tasks.azure.desired import (
    Change,
    ConnectedRegistrySpec,
    client_map_description,
    desired_scope_map,
    diff_client_token_ids,
    diff_connected_registry,
    diff_scope_map,
    diff_token,
    sync_map_description,
)
from tasks.azure.repositories import list_repositories

__all__ = [
    "ConnectedRegistryInfo",
    "GeneratedPassword",
    "ParentInfo",
    "PasswordMeta",
    "attach_client_token",
    "ensure_client_scope_map",
    "ensure_client_token",
    "ensure_connected_registry",
    "ensure_sync_scope_map",
    "ensure_sync_token",
    "generate_password",
    "list_repositories",
    "preflight_parent",
    "read_connected_registry",
    "read_token_passwords",
    "revoke_password",
]

log = logging.getLogger("acr_edge.azure")
T = TypeVar("T")
Json = dict[str, Any]
Slot = Literal["password1", "password2"]
SLOTS: tuple[Slot, Slot] = ("password1", "password2")


@dataclass(frozen=True)
class ParentInfo:
    registry_id: str
    login_server: str
    location: str
    sku: str
    data_endpoint_host_names: list[str]
    changed: bool
    message: str


@dataclass(frozen=True)
class PasswordMeta:
    slot: Slot
    creation_time: datetime | None
    expiry: datetime | None


@dataclass(frozen=True)
class GeneratedPassword:
    username: str
    password: SecretStr
    meta: PasswordMeta


@dataclass(frozen=True)
class ConnectedRegistryInfo:
    name: str
    id: str
    mode: str
    provisioning_state: str | None
    connection_state: str | None
    activation_status: str | None
    gateway_endpoint: str | None
    last_sync_time: datetime | None
    last_activity_time: datetime | None
    sync_token_id: str | None
    sync_schedule: str | None
    sync_window: str | None
    message_ttl: str | None
    client_token_ids: list[str] = field(default_factory=list)
    status_details: list[Json] = field(default_factory=list)
    version: str | None = None


# ---- plumbing -----------------------------------------------------------------------------


def _rest(model: Any) -> Json:
    """SDK 15 models are MutableMappings over the REST payload; as_dict() gives its wire shape."""
    if model is None:
        return {}
    if hasattr(model, "as_dict"):
        return dict(model.as_dict())
    return dict(model)


def _retry(ctx: AzureContext, fn: Callable[[], T], what: str) -> T:
    def on_retry(err: AcrEdgeError, delay: float) -> None:
        log.warning("%s: transient failure, retrying in %.2fs: %s", what, delay, err)

    return call_with_retry(fn, what=what, on_retry=on_retry, **ctx.retry_kwargs())


def _read(ctx: AzureContext, fn: Callable[[], Any], what: str) -> Json | None:
    """GET with retries; None when the resource does not exist."""

    def get() -> Json | None:
        try:
            return _rest(fn())
        except ResourceNotFoundError:
            return None

    return _retry(ctx, get, what)


def _write_once(start: Callable[[], Any]) -> Json:
    """Start an LRO and wait for it; no retry here - _converge re-reads before writing again."""
    return _rest(start().result())


def _sleep_for(ctx: AzureContext, err: TransientError, attempt: int) -> float:
    delay = min(ctx.retry_max_delay, ctx.retry_base_delay * (2**attempt))
    if err.retry_after is not None:
        delay = min(max(delay, err.retry_after), ctx.retry_max_delay)
    return delay


def _converge(
    ctx: AzureContext,
    resource: str,
    read: Callable[[], Json | None],
    decide: Callable[[Json | None], Change],
    apply: Callable[[Change], Any],
    **details: Any,
) -> StepResult:
    """Read, decide, write once; after a transient write failure read again before retrying.

    A write whose response was lost (dropped connection, timeout, 5xx after the fact) is then
    seen as done instead of being repeated: no duplicate PUTs, no wiped token passwords.
    """
    writes = 0
    done_reason = ""
    for attempt in range(ctx.retry_attempts):
        change = decide(read())
        if change.op == "none":
            if writes:
                message = f"{done_reason}: done (after a retried write)"
                log.info("%s", message)
                return StepResult.wrote(resource, message, writes=writes, **details)
            log.info("%s", change.reason)
            return StepResult.noop(resource, change.reason, **details)
        done_reason = done_reason or change.reason
        writes += 1
        try:
            apply(change)
        except Exception as exc:  # classified below
            err = classify(exc, resource=resource)
            if not isinstance(err, TransientError) or attempt == ctx.retry_attempts - 1:
                if err is exc:
                    raise
                raise err from exc
            delay = _sleep_for(ctx, err, attempt)
            log.warning(
                "%s: write failed transiently (%s); re-reading in %.2fs", resource, err, delay
            )
            time.sleep(delay)
            continue
        message = f"{change.reason}: {'created' if change.op == 'create' else 'updated'}"
        log.info("%s", message)
        return StepResult.wrote(resource, message, writes=writes, **details)
    raise AssertionError("unreachable")  # pragma: no cover


def _body(change: Change) -> Json:
    assert change.body is not None  # only create/update changes reach a write
    return change.body


def _rg(ctx: AzureContext) -> tuple[str, str]:
    return ctx.resource_group, ctx.registry


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    text = str(value)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _slot(slot: str) -> Slot:
    lowered = str(slot).lower()
    if lowered not in SLOTS:
        raise InputError(f"password slot {slot!r} is invalid: use password1 or password2.")
    return lowered  # type: ignore[return-value]


# ---- preflight ----------------------------------------------------------------------------


def preflight_parent(
    ctx: AzureContext,
    *,
    repositories: Iterable[str],
    client_token_count: int,
    enable_data_endpoint: bool,
) -> ParentInfo:
    """Premium SKU, dedicated data endpoint, limits - all before any write."""
    resource = f"registries/{ctx.registry}"
    act.check_repository_limit(repositories, "repositories")
    if client_token_count > act.MAX_CLIENT_TOKENS_PER_CR:
        act.check_client_token_limit(client_token_count, "(new)")
    reg = _read(ctx, lambda: ctx.mgmt.registries.get(*_rg(ctx)), resource)
    if reg is None:
        raise PermanentError(
            "registry not found.",
            resource=resource,
            fix=f"check subscription, resource group {ctx.resource_group!r} and registry name in "
            "the ParentRegistry block.",
        )
    sku = str((reg.get("sku") or {}).get("name", ""))
    if sku.lower() != "premium":
        raise PermanentError(
            f"connected registries need the Premium SKU; this registry is {sku or 'unknown'}.",
            resource=resource,
            fix=f"az acr update -n {ctx.registry} --sku Premium",
        )
    props = reg.get("properties") or {}
    changed = False
    message = f"registry {ctx.registry} is Premium with its dedicated data endpoint enabled"
    if not props.get("dataEndpointEnabled"):
        if not enable_data_endpoint:
            raise PermanentError(
                "the dedicated data endpoint is disabled; connected registries sync through it.",
                resource=resource,
                fix=f"az acr update -n {ctx.registry} --data-endpoint-enabled true, or run with "
                "enable_data_endpoint=True to let acr-edge enable it.",
            )

        def decide(actual: Json | None) -> Change:
            enabled = bool(((actual or {}).get("properties") or {}).get("dataEndpointEnabled"))
            if enabled:
                return Change.none(f"registry {ctx.registry}: data endpoint enabled")
            return Change(
                "update",
                {"properties": {"dataEndpointEnabled": True}},
                f"registry {ctx.registry}: enabling the dedicated data endpoint",
            )

        _converge(
            ctx,
            resource,
            lambda: _read(ctx, lambda: ctx.mgmt.registries.get(*_rg(ctx)), resource),
            decide,
            lambda c: _write_once(lambda: ctx.mgmt.registries.begin_update(*_rg(ctx), _body(c))),
        )
        reg = _read(ctx, lambda: ctx.mgmt.registries.get(*_rg(ctx)), resource) or reg
        props = reg.get("properties") or {}
        changed = True
        message = f"registry {ctx.registry}: enabled the dedicated data endpoint"
    log.info("%s", message)
    return ParentInfo(
        registry_id=str(reg.get("id") or ctx.registry_id),
        login_server=str(props.get("loginServer") or ""),
        location=str(reg.get("location") or ""),
        sku=sku,
        data_endpoint_host_names=list(props.get("dataEndpointHostNames") or []),
        changed=changed,
        message=message,
    )


# ---- scope maps and tokens ----------------------------------------------------------------


def _ensure_scope_map(ctx: AzureContext, name: str, desired: Json) -> StepResult:
    resource = f"scopeMaps/{name}"
    sm = ctx.mgmt.scope_maps

    def apply(change: Change) -> None:
        start = sm.begin_create if change.op == "create" else sm.begin_update
        _write_once(lambda: start(*_rg(ctx), name, _body(change)))

    return _converge(
        ctx,
        resource,
        lambda: _read(ctx, lambda: sm.get(*_rg(ctx), name), resource),
        lambda actual: diff_scope_map(actual, desired, name=name),
        apply,
        id=ctx.scope_map_id(name),
        actions=len(desired["properties"]["actions"]),
    )


def ensure_sync_scope_map(
    ctx: AzureContext, cr_name: str, repositories: Iterable[str], mode: str
) -> StepResult:
    name = names.sync_scope_map_name(cr_name)
    desired = desired_scope_map(
        sync_map_description(cr_name), act.sync_actions(cr_name, repositories, mode)
    )
    return _ensure_scope_map(ctx, name, desired)


def ensure_client_scope_map(
    ctx: AzureContext, name: str, repositories: Iterable[str]
) -> StepResult:
    names.validate_scope_map_name(name)
    desired = desired_scope_map(
        client_map_description(name), act.client_actions(repositories, scope_map_name=name)
    )
    return _ensure_scope_map(ctx, name, desired)


def _ensure_token(ctx: AzureContext, name: str, scope_map_name: str) -> StepResult:
    names.validate_token_name(name)
    names.validate_scope_map_name(scope_map_name)
    resource = f"tokens/{name}"
    scope_map_id = ctx.scope_map_id(scope_map_name)
    tokens = ctx.mgmt.tokens

    def apply(change: Change) -> None:
        start = tokens.begin_create if change.op == "create" else tokens.begin_update
        _write_once(lambda: start(*_rg(ctx), name, _body(change)))

    return _converge(
        ctx,
        resource,
        lambda: _read(ctx, lambda: tokens.get(*_rg(ctx), name), resource),
        lambda actual: diff_token(actual, scope_map_id, name=name),
        apply,
        id=ctx.token_id(name),
        scope_map_id=scope_map_id,
    )


def ensure_sync_token(ctx: AzureContext, cr_name: str) -> StepResult:
    return _ensure_token(ctx, names.sync_token_name(cr_name), names.sync_scope_map_name(cr_name))


def ensure_client_token(ctx: AzureContext, name: str, scope_map_name: str) -> StepResult:
    return _ensure_token(ctx, name, scope_map_name)


# ---- connected registry -------------------------------------------------------------------


def _read_cr(ctx: AzureContext, cr_name: str) -> Json | None:
    return _read(
        ctx,
        lambda: ctx.cr_mgmt.connected_registries.get(*_rg(ctx), cr_name),
        f"connectedRegistries/{cr_name}",
    )


def ensure_connected_registry(ctx: AzureContext, spec: ConnectedRegistrySpec) -> StepResult:
    name = spec.name
    resource = f"connectedRegistries/{name}"
    token_id = ctx.token_id(names.sync_token_name(name))
    crs = ctx.cr_mgmt.connected_registries

    def apply(change: Change) -> None:
        start = crs.begin_create if change.op == "create" else crs.begin_update
        _write_once(lambda: start(*_rg(ctx), name, _body(change)))

    return _converge(
        ctx,
        resource,
        lambda: _read_cr(ctx, name),
        lambda actual: diff_connected_registry(actual, spec, token_id),
        apply,
        id=ctx.connected_registry_id(name),
        mode=spec.mode,
    )


def read_connected_registry(ctx: AzureContext, cr_name: str) -> ConnectedRegistryInfo | None:
    names.validate_cr_name(cr_name)
    cr = _read_cr(ctx, cr_name)
    if cr is None:
        return None
    props = cr.get("properties") or {}
    parent = props.get("parent") or {}
    sync = parent.get("syncProperties") or {}
    return ConnectedRegistryInfo(
        name=cr_name,
        id=str(cr.get("id") or ctx.connected_registry_id(cr_name)),
        mode=act.normalize_mode(props.get("mode") or "ReadOnly"),
        provisioning_state=props.get("provisioningState"),
        connection_state=props.get("connectionState"),
        activation_status=(props.get("activation") or {}).get("status"),
        gateway_endpoint=sync.get("gatewayEndpoint"),
        last_sync_time=_time(sync.get("lastSyncTime")),
        last_activity_time=_time(props.get("lastActivityTime")),
        sync_token_id=sync.get("tokenId"),
        sync_schedule=sync.get("schedule"),
        sync_window=sync.get("syncWindow"),
        message_ttl=sync.get("messageTtl"),
        client_token_ids=list(props.get("clientTokenIds") or []),
        status_details=list(props.get("statusDetails") or []),
        version=props.get("version"),
    )


def attach_client_token(ctx: AzureContext, cr_name: str, token_name: str) -> StepResult:
    names.validate_cr_name(cr_name)
    names.validate_token_name(token_name)
    resource = f"connectedRegistries/{cr_name}"
    token_id = ctx.token_id(token_name)

    def decide(cr: Json | None) -> Change:
        if cr is None:
            raise PermanentError(
                "connected registry not found; cannot attach a client token.",
                resource=resource,
                fix="run ensure_connected_registry first.",
            )
        current = list((cr.get("properties") or {}).get("clientTokenIds") or [])
        return diff_client_token_ids(current, [token_id], name=cr_name)

    crs = ctx.cr_mgmt.connected_registries
    return _converge(
        ctx,
        resource,
        lambda: _read_cr(ctx, cr_name),
        decide,
        lambda c: _write_once(lambda: crs.begin_update(*_rg(ctx), cr_name, _body(c))),
        token=token_name,
    )


# ---- passwords ----------------------------------------------------------------------------


def _read_token(ctx: AzureContext, token_name: str) -> Json:
    names.validate_token_name(token_name)
    resource = f"tokens/{token_name}"
    token = _read(ctx, lambda: ctx.mgmt.tokens.get(*_rg(ctx), token_name), resource)
    if token is None:
        raise PermanentError(
            "token not found.",
            resource=resource,
            fix="ensure the token exists before managing its passwords.",
        )
    return token


def _passwords(token: Json) -> list[Json]:
    creds = (token.get("properties") or {}).get("credentials") or {}
    return list(creds.get("passwords") or [])


def read_token_passwords(ctx: AzureContext, token_name: str) -> list[PasswordMeta]:
    """Slot, creation time and expiry of each live password; never the values."""
    metas = []
    for entry in _passwords(_read_token(ctx, token_name)):
        slot = str(entry.get("name", "")).lower()
        if slot in SLOTS:
            metas.append(
                PasswordMeta(
                    slot=slot,
                    creation_time=_time(entry.get("creationTime")),  # type: ignore[arg-type]
                    expiry=_time(entry.get("expiry")),
                )
            )
    return sorted(metas, key=lambda m: m.slot)


def _creation_time(metas: list[PasswordMeta], slot: str) -> datetime | None:
    return next((m.creation_time for m in metas if m.slot == slot), None)


def generate_password(
    ctx: AzureContext,
    token_name: str,
    slot: str,
    *,
    expiry: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> GeneratedPassword:
    """Regenerate exactly one password slot and return its value.

    generateCredentials is not idempotent and its value is shown once. After an ambiguous
    failure the slot's creation time tells whether the server did it anyway; either way the
    retry names the same slot, so a call never touches (or burns) the other one.
    """
    slot_ = _slot(slot)
    resource = f"tokens/{token_name}/{slot_}"
    body: Json = {"tokenId": ctx.token_id(token_name), "name": slot_}
    if expiry is not None:
        body["expiry"] = expiry.isoformat()
    before = _creation_time(read_token_passwords(ctx, token_name), slot_)
    delays = list(
        backoff_delays(ctx.retry_attempts, base=ctx.retry_base_delay, cap=ctx.retry_max_delay)
    )
    result: Json | None = None
    for attempt in range(ctx.retry_attempts):
        try:
            result = _rest(ctx.mgmt.registries.begin_generate_credentials(*_rg(ctx), body).result())
            break
        except Exception as exc:  # classified below
            err = classify(exc, resource=resource)
            if not isinstance(err, TransientError) or attempt == ctx.retry_attempts - 1:
                raise err from None
            after = _creation_time(read_token_passwords(ctx, token_name), slot_)
            if after != before:
                log.warning(
                    "%s: regenerated server-side but the response was lost; "
                    "regenerating the same slot",
                    resource,
                )
            else:
                log.warning("%s: transient failure before the server acted: %s", resource, err)
            before = after
            delay = delays[attempt]
            if err.retry_after is not None:
                delay = min(max(delay, err.retry_after), ctx.retry_max_delay)
            sleep(delay)
    assert result is not None
    entry = next(
        (p for p in result.get("passwords") or [] if str(p.get("name", "")).lower() == slot_), None
    )
    if entry is None or not entry.get("value"):
        raise PermanentError(
            "generateCredentials returned no value for the slot.", resource=resource
        )
    meta = PasswordMeta(
        slot=slot_,
        creation_time=_time(entry.get("creationTime")),
        expiry=_time(entry.get("expiry")),
    )
    log.info(
        "%s: generated a new password (created %s, expires %s)",
        resource,
        meta.creation_time,
        meta.expiry,
    )
    return GeneratedPassword(
        username=str(result.get("username") or token_name),
        password=SecretStr(str(entry["value"])),
        meta=meta,
    )


def revoke_password(ctx: AzureContext, token_name: str, slot: str) -> StepResult:
    """PATCH the token's passwords to the slots to keep."""
    slot_ = _slot(slot)
    resource = f"tokens/{token_name}/{slot_}"
    kept: list[str] = []

    def decide(token: Json | None) -> Change:
        entries = _passwords(token or {})
        if not any(str(p.get("name", "")).lower() == slot_ for p in entries):
            return Change.none(f"token {token_name} has no {slot_}; nothing to revoke")
        keep = [
            {k: p[k] for k in ("name", "creationTime", "expiry") if p.get(k) is not None}
            for p in entries
            if str(p.get("name", "")).lower() != slot_
        ]
        kept[:] = [str(p["name"]) for p in keep]
        return Change(
            "update",
            {"properties": {"credentials": {"passwords": keep}}},
            f"token {token_name}: revoking {slot_}, keeping {kept or 'no other slot'}",
        )

    tokens = ctx.mgmt.tokens
    return _converge(
        ctx,
        resource,
        lambda: _read_token(ctx, token_name),
        decide,
        lambda c: _write_once(lambda: tokens.begin_update(*_rg(ctx), token_name, _body(c))),
    )
