"""Pure: the client-token rotation state machine, decided from metadata only.

Built on the slot and consumer rules of :mod:`tasks.rotation`; the flow re-derives the plan from
ARM and the consumers at every run, so a run interrupted at any step is finished, not restarted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from model.azure import Slot
from model.errors import InputError
from tasks.rotation import (
    SLOTS,
    CredentialDecision,
    CredentialRefLike,
    PasswordLike,
    PasswordState,
    as_slot,
    choose_slot,
    is_due,
    is_live,
    newest_slot,
    normalise_passwords,
    other_slot,
    other_state,
    ref_is_valid,
    utc,
)

Action = Literal["noop", "rotate", "resume", "adopt", "finish", "repair"]


@dataclass(frozen=True)
class RotationPlan:
    """What a rotation run does. Steps run in this order, each only when its flag says so:

    generate ``target`` → canary with the new password → adopt (write pull secrets) →
    canary with the pull secret → revoke ``revoke``.
    """

    action: Action
    target: Slot | None
    generate: bool
    adopt: bool
    revoke: Slot | None
    reason: str
    # Namespaces whose pull secret already carries the target credential: a source of its value
    # when it must be adopted without regenerating (an interrupted adoption).
    value_sources: tuple[str, ...] = field(default_factory=tuple)

    @property
    def writes(self) -> bool:
        return self.generate or self.adopt or self.revoke is not None


def _regenerate(action: Action, target: Slot, *, revoke: Slot | None, reason: str) -> RotationPlan:
    """A plan that generates ``target`` and, once proven, adopts it everywhere."""
    return RotationPlan(
        action=action, target=target, generate=True, adopt=True, revoke=revoke, reason=reason
    )


def plan_rotation(
    passwords: Iterable[PasswordLike],
    consumers: Mapping[str, CredentialRefLike | None],
    now: datetime,
    lead: timedelta,
    *,
    force: bool = False,
) -> RotationPlan:
    """Decide the next rotation action from metadata only.

    ``force`` (a leaked or suspect password) rotates now whatever the expiry: the slot in use
    is treated as due, through the same generate → prove → adopt → revoke steps. It is refused
    only while pull secrets are split between both slots (an interrupted adoption): any slot it
    could regenerate is then one that workloads use.

    ``consumers`` maps each namespace to the credential its pull secret records (None: no pull
    secret) and, in the node auth model, :data:`NODE_CONSUMER` to the credential the node's
    registries.yaml records: a slot the node uses is never regenerated either. The rules, in
    order:

    - Consumers hold valid credentials of both slots (adoption was interrupted): adopt the newer
      slot everywhere, reading its value from a namespace that has it. Never regenerate.
    - No consumer holds a valid credential: pulls already fail; generate the chosen slot.
    - All valid consumers on slot S, and the other slot is live and *newer* than S: a rotation
      stopped before adoption. Its value is lost (never persisted), so regenerate that slot
      (S untouched) and carry on.
    - The other slot is live and *older* (adoption done, revoke pending): canary and revoke it.
    - S is due: rotate into the other slot.
    - Otherwise nothing to do.
    """
    state = normalise_passwords(passwords)
    now = utc(now)
    valid: dict[str, Slot] = {}
    for ns, ref in consumers.items():
        if ref is not None and ref_is_valid(ref, state, now):
            valid[ns] = as_slot(ref.slot)
    stale = sorted(ns for ns in consumers if ns not in valid)
    in_use = set(valid.values())

    if force and len(in_use) == 2:
        holders = ", ".join(f"{ns}: {slot}" for ns, slot in sorted(valid.items()))
        raise InputError(
            "force refused: an interrupted rotation is switching pull secrets between slots "
            f"({holders}); both slots are in use by workloads, so regenerating either now "
            "would break pulls",
            fix="re-run rotate-client-token without force to finish that rotation (it revokes "
            "the older slot), then force again if the new password is also suspect.",
        )
    if len(in_use) == 2:
        newer = newest_slot(state, in_use)
        return RotationPlan(
            action="adopt",
            target=newer,
            generate=False,
            adopt=True,
            revoke=other_slot(newer),
            reason=f"pull secrets are split between both slots (interrupted adoption); "
            f"finishing the switch to {newer}",
            value_sources=tuple(sorted(ns for ns, s in valid.items() if s == newer)),
        )
    if not in_use:
        # A live slot here is an orphan (nobody holds its value): regenerate it in place; the
        # other live one, if any, no consumer relies on either and is revoked.
        target, leftover = orphan_target(state, now)
        return _regenerate(
            "repair",
            target,
            revoke=leftover,
            reason="no pull secret holds a valid client password"
            + (f" ({', '.join(stale)})" if stale else "")
            + f"; generating {target}",
        )

    (current,) = in_use
    cur = state[current]
    other, other_live, other_newer = other_state(state, current, now)
    if other_newer:
        return _regenerate(
            "resume",
            other,
            revoke=current,
            reason=f"{other} is newer than the {current} in use but not adopted: an earlier "
            f"rotation stopped before switching; regenerating {other} ({current} untouched)",
        )
    if force:
        return _regenerate(
            "rotate",
            other,
            revoke=current,
            reason=f"forced rotation (leaked or suspect password): regenerating the unused "
            f"{other}; {current} stays valid until {other} is proven, then it is revoked",
        )
    if stale:
        # Some namespaces miss the live credential; the value is in the others' pull secrets.
        return RotationPlan(
            action="adopt",
            target=current,
            generate=False,
            adopt=True,
            revoke=other if other_live else None,
            reason=f"pull secrets in {', '.join(stale)} do not hold the live {current}; "
            "copying it there",
            value_sources=tuple(sorted(valid)),
        )
    if is_due(cur, now, lead):
        return _regenerate(
            "rotate",
            other,
            revoke=current,
            reason=f"{current} is due (expires {cur.expiry}, lead {lead.days} d); "
            f"regenerating the unused {other}",
        )
    if other_live:
        return RotationPlan(
            action="finish",
            target=current,
            generate=False,
            adopt=False,
            revoke=other,
            reason=f"every pull secret holds {current}; the older {other} is still live and "
            "unused, so it is revoked after a canary",
        )
    return RotationPlan(
        action="noop",
        target=current,
        generate=False,
        adopt=False,
        revoke=None,
        reason=f"every pull secret holds {current}, which expires {cur.expiry} "
        f"(more than {lead.days} d away); the other slot is empty",
    )


# ---------------------------------------------------------------------------------------------
# Provisioning: the client password


def held_slots(
    consumers: Mapping[str, CredentialRefLike | None],
    state: Mapping[Slot, PasswordState],
    now: datetime,
) -> set[Slot]:
    """The slots some consumer validly holds (its record is the slot's current password)."""
    return {as_slot(r.slot) for r in consumers.values() if r and ref_is_valid(r, state, now)}


def orphan_target(state: Mapping[Slot, PasswordState], now: datetime) -> tuple[Slot, Slot | None]:
    """No consumer holds a live password: the slot to generate and the one to revoke.

    A live slot is an orphan (generated by a run that died before any consumer stored it; its
    value is gone): the newest one is regenerated in place rather than filling the empty slot
    beside it, and the other live one, if any, is revoked. Nothing live: the unused slot.
    """
    live = [s for s in SLOTS if s in state and is_live(state[s], now)]
    if not live:
        return choose_slot(state.values(), (), now), None
    target = newest_slot(state, live)
    other = other_slot(target)
    return target, other if other in live else None


def decide_client_password(
    consumers: Mapping[str, CredentialRefLike | None],
    passwords: Iterable[PasswordLike],
    now: datetime,
) -> CredentialDecision:
    """Provisioning keeps the client password a consumer (pull secret, node registries.yaml)
    validly holds; else regenerates. Either way a live slot that no consumer holds is never
    left behind: it is regenerated (when a password must be generated anyway) or revoked."""
    state = normalise_passwords(passwords)
    now = utc(now)
    valid = sorted(held_slots(consumers, state, now))
    if valid:
        # Two valid slots means a rotation is mid-way; provisioning leaves it to the rotation.
        slot = valid[-1] if len(valid) == 1 else newest_slot(state, valid)
        other = other_slot(slot)
        orphan = state.get(other)
        if other in valid or orphan is None or not is_live(orphan, now):
            return CredentialDecision(True, slot, f"consumers hold live {slot}; keeping it")
        return CredentialDecision(
            True,
            slot,
            f"consumers hold live {slot}; keeping it. {other} (created {orphan.creation_time}) "
            "is live but no consumer holds it (a run stopped before storing it): revoking it",
            revoke=other,
        )
    slot, revoke = orphan_target(state, now)
    live = slot in state and is_live(state[slot], now)
    why = (
        f"{slot} is live but no consumer holds it (its value was never stored): regenerating it"
        if live
        else f"generating {slot}"
    )
    extra = f"; {revoke} is live and unused too: revoking it" if revoke else ""
    return CredentialDecision(
        False, slot, f"no consumer holds a live password; {why}{extra}", revoke=revoke
    )
