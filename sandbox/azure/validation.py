"""Connected-registry sync and runtime settings as the service documents them.

LEARN (intro-connected-registry, CLI `_params`): the sync schedule is a cron expression
(``* * * * *`` = continuous), the sync window is an ISO-8601 duration from 1 hour to 7 days and
is required when the schedule is not continuous, and the message TTL is 1 to 90 days.
The ARM error code for a violation is not documented (UNCONFIRMED): ``InvalidParameter`` with a
``target``, in ARM's error shape.

Runtime settings (containerregistry.json 2025-11-01): ``logging.logLevel`` is the LogLevel enum,
``logging.auditLogStatus`` the AuditLogStatus enum, ``garbageCollection`` is ``{enabled: bool,
schedule: cron}`` and ``notificationsList`` a list of strings, shown as
``<repository>:<tag>:<action>`` ('hello-world:*:*'). The swagger states no pattern for the
schedule or the notifications, so the sandbox is stricter than what is documented (UNCONFIRMED):
the GC schedule must be a valid cron like the sync schedule, each notification must have the
three colon-separated parts, and a setting of the wrong JSON type is refused.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sandbox.azure.http import ArmError

CONTINUOUS = "* * * * *"
SYNC_WINDOW_RANGE = (timedelta(hours=1), timedelta(days=7))
MESSAGE_TTL_RANGE = (timedelta(days=1), timedelta(days=90))

_DURATION = re.compile(
    r"P(?:([0-9]+)W)?(?:([0-9]+)D)?"
    r"(?:T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+(?:\.[0-9]+)?)S)?)?",
    re.ASCII,
)
# minute, hour, day of month, month, day of week (numbers only: names are UNCONFIRMED)
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_ITEM = re.compile(r"(\*|[0-9]+(?:-[0-9]+)?)(?:/([0-9]+))?", re.ASCII)


def parse_duration(text: str) -> timedelta | None:
    """An ISO-8601 duration without years/months (they have no fixed length), else None."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or text.strip() in ("P", "PT") or text.strip().endswith("T"):
        return None
    weeks, days, hours, minutes, seconds = match.groups()
    return timedelta(
        weeks=int(weeks or 0),
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=float(seconds or 0),
    )


def valid_cron(text: str) -> bool:
    fields = text.split()
    if len(fields) != 5 or text != text.strip() or "\n" in text:
        return False
    for value, (low, high) in zip(fields, _CRON_RANGES, strict=True):
        for item in value.split(","):
            match = _CRON_ITEM.fullmatch(item)
            if match is None:
                return False
            base, step = match.groups()
            if step is not None and int(step) == 0:
                return False
            if base == "*":
                continue
            first, _, last = base.partition("-")
            bounds = [int(first), int(last or first)]
            if any(not low <= b <= high for b in bounds) or bounds[0] > bounds[1]:
                return False
    return True


def _bad(target: str, message: str) -> ArmError:
    return ArmError(400, "InvalidParameter", message, target=f"properties.{target}")


def _duration_in(value: Any, bounds: tuple[timedelta, timedelta], target: str, what: str) -> None:
    parsed = parse_duration(str(value))
    low, high = bounds
    if parsed is None:
        raise _bad(target, f"The {what} '{value}' is not a valid ISO-8601 duration.")
    if not low <= parsed <= high:
        raise _bad(
            target,
            f"The {what} '{value}' is out of range: it must be between {_human(low)} and "
            f"{_human(high)}.",
        )


def _human(delta: timedelta) -> str:
    if delta.days and not delta.seconds:
        return f"{delta.days} day{'s' if delta.days != 1 else ''}"
    hours = delta.seconds // 3600
    return f"{hours} hour{'s' if hours != 1 else ''}"


def check_sync_properties(sync: dict[str, Any], prefix: str) -> None:
    """Refuse a schedule/window/TTL combination the service refuses (the merged result)."""
    schedule = str(sync.get("schedule") or CONTINUOUS)
    if not valid_cron(schedule):
        raise _bad(
            f"{prefix}.schedule",
            f"The sync schedule '{schedule}' is not a valid cron expression (five fields: "
            f"minute hour day-of-month month day-of-week).",
        )
    window = sync.get("syncWindow")
    if window:
        _duration_in(window, SYNC_WINDOW_RANGE, f"{prefix}.syncWindow", "sync window")
    elif schedule.split() != CONTINUOUS.split():
        raise _bad(
            f"{prefix}.syncWindow",
            f"A sync window is required when the sync schedule ('{schedule}') is not "
            f"continuous ('{CONTINUOUS}').",
        )
    ttl = sync.get("messageTtl")
    if ttl:
        _duration_in(ttl, MESSAGE_TTL_RANGE, f"{prefix}.messageTtl", "message TTL")


LOG_LEVELS = ("Debug", "Information", "Warning", "Error", "None")
AUDIT_LOG_STATUSES = ("Enabled", "Disabled")
_NOTIFICATION = re.compile(
    r"[a-z0-9*](?:[a-z0-9._/*-]{0,254}[a-z0-9*])?"
    r":[A-Za-z0-9_*][A-Za-z0-9_.*-]{0,127}"
    r":(?:\*|[A-Za-z]{1,32})",
    re.ASCII,
)


def _invalid_content(target: str, message: str) -> ArmError:
    return ArmError(400, "InvalidRequestContent", message, target=f"properties.{target}")


def enum_value(value: Any, choices: tuple[str, ...], target: str) -> str:
    """The enum member ``value`` names (ARM enums match case-insensitively), else 400."""
    if isinstance(value, str):
        for choice in choices:
            if choice.lower() == value.lower():
                return choice
    raise _invalid_content(
        target, f"'{value}' is not a valid value for '{target}'; use one of {', '.join(choices)}."
    )


def check_object(value: Any, target: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid_content(target, f"'{target}' must be an object.")
    return value


def check_gc_schedule(value: Any, target: str = "garbageCollection.schedule") -> str:
    if not isinstance(value, str) or not valid_cron(value):
        raise _bad(
            target,
            f"The garbage collection schedule '{value}' is not a valid cron expression (five "
            f"fields: minute hour day-of-month month day-of-week).",
        )
    return value


def check_notifications(value: Any, target: str = "notificationsList") -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid_content(target, f"'{target}' must be a list.")
    for item in value:
        if not isinstance(item, str) or _NOTIFICATION.fullmatch(item) is None:
            raise _bad(
                target,
                f"The notification '{item}' is invalid: use '<repository>:<tag>:<action>', "
                f"e.g. 'hello-world:*:*'.",
            )
    return list(value)
