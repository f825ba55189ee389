"""Pure credential decisions: which token password slot to (re)generate, keep or revoke, and when.

A token has two password slots. Consumers (pull secrets, the node's registries.yaml credential
in the node auth model, the Helm release's sync credential) record which slot and which
creation time they carry, never the value. From that metadata alone
these functions decide, deterministically and without I/O:

- the slot to write is never one a consumer still relies on (the unused one, else the older);
- a rotation interrupted at any step is recognised on the next run and finished, not restarted
  on top of the slot workloads use;
- lifetimes leave room for the lead time and propagation, so a fresh password is never due at
  once (which would rotate forever).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

# The one slot type (model.azure), re-exported for the callers of these decisions.
from model.azure import SLOTS as SLOTS
from model.azure import Slot as Slot
from model.errors import InputError

# Creation times written by ARM and read back through annotations can differ in precision
# (ARM's 7 fractional digits vs Python's 6, timezone suffix rewritten). A regeneration of the
# slot is a new creation time, possibly within the same second, so the tolerance stays tiny.
_SAME_INSTANT = timedelta(milliseconds=1)


class PasswordLike(Protocol):
    """What the Azure steps report for one password slot (no value)."""

    @property
    def slot(self) -> str: ...
    @property
    def creation_time(self) -> datetime | None: ...
    @property
    def expiry(self) -> datetime | None: ...


class RecordLike(Protocol):
    """A consumer's stored record: token name, slot and creation time as text (no value)."""

    @property
    def token(self) -> str: ...
    @property
    def slot(self) -> str: ...
    @property
    def created(self) -> str: ...


# The key of the node's registries.yaml credential among the consumers (node auth model); the
# other keys are namespaces (their pull secrets). A space keeps it apart from any namespace.
NODE_CONSUMER = "node registries.yaml"


class CredentialRefLike(Protocol):
    """What a consumer records about the credential it carries (no value)."""

    @property
    def slot(self) -> str: ...
    @property
    def creation_time(self) -> datetime | None: ...


@dataclass(frozen=True)
class PasswordState:
    slot: Slot
    creation_time: datetime | None
    expiry: datetime | None


@dataclass(frozen=True)
class CredentialRef:
    slot: Slot
    creation_time: datetime | None


def as_slot(name: str) -> Slot:
    """Normalise ``password1``/``Password1``/``1`` to a slot name; refuse anything else."""
    text = name.strip().lower()
    if text in ("1", "password1"):
        return "password1"
    if text in ("2", "password2"):
        return "password2"
    raise InputError(f"unknown password slot {name!r}", fix="use password1 or password2.")


def created_text(value: datetime | None) -> str:
    """How a creation time is recorded in annotations and release metadata."""
    return "" if value is None else _utc(value).isoformat()


def parse_created(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def ref_from_record(slot: str, created: str | None) -> CredentialRef | None:
    """A consumer's record (annotation / release metadata strings) as a CredentialRef."""
    try:
        return CredentialRef(as_slot(slot), parse_created(created))
    except InputError:
        return None


def refs_of(
    records: Mapping[str, RecordLike | None], token: str
) -> dict[str, CredentialRef | None]:
    """Consumers' records as CredentialRefs; a record of another token counts as none."""
    return {
        key: ref_from_record(r.slot, r.created) if r is not None and r.token == token else None
        for key, r in records.items()
    }


def preferred_source(sources: Iterable[str]) -> str:
    """Where to read a value to adopt: a pull secret first (a Kubernetes read), the node's
    registries.yaml last. Deterministic."""
    ordered = sorted(sources, key=lambda key: (key == NODE_CONSUMER, key))
    if not ordered:
        raise ValueError("no consumer holds the value")
    return ordered[0]


def other_slot(slot: Slot) -> Slot:
    return "password2" if slot == "password1" else "password1"


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_opt(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def normalise_passwords(passwords: Iterable[PasswordLike]) -> dict[Slot, PasswordState]:
    out: dict[Slot, PasswordState] = {}
    for p in passwords:
        slot = as_slot(p.slot)
        out[slot] = PasswordState(slot, _utc_opt(p.creation_time), _utc_opt(p.expiry))
    return out


def is_live(p: PasswordState, now: datetime) -> bool:
    return p.expiry is None or _utc(p.expiry) > _utc(now)


def same_instant(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(_utc(a) - _utc(b)) <= _SAME_INSTANT


def ref_is_valid(
    ref: CredentialRefLike | None, passwords: Mapping[Slot, PasswordState], now: datetime
) -> bool:
    """True when the consumer's credential is still the slot's current, unexpired password."""
    if ref is None:
        return False
    try:
        slot = as_slot(ref.slot)
    except InputError:
        return False
    current = passwords.get(slot)
    if current is None or not is_live(current, now):
        return False
    # A regenerated slot has a new creation time: the consumer's copy is then dead.
    return same_instant(current.creation_time, ref.creation_time)


def _older_first_key(p: PasswordState) -> tuple[int, datetime]:
    created = p.creation_time or datetime.min.replace(tzinfo=UTC)
    return (0, created) if p.creation_time is None else (1, created)


def choose_slot(
    passwords: Iterable[PasswordLike],
    protected: Iterable[str] = (),
    now: datetime | None = None,
) -> Slot:
    """The slot to (re)generate: never a protected one; an unused slot first, else the older.

    A slot is unused when it has no password or its password has expired. Ties go to
    ``password1`` so the choice is deterministic.
    """
    now = now or datetime.now(UTC)
    state = normalise_passwords(passwords)
    keep = {as_slot(s) for s in protected}
    free = [s for s in SLOTS if s not in keep]
    if not free:
        raise InputError(
            "both password slots are in use by consumers; refusing to overwrite either",
            fix="let the interrupted rotation finish (re-run rotate-client-token).",
        )
    unused = [s for s in free if s not in state or not is_live(state[s], now)]
    if unused:
        return unused[0]
    return min((state[s] for s in free), key=lambda p: (_older_first_key(p), p.slot)).slot


# ---------------------------------------------------------------------------------------------
# Lifetimes


@dataclass(frozen=True)
class Lifetime:
    lifetime: timedelta
    lead: timedelta
    propagation: timedelta


def validate_lifetime(
    lifetime_days: float, lead_days: float, propagation_timeout_seconds: float
) -> Lifetime:
    """Refuse lifetimes that would make a fresh password due for rotation at once."""
    if lifetime_days <= 0:
        raise InputError(
            f"lifetime_days={lifetime_days} must be positive", fix="pass e.g. lifetime_days=90."
        )
    if lead_days < 0:
        raise InputError(f"lead_days={lead_days} must be >= 0", fix="pass e.g. lead_days=14.")
    if propagation_timeout_seconds <= 0:
        raise InputError(
            f"propagation_timeout_seconds={propagation_timeout_seconds} must be positive",
            fix="pass e.g. 300 (the connected registry picks up credentials at its next sync).",
        )
    life = Lifetime(
        timedelta(days=lifetime_days),
        timedelta(days=lead_days),
        timedelta(seconds=propagation_timeout_seconds),
    )
    if life.lifetime <= life.lead + life.propagation:
        raise InputError(
            f"lifetime_days={lifetime_days} is not longer than lead_days={lead_days} plus the "
            f"propagation allowance ({propagation_timeout_seconds:g} s): the new password would "
            "be due for rotation as soon as it exists",
            fix="raise lifetime_days or lower lead_days.",
        )
    return life


def expiry_for(now: datetime, lifetime_days: float) -> datetime:
    # Whole seconds: ARM stores second precision, and equality checks compare what it echoes.
    return (_utc(now) + timedelta(days=lifetime_days)).replace(microsecond=0)


def is_due(p: PasswordState, now: datetime, lead: timedelta) -> bool:
    """Due when it expires within the lead time. A password that never expires is due too:
    an unbounded credential on an edge node is exactly what rotation exists to end."""
    if p.expiry is None:
        return True
    return _utc(p.expiry) - _utc(now) <= lead


# ---------------------------------------------------------------------------------------------
# Client-token rotation plan

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
    now = _utc(now)
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
        target = choose_slot(state.values(), (), now)
        leftover = state.get(other_slot(target))
        return _regenerate(
            "repair",
            target,
            # No consumer relies on the other slot either; a live value nobody tracks is a leak.
            revoke=other_slot(target) if leftover is not None and is_live(leftover, now) else None,
            reason="no pull secret holds a valid client password"
            + (f" ({', '.join(stale)})" if stale else "")
            + f"; generating {target}",
        )

    (current,) = in_use
    other = other_slot(current)
    cur = state[current]
    oth = state.get(other)
    other_live = oth is not None and is_live(oth, now)
    if other_live and oth is not None and _older_first_key(oth) > _older_first_key(cur):
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
# Provisioning decisions


@dataclass(frozen=True)
class CredentialDecision:
    keep: bool
    slot: Slot
    reason: str


def decide_sync_credential(
    recorded: CredentialRefLike | None,
    passwords: Iterable[PasswordLike],
    now: datetime,
    *,
    activated: bool = True,
) -> CredentialDecision:
    """Keep the sync password the Helm release records if it is still the token's and the
    connected registry is activated; else pick the slot it does NOT record (so a running
    runtime keeps syncing until the upgrade).

    A deactivated (or never activated) connected registry needs a fresh connection string:
    the runtime only activates again with a new one.
    """
    state = normalise_passwords(passwords)
    if recorded is not None and ref_is_valid(recorded, state, now):
        kept = as_slot(recorded.slot)
        if not activated:
            slot = choose_slot(state.values(), (kept,), now)
            return CredentialDecision(
                False,
                slot,
                f"connected registry is not activated; a fresh connection string in "
                f"{slot} re-activates the runtime",
            )
        return CredentialDecision(
            True, kept, f"release records {kept} created {recorded.creation_time}; still valid"
        )
    protected: Sequence[str] = ()
    if recorded is not None:
        try:
            protected = (as_slot(recorded.slot),)
        except InputError:
            protected = ()
    slot = choose_slot(state.values(), protected, now)
    why = (
        "no sync credential recorded"
        if recorded is None
        else f"recorded {recorded.slot} no longer matches the token"
    )
    return CredentialDecision(False, slot, f"{why}; generating {slot}")


def sync_slot_when_unreadable(
    recorded: CredentialRefLike,
    passwords: Iterable[PasswordLike],
    now: datetime,
) -> CredentialDecision:
    """The chart values changed but the kept connection string could not be read back from
    the release: generate the slot the release does NOT record, so the running runtime keeps
    syncing with its own until the upgrade replaces it."""
    recorded_slot = as_slot(recorded.slot)
    slot = choose_slot(passwords, (recorded_slot,), now)
    return CredentialDecision(
        False,
        slot,
        f"chart values changed but the release's connection string for {recorded_slot} could "
        f"not be read back; generating {slot} for the upgrade",
    )


def decide_client_password(
    consumers: Mapping[str, CredentialRefLike | None],
    passwords: Iterable[PasswordLike],
    now: datetime,
) -> CredentialDecision:
    """Provisioning keeps the client password any pull secret validly holds; else generates
    a slot that no pull secret relies on."""
    state = normalise_passwords(passwords)
    valid = sorted(
        {as_slot(r.slot) for r in consumers.values() if r and ref_is_valid(r, state, now)}
    )
    if valid:
        # Two valid slots means a rotation is mid-way; provisioning leaves it to the rotation.
        slot = valid[-1] if len(valid) == 1 else newest_slot(state, valid)
        return CredentialDecision(True, slot, f"pull secrets hold live {slot}; keeping it")
    slot = choose_slot(state.values(), (), now)
    return CredentialDecision(
        False, slot, f"no pull secret holds a live password; generating {slot}"
    )


def newest_slot(state: Mapping[Slot, PasswordState], slots: Iterable[Slot]) -> Slot:
    return max((state[s] for s in slots), key=lambda p: (_older_first_key(p), p.slot)).slot


def days_until(expiry: datetime | None, now: datetime) -> float | None:
    if expiry is None:
        return None
    return round((_utc(expiry) - _utc(now)).total_seconds() / 86400, 2)
