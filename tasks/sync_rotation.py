"""Pure: the sync-credential rotation state machine and the status facts of sync passwords.

The sync token has one consumer: the Helm release, whose metadata records the slot and creation
time of the connection string it carries (:class:`model.site.SyncCredentialRef`). From that and
the token's password metadata alone these functions decide, deterministically and without I/O,
what a ``rotate-sync-credential`` run does next. The flow re-derives the plan at every run, so a
run interrupted at any step is finished, not restarted; the slot the release carries is never
regenerated nor revoked.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from model.azure import Slot
from model.errors import PermanentError
from tasks.rotation import (
    CredentialRefLike,
    PasswordLike,
    as_slot,
    days_until,
    is_due,
    normalise_passwords,
    other_state,
    ref_is_valid,
    utc,
)

# Default lifetime of a sync password (provision and rotation); the rotation renews it within
# the lead time. Microsoft's docs give no maximum for token passwords; a year keeps the
# credential on edge hardware bounded while a rotation is due only once a year.
SYNC_PASSWORD_DAYS = 365
SYNC_LEAD_DAYS = 30

Action = Literal["noop", "rotate", "resume", "finish"]


@dataclass(frozen=True)
class SyncRotationPlan:
    """What a run does, in this order, each only when its flag says so:

    generate ``target`` → upgrade the release to it → wait Online with a sync after the change
    → revoke ``revoke``.
    """

    action: Action
    carried: Slot
    target: Slot
    generate: bool
    upgrade: bool
    revoke: Slot | None
    reason: str

    @property
    def writes(self) -> bool:
        return self.generate or self.upgrade or self.revoke is not None


def plan_sync_rotation(
    passwords: Iterable[PasswordLike],
    carried: CredentialRefLike | None,
    now: datetime,
    lead: timedelta,
    *,
    force: bool = False,
    resource: str = "the Helm release",
) -> SyncRotationPlan:
    """Decide the next step from the token's passwords and the slot the release carries.

    - The release carries no valid sync credential: not a rotation (the runtime cannot sync);
      refused, provision-site repairs it.
    - The other slot is live and *newer*: a rotation stopped after generating it and before the
      upgrade. Its value was never persisted, so it is regenerated (the carried slot untouched).
    - ``force`` or the carried slot is due: generate the other slot, upgrade, revoke the carried.
    - The other slot is live and *older*: the upgrade happened, the revoke did not; prove the
      runtime Online with a sync since, then revoke it.
    - Otherwise nothing to do.
    """
    state = normalise_passwords(passwords)
    now = utc(now)
    if carried is None or not ref_is_valid(carried, state, now):
        raise PermanentError(
            "the Helm release carries no valid sync credential "
            + ("(no record)" if carried is None else f"({carried.slot} was regenerated or expired)")
            + ": the runtime cannot sync, so there is nothing to rotate safely",
            resource=resource,
            fix="re-run provision-site: it installs a fresh sync password",
        )
    current = as_slot(carried.slot)
    cur = state[current]
    other, other_live, other_newer = other_state(state, current, now)
    if other_newer:
        return SyncRotationPlan(
            "resume",
            current,
            other,
            generate=True,
            upgrade=True,
            revoke=current,
            reason=f"{other} is newer than the {current} the release carries but not installed: "
            f"an earlier rotation stopped before the upgrade; regenerating {other} "
            f"({current} untouched)",
        )
    if force or is_due(cur, now, lead):
        why = (
            "forced rotation (leaked or suspect password)"
            if force
            else f"{current} is due (expires {cur.expiry}, lead {lead.days} d)"
        )
        return SyncRotationPlan(
            "rotate",
            current,
            other,
            generate=True,
            upgrade=True,
            revoke=current,
            reason=f"{why}: regenerating the unused {other}; {current} stays valid until the "
            f"runtime syncs with {other}",
        )
    if other_live:
        return SyncRotationPlan(
            "finish",
            current,
            current,
            generate=False,
            upgrade=False,
            revoke=other,
            reason=f"the release carries {current}; the older {other} is still live and unused, "
            "so it is revoked once the runtime is Online with a sync since",
        )
    return SyncRotationPlan(
        "noop",
        current,
        current,
        generate=False,
        upgrade=False,
        revoke=None,
        reason=f"not due: the release carries {current}, which expires {cur.expiry} (more "
        f"than {lead.days} d away); due from {due_from(cur.expiry, lead)}; the other slot is "
        "empty",
    )


def due_from(expiry: datetime | None, lead: timedelta) -> str:
    """When a password of that expiry becomes due (the lead before it), for the not-due text."""
    return "now (never expires)" if expiry is None else (utc(expiry) - lead).isoformat()


@dataclass(frozen=True)
class SyncedCheck:
    ok: bool
    reason: str


def synced_since(
    connection_state: str | None,
    last_sync: datetime | None,
    last_successful: datetime | None,
    since: datetime,
) -> SyncedCheck:
    """Online with a successful sync strictly after ``since`` (the change). The successful
    time is used when the service reports one (a failed sync also moves lastSyncTime)."""
    when = last_successful if last_successful is not None else last_sync
    if connection_state != "Online":
        return SyncedCheck(False, f"connectionState {connection_state}")
    if when is None or utc(when) <= utc(since):
        seen = "never" if when is None else utc(when).isoformat()
        return SyncedCheck(False, f"Online, but no sync after {utc(since).isoformat()} ({seen})")
    return SyncedCheck(True, f"Online, synced at {utc(when).isoformat()}")


@dataclass(frozen=True)
class SyncPasswordFact:
    """One sync password slot for site-status (no value)."""

    slot: Slot
    in_use: bool
    age_days: float | None
    days_to_expiry: float | None  # None: never expires


def sync_password_facts(
    passwords: Iterable[PasswordLike], in_use: str | None, now: datetime
) -> list[SyncPasswordFact]:
    """Each existing slot's age and days to expiry, and whether the release carries it
    (``in_use``: the release's recorded slot, None when unknown). Ordered by slot."""
    used = as_slot(in_use) if in_use else None
    out = []
    for slot, p in sorted(normalise_passwords(passwords).items()):
        age = None
        if p.creation_time is not None:
            age = round((utc(now) - p.creation_time).total_seconds() / 86400, 2)
        out.append(SyncPasswordFact(slot, slot == used, age, days_until(p.expiry, now)))
    return out
