"""Token passwords: read the live slots (never values), generate one slot, revoke one slot.

generateCredentials is not idempotent and shows its value once, so it is the one Azure write
with its own loop: after an ambiguous failure the slot's creation time tells whether the server
acted anyway, and the retry names the same slot, so a call never touches (or burns) the other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from pydantic import SecretStr

from model import names
from model.azure import GeneratedPassword, PasswordMeta, Slot, slot_of
from model.azure_context import AzureContext
from model.errors import PermanentError, TransientError, classify
from model.plan import Change, converge
from model.result import StepResult
from model.retry import delay_for
from tasks.azure.arm import Json, parse_time, rest, rg, write_once
from tasks.azure.desired import ArmWrite
from tasks.azure.password_plans import password_entries, plan_revoke
from tasks.azure.tokens import read_token

log = logging.getLogger("acr_edge.azure")


def _existing_token(ctx: AzureContext, token_name: str, *, live: bool = False) -> Json:
    names.validate_token_name(token_name)
    token = read_token(ctx, token_name, live=live)
    if token is None:
        raise PermanentError(
            "token not found.",
            resource=f"tokens/{token_name}",
            fix="ensure the token exists before managing its passwords.",
        )
    return token


def metas_of(token: Json | None) -> list[PasswordMeta]:
    metas = []
    for entry in password_entries(token):
        slot = str(entry.get("name", "")).lower()
        if slot in ("password1", "password2"):
            metas.append(
                PasswordMeta(
                    slot=slot_of(slot),
                    creation_time=parse_time(entry.get("creationTime")),
                    expiry=parse_time(entry.get("expiry")),
                )
            )
    return sorted(metas, key=lambda m: m.slot)


def read_token_passwords(
    ctx: AzureContext, token_name: str, *, missing_ok: bool = False, live: bool = False
) -> list[PasswordMeta]:
    """Slot, creation time and expiry of each live password; never the values.

    ``missing_ok``: a token that does not exist yet has no password (a dry run plans against
    the token the run would create); otherwise its absence is an error. ``live``: ignore the
    fleet's facts (a caller about to write reads what it changes).
    """
    if missing_ok:
        names.validate_token_name(token_name)
        return metas_of(read_token(ctx, token_name, live=live))
    return metas_of(_existing_token(ctx, token_name, live=live))


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
    """Regenerate exactly one password slot and return its value (see the module doc)."""
    slot_ = slot_of(slot)
    resource = f"tokens/{token_name}/{slot_}"
    body: Json = {"tokenId": ctx.token_id(token_name), "name": slot_}
    if expiry is not None:
        body["expiry"] = expiry.isoformat()
    retry = ctx.policy
    before = _creation_time(read_token_passwords(ctx, token_name, live=True), slot_)
    result: Json | None = None
    for attempt in range(retry.attempts):
        try:
            result = rest(ctx.mgmt.registries.begin_generate_credentials(*rg(ctx), body).result())
            break
        except Exception as exc:  # classified below
            err = classify(exc, resource=resource)
            if not isinstance(err, TransientError) or attempt == retry.attempts - 1:
                raise err from None
            after = _creation_time(read_token_passwords(ctx, token_name, live=True), slot_)
            if after != before:
                log.warning(
                    "%s: regenerated server-side but the response was lost; "
                    "regenerating the same slot",
                    resource,
                )
            else:
                log.warning("%s: transient failure before the server acted: %s", resource, err)
            before = after
            sleep(delay_for(err, attempt, retry))
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
        creation_time=parse_time(entry.get("creationTime")),
        expiry=parse_time(entry.get("expiry")),
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


def ensure_password(
    ctx: AzureContext,
    change: Change,
    *,
    expiry: datetime | None = None,
    dry_run: bool = False,
) -> tuple[StepResult, GeneratedPassword | None]:
    """Apply a credential plan (:func:`tasks.azure.desired.plan_password`): keep, or generate
    the planned slot. A dry run records the row only: no generateCredentials, no value."""
    if not change.needed:
        return StepResult.from_change(change, writes=0), None
    if dry_run:
        return StepResult.of_plan(change), None
    token_name, slot = change.payload
    gen = generate_password(ctx, token_name, slot, expiry=expiry)
    created = gen.meta.creation_time.isoformat() if gen.meta.creation_time else ""
    return StepResult.from_change(change, writes=1, created=created), gen


def apply_revoke(ctx: AzureContext, change: Change) -> StepResult:
    write: ArmWrite = change.payload
    write_once(lambda: ctx.mgmt.tokens.begin_update(*rg(ctx), write.name, write.body))
    return StepResult.from_change(change, writes=1)


def revoke_password(
    ctx: AzureContext, token_name: str, slot: str, *, step: str = "revoke", dry_run: bool = False
) -> StepResult:
    """PATCH the token's passwords to the slots to keep."""
    slot_: Slot = slot_of(slot)
    return converge(
        lambda: _existing_token(ctx, token_name, live=True),
        lambda token: plan_revoke(token, slot_, step=step, token_name=token_name),
        lambda change: apply_revoke(ctx, change),
        dry_run=dry_run,
        policy=ctx.policy,
    )
