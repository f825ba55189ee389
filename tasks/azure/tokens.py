"""Tokens: the sync token and the client token, each bound to acr-edge's own scope map.

Tokens are created without passwords (as the az CLI does); passwords are a separate,
slot-aware step (:mod:`tasks.azure.passwords`).
"""

from __future__ import annotations

from model import names
from model.arm_facts import TOKENS
from model.azure_context import AzureContext
from model.plan import Change, converge
from model.result import StepResult
from tasks.azure.arm import Json, create_or_update, fact_or_read, get_or_none, rg
from tasks.azure.desired import plan_token


def read_token(ctx: AzureContext, name: str, *, live: bool = False) -> Json | None:
    """The token's JSON (None: it does not exist); from the fleet's facts unless ``live``."""
    return fact_or_read(
        ctx,
        TOKENS,
        name,
        lambda: get_or_none(lambda: ctx.mgmt.tokens.get(*rg(ctx), name), f"tokens/{name}"),
        live=live,
    )


def apply_token(ctx: AzureContext, change: Change) -> StepResult:
    create_or_update(ctx, ctx.mgmt.tokens, change)
    return StepResult.from_change(change, writes=1, id=ctx.token_id(change.payload.name))


def _ensure(
    ctx: AzureContext, step: str, name: str, scope_map_name: str, dry_run: bool
) -> StepResult:
    names.validate_token_name(name)
    names.validate_scope_map_name(scope_map_name)
    scope_map_id = ctx.scope_map_id(scope_map_name)
    return converge(
        lambda: read_token(ctx, name, live=True),
        lambda actual: plan_token(actual, scope_map_id, step=step, name=name),
        lambda change: apply_token(ctx, change),
        dry_run=dry_run,
        policy=ctx.policy,
    )


def ensure_sync_token(ctx: AzureContext, cr_name: str, *, dry_run: bool = False) -> StepResult:
    return _ensure(
        ctx,
        "sync-token",
        names.sync_token_name(cr_name),
        names.sync_scope_map_name(cr_name),
        dry_run,
    )


def ensure_client_token(
    ctx: AzureContext, name: str, scope_map_name: str, *, dry_run: bool = False
) -> StepResult:
    return _ensure(ctx, "client-token", name, scope_map_name, dry_run)
