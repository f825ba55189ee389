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

# The statusDetails codes Azure documents (Azure/acr docs/preview/connected-registry/
# connected-registry-error-codes.md: "critical errors", reported with connectionState Unhealthy),
# with the documented description and the documented corrective action adapted to a K3s site
# (the page speaks of docker; here the runtime is a pod on a PVC). Exactly these three: any other
# code is shown with its own description and a generic fix, never a guessed one.
DOCUMENTED_CODES: dict[str, tuple[str, str]] = {
    "DISK_PERMISSION_DENIED": (
        "The connected registry was unable to write any file to the disk because it did not "
        "have sufficient permissions.",
        "give the connected-registry container's user read, write and execute access to its "
        "host storage path (the PVC's backing directory or the storage class's fsGroup), then "
        "restart the pod (kubectl -n <namespace> rollout restart deploy/<release>).",
    ),
    "DISK_STORAGE_FULL": (
        "The connected registry was unable to write files to the local host because there was "
        "no storage available on disk.",
        "free space on the node: limit the container logs kept on the host (containerd/kubelet "
        "log rotation: containerLogMaxSize, containerLogMaxFiles), lower the runtime's log level "
        "(az acr connected-registry update -r <registry> -n <connected registry> --log-level "
        "Error; applied at the next sync), or grow the PVC (pvc.storageRequest).",
    ),
    "DISK_ERROR": (
        "The connected registry is unable to create, write, or delete a file on the local disk.",
        "check the node's disk and the runtime's PVC (kubectl -n <namespace> describe pvc; "
        "dmesg on the node), free or repair the storage, then restart the pod.",
    ),
}
# Metrics, not errors: the 2026-09-01-preview contract reports disk capacity as a statusDetails
# entry of a healthy registry (type Disk/DiskSpace, code DiskCapacityMetrics, totalGib and
# availableGib), so it is a fact, never a failed check.
INFORMATIONAL_CODES = frozenset({"DISKCAPACITYMETRICS"})
UNDOCUMENTED_FIX = (
    "undocumented status code: read its description and the connected-registry pod logs "
    "(kubectl -n <namespace> logs deploy/<release>)."
)


def _norm(code: str) -> str:
    # The page spells DISK_STORAGE_FULL, the spec's lifecycle note DiskError: one key for both.
    return code.replace("_", "").replace("-", "").upper()


_BY_KEY = {_norm(code): entry for code, entry in DOCUMENTED_CODES.items()}


def documented(code: str) -> tuple[str, str] | None:
    """(documented description, corrective action) of a code, None when undocumented."""
    return _BY_KEY.get(_norm(code))


def fix_for(code: str) -> str:
    """The documented corrective action for a statusDetails code, else the generic one."""
    found = documented(code)
    return found[1] if found else UNDOCUMENTED_FIX


def is_informational(code: str) -> bool:
    return _norm(code) in INFORMATIONAL_CODES


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
    # Facts shown in the table (status "info") that never make the site unhealthy.
    notes: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, ok: bool, value: str, fix: str = "") -> None:
        self.checks.append(Check(name, ok, value, "" if ok else fix))

    def note(self, name: str, value: object) -> None:
        self.notes.append((name, "unknown" if value in (None, "") else str(value)))

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
            # Status and fix first: the UI clips the last columns of a wide table.
            {"status": "ok" if c.ok else "FAIL", "fix": c.fix, "check": c.name, "value": c.value}
            for c in self.checks
        ] + [{"status": "info", "fix": "", "check": n, "value": v} for n, v in self.notes]


# connectionState as the service reports it: Online and Syncing (a sync in progress) are
# healthy; Unhealthy is a critical error while online (statusDetails say which), Offline is
# not connected.
CONNECTION_FIXES: dict[str, str] = {
    "Unhealthy": "the runtime reports a critical error while online: apply the statusDetails "
    "fix below.",
    "Offline": "the runtime is not connected: check the pod (kubectl -n <ns> get pods), the "
    "node's outbound HTTPS to the parent and the sync token; see statusDetails.",
}


def check_connection(health: Health, connection_state: str | None, activation: str | None) -> None:
    state = connection_state or "unknown"
    shown = "Syncing (a sync is in progress)" if state == "Syncing" else state
    health.add(
        "connectionState",
        state in ("Online", "Syncing"),
        shown,
        CONNECTION_FIXES.get(state, CONNECTION_FIXES["Offline"]),
    )
    act = activation or "unknown"
    health.add(
        "activation",
        act == "Active",
        act,
        "the runtime never activated: re-run provision-site (helm install with a fresh "
        "connection string); if it reports 'already activated', deactivate first.",
    )


def sync_reference(
    last_sync: datetime | None, last_successful: datetime | None
) -> tuple[datetime | None, str]:
    """Which time the sync-age rule measures: the service's last successful sync when the
    api-version reports one (a failed sync also moves lastSyncTime), else lastSyncTime."""
    if last_successful is not None:
        return last_successful, "last successful sync"
    return last_sync, "last sync"


def check_sync_result(
    health: Health, sync_state: str | None, last_successful: datetime | None
) -> None:
    """registrySyncResult.syncState: Failed is a problem; Syncing/Succeeded/NotActivated are
    facts (activation and sync age are judged by their own rows)."""
    if sync_state is None:
        return
    when = f"{last_successful:%Y-%m-%d %H:%M:%S}Z" if last_successful else "never"
    health.add(
        "sync result",
        sync_state != "Failed",
        f"{sync_state}; last successful sync {when}",
        "the last sync failed: apply the statusDetails fix; then the next sync (or a "
        "provision-site re-run) clears it.",
    )


def check_status_details(health: Health, details: Iterable[Mapping[str, object]]) -> None:
    """One failed row per error code (documented description when the service sends none);
    metrics entries (DiskCapacityMetrics) are facts, not problems."""
    items = [d for d in details if not is_informational(str(d.get("code") or ""))]
    if not items:
        health.add("statusDetails", True, "none")
        return
    for d in items:
        code = str(d.get("code") or "unknown")
        known = documented(code)
        desc = str(d.get("description") or (known[0] if known else ""))
        health.add(f"statusDetails {code}", False, desc or code, fix_for(code))


def status_codes(details: Iterable[Mapping[str, object]]) -> list[str]:
    """The error codes the service reports (metrics entries left out), for results and events."""
    return [
        str(d.get("code") or "unknown")
        for d in details
        if not is_informational(str(d.get("code") or ""))
    ]


def disk_capacity(details: Iterable[Mapping[str, object]]) -> dict[str, float] | None:
    """totalGib/availableGib of a DiskCapacityMetrics entry (the contract spells it both
    totalGib and totalGiB), None without one."""
    for d in details:
        if not is_informational(str(d.get("code") or "")):
            continue
        lowered = {k.lower(): v for k, v in d.items()}
        total, free = lowered.get("totalgib"), lowered.get("availablegib")
        if isinstance(total, int | float) and isinstance(free, int | float):
            return {"total_gib": float(total), "available_gib": float(free)}
    return None


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
