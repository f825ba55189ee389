"""Pure site-health rules for the site-status flow: what is wrong and how to fix it.

Everything here takes plain values (no clients), so each rule is tested directly and the flow
only gathers facts and renders the verdict.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from model.cron import CONTINUOUS, Cron

# A continuous sync reports at least this often; beyond it the link is suspect.
CONTINUOUS_GRACE = timedelta(minutes=15)

# Connected-registry statusDetails codes (Azure/acr connected-registry error codes, and the
# ones the runtime reports in practice) mapped to what an operator does about them.
STATUS_FIXES: dict[str, str] = {
    "diskerror": "the runtime's volume is full or failing: grow the PVC (pvc.storageRequest) "
    "or free space on the node.",
    "storagefull": "grow the PVC (pvc.storageRequest) or lower the synced repository set.",
    "tokenauthenticationfailed": "the sync token password in the release is no longer valid: "
    "re-run provision-site (it regenerates the unused slot and upgrades the release).",
    "synctokeninvalid": "re-run provision-site to regenerate the sync credential.",
    "unauthorized": "credentials were rejected: re-run provision-site for the sync token, "
    "rotate-client-token for clients.",
    "alreadyactivated": "another runtime activated this connected registry: uninstall it there, "
    "deactivate the connected registry, then re-run provision-site.",
    "activationconflict": "deactivate the connected registry (az acr connected-registry "
    "deactivate) and re-run provision-site.",
    "parentunreachable": "the node cannot reach the parent: allow outbound HTTPS to "
    "<registry>.azurecr.io and <registry>.<region>.data.azurecr.io.",
    "connectivityerror": "check the node's outbound HTTPS to the parent's data endpoint, "
    "proxy and DNS.",
    "certificateerror": "the runtime does not trust the parent's TLS certificate: check the "
    "node's CA store and any TLS-inspecting proxy.",
    "syncfailed": "look at the connected-registry pod logs; re-run provision-site if the "
    "sync scope map changed.",
    "messagettlexceeded": "sync messages expired before delivery: widen the sync window or "
    "lengthen message_ttl.",
}


def fix_for(code: str) -> str:
    return STATUS_FIXES.get(
        code.replace("_", "").replace("-", "").lower(),
        "unknown status code: read the connected-registry pod logs "
        "(kubectl logs -n <namespace> deploy/<release>) and the statusDetails description.",
    )


@dataclass(frozen=True)
class SyncVerdict:
    ok: bool
    age: timedelta | None
    expected_by: datetime | None
    message: str


def check_sync_age(
    last_sync: datetime | None,
    schedule: str,
    window: timedelta | None,
    now: datetime,
    *,
    activated: bool,
) -> SyncVerdict:
    """A sync is overdue when a scheduled window has fully closed after the last sync.

    For a continuous schedule the last sync must be within ``CONTINUOUS_GRACE``.
    """
    now = now.astimezone(UTC)
    age = None if last_sync is None else now - last_sync.astimezone(UTC)
    if schedule.strip() == CONTINUOUS:
        if last_sync is None:
            return SyncVerdict(
                False, None, None, "never synced" + ("" if activated else " (not activated)")
            )
        ok = age is not None and age <= CONTINUOUS_GRACE
        return SyncVerdict(
            ok,
            age,
            now - CONTINUOUS_GRACE,
            f"last sync {_fmt_age(age)} ago (continuous; expected within "
            f"{_fmt_age(CONTINUOUS_GRACE)})",
        )
    span = window or timedelta(0)
    fire = Cron.parse(schedule).previous(now - span)
    if last_sync is None:
        return SyncVerdict(
            False, None, fire, "never synced" + ("" if activated else " (not activated)")
        )
    if fire is None:
        return SyncVerdict(True, age, None, f"last sync {_fmt_age(age)} ago; no window closed yet")
    ok = last_sync.astimezone(UTC) >= fire
    closes = fire + span
    why = (
        f"last sync {_fmt_age(age)} ago; the window opened {fire:%Y-%m-%d %H:%M}Z and closed "
        f"{closes:%H:%M}Z"
    )
    return SyncVerdict(ok, age, fire, why + ("" if ok else " without a sync (overdue)"))


def _fmt_age(age: timedelta | None) -> str:
    if age is None:
        return "never"
    secs = int(age.total_seconds())
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m"
    if secs < 172800:
        return f"{secs // 3600}h"
    return f"{secs // 86400}d"


# ---------------------------------------------------------------------------------------------
# The whole verdict


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    value: str
    fix: str = ""


@dataclass
class Health:
    checks: list[Check] = field(default_factory=list)

    def add(self, name: str, ok: bool, value: str, fix: str = "") -> None:
        self.checks.append(Check(name, ok, value, "" if ok else fix))

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [
            f"{c.name}: {c.value}" + (f" Fix: {c.fix}" if c.fix else "")
            for c in self.checks
            if not c.ok
        ]

    def table(self) -> list[dict[str, str]]:
        return [
            {"check": c.name, "status": "ok" if c.ok else "FAIL", "value": c.value, "fix": c.fix}
            for c in self.checks
        ]


def check_connection(health: Health, connection_state: str | None, activation: str | None) -> None:
    state = connection_state or "unknown"
    health.add(
        "connectionState",
        state in ("Online", "Syncing"),
        state,
        "the runtime is not connected: check the pod (kubectl -n <ns> get pods) and the node's "
        "outbound HTTPS to the parent; see statusDetails.",
    )
    act = activation or "unknown"
    health.add(
        "activation",
        act == "Active",
        act,
        "the runtime never activated: re-run provision-site (helm install with a fresh "
        "connection string); if it reports 'already activated', deactivate first.",
    )


def check_status_details(health: Health, details: Iterable[Mapping[str, str | None]]) -> None:
    items = list(details)
    if not items:
        health.add("statusDetails", True, "none")
        return
    for d in items:
        code = str(d.get("code") or "unknown")
        desc = str(d.get("description") or "")
        health.add(f"statusDetails {code}", False, desc or code, fix_for(code))


def check_password_expiry(
    health: Health,
    token: str,
    expiries: Mapping[str, datetime | None],
    in_use: Iterable[str],
    now: datetime,
    lead: timedelta,
) -> None:
    used = set(in_use)
    if not expiries:
        health.add(f"{token} passwords", False, "none", "run provision-site for this site.")
        return
    for slot, expiry in sorted(expiries.items()):
        tag = " (in use)" if slot in used else ""
        if expiry is None:
            health.add(
                f"{token} {slot}{tag}",
                slot not in used,
                "never expires",
                "run rotate-client-token to replace it with an expiring password.",
            )
            continue
        days = (expiry.astimezone(UTC) - now.astimezone(UTC)).total_seconds() / 86400
        ok = days > 0 and (slot not in used or days > lead.total_seconds() / 86400)
        health.add(
            f"{token} {slot}{tag}",
            ok,
            f"expires in {days:.1f} days",
            "run rotate-client-token now (expired or inside the rotation lead time)."
            if slot in used
            else "expired slot: rotate-client-token revokes it.",
        )
