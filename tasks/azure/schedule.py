"""ISO-8601 durations and cron expressions for CR sync settings (pure)."""

from __future__ import annotations

import re
from datetime import timedelta

from model.errors import InputError

_DURATION_RE = re.compile(
    r"^P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
# .NET TimeSpan text ("1.00:00:00", "01:00:00"), which some API versions echo back.
_TIMESPAN_RE = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<h>\d{1,2}):(?P<m>\d{2}):(?P<s>\d{2})$")

CONTINUOUS = "* * * * *"

_CRON_FIELDS = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 6),
)


def parse_duration(value: str) -> timedelta:
    text = str(value).strip()
    match = _DURATION_RE.match(text)
    if match and text not in ("P", "PT") and not text.endswith("T"):
        parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
        return timedelta(
            weeks=parts.get("weeks", 0),
            days=parts.get("days", 0),
            hours=parts.get("hours", 0),
            minutes=parts.get("minutes", 0),
            seconds=parts.get("seconds", 0),
        )
    span = _TIMESPAN_RE.match(text)
    if span:
        return timedelta(
            days=int(span["days"] or 0),
            hours=int(span["h"]),
            minutes=int(span["m"]),
            seconds=int(span["s"]),
        )
    raise InputError(f"{value!r} is not an ISO-8601 duration such as PT1H or P2D.")


def format_duration(value: timedelta) -> str:
    total = int(value.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    return "P" + (f"{days}D" if days else "") + (f"T{time}" if time else ("" if days else "T0S"))


def _check_range(field: str, value: str, lo: timedelta, hi: timedelta, label: str) -> timedelta:
    delta = parse_duration(value)
    if not lo <= delta <= hi:
        raise InputError(f"{field} {value!r} is outside {label}.", resource=field)
    return delta


def validate_sync_window(value: str) -> timedelta:
    return _check_range("syncWindow", value, timedelta(hours=1), timedelta(days=7), "1 hour-7 days")


def validate_message_ttl(value: str) -> timedelta:
    return _check_range("messageTtl", value, timedelta(days=1), timedelta(days=90), "1-90 days")


def _check_cron_value(text: str, name: str, lo: int, hi: int, expr: str) -> None:
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise InputError(f"cron {expr!r}: {name} value {text!r} is not in {lo}-{hi}.")


def validate_cron(expr: str) -> str:
    """Five-field cron (minute hour day-of-month month day-of-week): numbers, *, a-b, /n, lists."""
    fields = str(expr).split()
    if len(fields) != 5:
        raise InputError(f"cron {expr!r} must have 5 fields (minute hour day month weekday).")
    for text, (name, lo, hi) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.split(","):
            base, slash, step = item.partition("/")
            if slash:
                _check_cron_value(step, name + " step", 1, hi - lo + 1, expr)
            if base == "*":
                continue
            start, dash, end = base.partition("-")
            _check_cron_value(start, name, lo, hi, expr)
            if dash:
                _check_cron_value(end, name, lo, hi, expr)
                if int(end) < int(start):
                    raise InputError(f"cron {expr!r}: {name} range {base!r} runs backwards.")
    return " ".join(fields)
