"""The desired settings of one connected registry, validated when built (pure).

Flows build it from their parameters; :mod:`tasks.azure.desired` plans against it.

The operator's runtime settings (log level, audit logs, garbage collection, notifications) are
optional: ``None`` means "not stated". A connected registry that is created gets the az CLI's
defaults for a new one (``CREATE_DEFAULTS``); on an existing one only the stated settings are
converged, so a value the operator set by hand (debug logging while troubleshooting) is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from model.errors import InputError
from model.names import name_from_id, validate_cr_name
from tasks.azure import actions as act
from tasks.azure.schedule import (
    CONTINUOUS,
    validate_cron,
    validate_message_ttl,
    validate_sync_window,
)

# ARM LoggingProperties (containerregistry.json 2025-11-01): the LogLevel and AuditLogStatus enums.
LOG_LEVELS = ("Debug", "Information", "Warning", "Error", "None")
AUDIT_LOG_STATUSES = ("Enabled", "Disabled")

# What `az acr connected-registry create` (azure-cli 2.91.0 `_params` / `connected_registry`)
# sends for a new connected registry when the operator states nothing: log level Information,
# audit logs Disabled (the deprecated --audit-logs-enabled flag is off), garbage collection
# enabled ("It is enabled by default"), once a day at midnight, and no notifications.
DEFAULT_LOG_LEVEL = "Information"
DEFAULT_AUDIT_LOG_STATUS = "Disabled"
DEFAULT_GC_ENABLED = True
DEFAULT_GC_SCHEDULE = "0 0 * * *"

# A notificationsList entry, '<repository>:<tag>:<action>' as the ARM examples show it
# ('hello-world:*:*', 'sample/repo/*:1.0:*'): a lowercase repository path and an OCI tag, each
# of which may use '*', and an action word or '*'. The service documents no pattern: this is
# acr-edge's (stricter) rule, so nothing is written that the service might refuse later.
NOTIFICATION = re.compile(
    r"[a-z0-9*](?:[a-z0-9._/*-]{0,254}[a-z0-9*])?"
    r":[A-Za-z0-9_*][A-Za-z0-9_.*-]{0,127}"
    r":(?:\*|[A-Za-z]{1,32})",
    re.ASCII,
)
MAX_NOTIFICATIONS = 100
_NOTIFICATION_FIX = (
    "write each entry as '<repository>:<tag>:<action>', e.g. 'hello-world:*:*' or "
    "'team/app/*:1.0:*' ('*' matches anything)."
)


def validate_log_level(value: str) -> str:
    """The enum value (case-insensitively matched), else InputError naming the choices."""
    for level in LOG_LEVELS:
        if isinstance(value, str) and value.lower() == level.lower():
            return level
    raise InputError(
        f"log level {value!r} is invalid.",
        resource="log_level",
        fix="use one of " + ", ".join(LOG_LEVELS) + ".",
    )


def validate_notifications(values: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The entries, duplicates dropped (order kept); InputError for a malformed entry."""
    out = tuple(dict.fromkeys(values))
    if len(out) > MAX_NOTIFICATIONS:
        raise InputError(
            f"{len(out)} notification patterns given; at most {MAX_NOTIFICATIONS}.",
            resource="notifications",
            fix="merge patterns with '*'.",
        )
    for entry in out:
        if not isinstance(entry, str) or NOTIFICATION.fullmatch(entry) is None:
            raise InputError(
                f"notification pattern {entry!r} is invalid.",
                resource="notifications",
                fix=_NOTIFICATION_FIX,
            )
    return out


@dataclass(frozen=True)
class ConnectedRegistrySpec:
    """Desired settings of one connected registry; validated on construction.

    ``log_level``, ``audit_log_status``, ``gc_enabled``, ``gc_schedule`` and ``notifications``
    are None when not stated: created with the az CLI defaults, left as they are otherwise.
    """

    name: str
    mode: str = "ReadOnly"
    sync_schedule: str = "30 * * * *"
    sync_window: str | None = "PT1H"
    message_ttl: str = "P2D"
    log_level: str | None = None
    audit_log_status: str | None = None
    gc_enabled: bool | None = None
    gc_schedule: str | None = None
    notifications: tuple[str, ...] | None = None
    client_token_ids: tuple[str, ...] = field(default_factory=tuple)
    parent_id: str | None = None

    def __post_init__(self) -> None:
        validate_cr_name(self.name)
        object.__setattr__(self, "mode", act.normalize_mode(self.mode))
        object.__setattr__(self, "sync_schedule", validate_cron(self.sync_schedule))
        if self.gc_schedule is not None:
            object.__setattr__(
                self, "gc_schedule", validate_cron(self.gc_schedule, what="gc_schedule")
            )
        validate_message_ttl(self.message_ttl)
        if self.sync_window is not None:
            validate_sync_window(self.sync_window)
        elif self.sync_schedule != CONTINUOUS:
            raise InputError(
                "a sync window is required when the sync schedule is not continuous "
                f"({self.sync_schedule!r}).",
                resource="sync_window",
            )
        if self.log_level is not None:
            object.__setattr__(self, "log_level", validate_log_level(self.log_level))
        if self.audit_log_status is not None:
            status = next(
                (s for s in AUDIT_LOG_STATUSES if s.lower() == str(self.audit_log_status).lower()),
                None,
            )
            if status is None:
                raise InputError(
                    f"audit log status {self.audit_log_status!r} is invalid.",
                    resource="audit_log",
                    fix="use Enabled or Disabled.",
                )
            object.__setattr__(self, "audit_log_status", status)
        if self.gc_enabled is not None and not isinstance(self.gc_enabled, bool):
            raise InputError(
                f"gc_enabled {self.gc_enabled!r} is not a boolean.", resource="gc_enabled"
            )
        if self.notifications is not None:
            object.__setattr__(self, "notifications", validate_notifications(self.notifications))
        ids = tuple(dict.fromkeys(self.client_token_ids))
        act.check_client_token_limit(len(ids), self.name)
        for tid in ids:
            name_from_id(tid, "tokens")
        object.__setattr__(self, "client_token_ids", ids)


# ---- the runtime settings in ARM's shape (pure) -------------------------------------------

Json = dict[str, Any]


def create_settings(spec: ConnectedRegistrySpec) -> Json:
    """The settings of a connected registry being created: each stated one, else the CLI's."""
    out: Json = {
        "logging": {
            "logLevel": spec.log_level or DEFAULT_LOG_LEVEL,
            "auditLogStatus": spec.audit_log_status or DEFAULT_AUDIT_LOG_STATUS,
        },
        "garbageCollection": {
            "enabled": DEFAULT_GC_ENABLED if spec.gc_enabled is None else spec.gc_enabled,
            "schedule": spec.gc_schedule or DEFAULT_GC_SCHEDULE,
        },
    }
    if spec.notifications:  # the CLI sends no list rather than an empty one
        out["notificationsList"] = list(spec.notifications)
    return out


def _merged(have: Json, keys: tuple[str, ...], changes: Json) -> Json:
    """The whole sub-object to send: what is there for the keys not changed, then the changes
    (sent whole, so the result is the same whether ARM merges or replaces it)."""
    kept = {k: have[k] for k in keys if have.get(k) is not None and k not in changes}
    return {**kept, **changes}


def _cron_text(value: Any) -> str:
    return " ".join(str(value or "").split())


def settings_patch(props: Json, spec: ConnectedRegistrySpec) -> tuple[Json, list[str]]:
    """The PATCH properties for the stated settings that differ from ``props`` (an existing
    connected registry's), and a reason naming each changed setting with its old and new
    value. Settings the spec leaves unset (None) are never part of it."""
    patch: Json = {}
    reasons: list[str] = []
    logging_ = props.get("logging") or {}
    log_changes: Json = {}
    have_level = logging_.get("logLevel")
    if spec.log_level is not None and str(have_level or "").lower() != spec.log_level.lower():
        log_changes["logLevel"] = spec.log_level
        reasons.append(f"log level {have_level or 'unset'} -> {spec.log_level}")
    have_audit = logging_.get("auditLogStatus")
    if (
        spec.audit_log_status is not None
        and str(have_audit or "").lower() != spec.audit_log_status.lower()
    ):
        log_changes["auditLogStatus"] = spec.audit_log_status
        reasons.append(f"audit logs {have_audit or 'unset'} -> {spec.audit_log_status}")
    if log_changes:
        patch["logging"] = _merged(logging_, ("logLevel", "auditLogStatus"), log_changes)
    gc = props.get("garbageCollection") or {}
    gc_changes: Json = {}
    have_enabled = gc.get("enabled")
    if spec.gc_enabled is not None and have_enabled is not spec.gc_enabled:
        gc_changes["enabled"] = spec.gc_enabled
        was = "unset" if have_enabled is None else str(have_enabled).lower()
        reasons.append(
            f"garbage collection {'enabled' if spec.gc_enabled else 'disabled'} (was {was})"
        )
    have_schedule = gc.get("schedule")
    if spec.gc_schedule is not None and _cron_text(have_schedule) != spec.gc_schedule:
        gc_changes["schedule"] = spec.gc_schedule
        reasons.append(
            f"garbage collection schedule {have_schedule or 'unset'!s} -> {spec.gc_schedule}"
        )
    if gc_changes:
        patch["garbageCollection"] = _merged(gc, ("enabled", "schedule"), gc_changes)
    have_notes = [str(n) for n in props.get("notificationsList") or []]
    if spec.notifications is not None and set(have_notes) != set(spec.notifications):
        patch["notificationsList"] = list(spec.notifications)
        reasons.append(
            f"notifications {len(set(have_notes))} -> {len(spec.notifications)} patterns"
        )
    return patch, reasons
