"""Pure: password plans - revoke a slot (PATCH the passwords to keep), keep or generate one.

The values never pass through here: a generate row is metadata (slot and why) until the apply.
"""

from __future__ import annotations

from typing import Any

from model.azure import Slot
from model.plan import Change
from tasks.azure.desired import ArmWrite

Json = dict[str, Any]


def password_entries(token: Json | None) -> list[Json]:
    creds = ((token or {}).get("properties") or {}).get("credentials") or {}
    return list(creds.get("passwords") or [])


def plan_revoke(token: Json | None, slot: Slot, *, step: str, token_name: str) -> Change:
    """PATCH the token's passwords to the slots to keep (the slot itself is left out)."""
    resource = f"tokens/{token_name}/{slot}"
    entries = password_entries(token)
    if not any(str(p.get("name", "")).lower() == slot for p in entries):
        return Change.none(step, resource, f"token {token_name} has no {slot}; nothing to revoke")
    keep = [
        {k: p[k] for k in ("name", "creationTime", "expiry") if p.get(k) is not None}
        for p in entries
        if str(p.get("name", "")).lower() != slot
    ]
    kept = [str(p["name"]) for p in keep]
    return Change(
        step,
        resource,
        "revoke",
        f"token {token_name}: revoking {slot}, keeping {kept or 'no other slot'}",
        payload=ArmWrite(token_name, {"properties": {"credentials": {"passwords": keep}}}),
        shown={"kept": kept},
    )


def plan_password(step: str, token_name: str, slot: Slot, *, keep: bool, reason: str) -> Change:
    """A credential decision (tasks.rotation) as a plan row: keep the slot, or generate it.

    The row is metadata only (slot and why); the value exists only after the apply.
    """
    resource = f"tokens/{token_name}/{slot}"
    if keep:
        return Change.none(step, resource, reason, slot=slot)
    return Change(
        step, resource, "generate", reason, payload=(token_name, slot), shown={"slot": slot}
    )
