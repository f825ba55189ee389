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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

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
    return "" if value is None else utc(value).isoformat()


def parse_created(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return utc(datetime.fromisoformat(text.replace("Z", "+00:00")))
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


def node_consumer(node: str) -> str:
    """The key of one cluster node's registries.yaml credential among the consumers."""
    return f"{NODE_CONSUMER} on {node}"


def is_node_consumer(key: str) -> bool:
    return key == NODE_CONSUMER or key.startswith(f"{NODE_CONSUMER} on ")


def preferred_source(sources: Iterable[str]) -> str:
    """Where to read a value to adopt: a pull secret first (a Kubernetes read), the node's
    registries.yaml next, another node's last. Deterministic."""
    ordered = sorted(sources, key=lambda key: (is_node_consumer(key), key != NODE_CONSUMER, key))
    if not ordered:
        raise ValueError("no consumer holds the value")
    return ordered[0]


def other_slot(slot: Slot) -> Slot:
    return "password2" if slot == "password1" else "password1"


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_opt(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def normalise_passwords(passwords: Iterable[PasswordLike]) -> dict[Slot, PasswordState]:
    out: dict[Slot, PasswordState] = {}
    for p in passwords:
        slot = as_slot(p.slot)
        out[slot] = PasswordState(slot, _utc_opt(p.creation_time), _utc_opt(p.expiry))
    return out


def is_live(p: PasswordState, now: datetime) -> bool:
    return p.expiry is None or utc(p.expiry) > utc(now)


def same_instant(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(utc(a) - utc(b)) <= _SAME_INSTANT


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


def older_first_key(p: PasswordState) -> tuple[int, datetime]:
    created = p.creation_time or datetime.min.replace(tzinfo=UTC)
    return (0, created) if p.creation_time is None else (1, created)


def other_state(
    state: dict[Slot, PasswordState], current: Slot, now: datetime
) -> tuple[Slot, bool, bool]:
    """The slot beside ``current``: its name, whether it is live, and whether it is live and
    newer than ``current`` (an earlier rotation generated it and stopped before switching)."""
    other = other_slot(current)
    oth = state.get(other)
    live = oth is not None and is_live(oth, now)
    newer = live and oth is not None and older_first_key(oth) > older_first_key(state[current])
    return other, live, newer


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
    return min((state[s] for s in free), key=lambda p: (older_first_key(p), p.slot)).slot


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
    return (utc(now) + timedelta(days=lifetime_days)).replace(microsecond=0)


def is_due(p: PasswordState, now: datetime, lead: timedelta) -> bool:
    """Due when it expires within the lead time. A password that never expires is due too:
    an unbounded credential on an edge node is exactly what rotation exists to end."""
    if p.expiry is None:
        return True
    return utc(p.expiry) - utc(now) <= lead


# ---------------------------------------------------------------------------------------------
# Provisioning decisions


@dataclass(frozen=True)
class CredentialDecision:
    keep: bool
    slot: Slot
    reason: str
    # A live slot no consumer holds (an interrupted run generated it and lost the value):
    # revoked by the run, so the site never keeps a live password nobody uses.
    revoke: Slot | None = None


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


def newest_slot(state: Mapping[Slot, PasswordState], slots: Iterable[Slot]) -> Slot:
    return max((state[s] for s in slots), key=lambda p: (older_first_key(p), p.slot)).slot


def days_until(expiry: datetime | None, now: datetime) -> float | None:
    if expiry is None:
        return None
    return round((utc(expiry) - utc(now)).total_seconds() / 86400, 2)
