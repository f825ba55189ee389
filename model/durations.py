"""ISO-8601 durations as ACR's sync settings use them, and their ranges (pure).

``parse_duration`` also takes the .NET TimeSpan text some API versions echo back
("1.00:00:00"), so a value read from ARM compares equal to the ISO text acr-edge wrote.
"""

from __future__ import annotations

from datetime import timedelta

from model import limits
from model.errors import InputError
from model.patterns import ISO_DURATION, TIMESPAN


def parse_duration(value: str) -> timedelta:
    text = str(value).strip()
    match = ISO_DURATION.fullmatch(text)
    if match and text not in ("P", "PT") and not text.endswith("T"):
        parts = {k: float(v) for k, v in match.groupdict().items() if v is not None}
        return timedelta(
            weeks=parts.get("weeks", 0),
            days=parts.get("days", 0),
            hours=parts.get("hours", 0),
            minutes=parts.get("minutes", 0),
            seconds=parts.get("seconds", 0),
        )
    span = TIMESPAN.fullmatch(text)
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
    """syncWindow: how long each scheduled sync may run (1 hour to 7 days)."""
    return _check_range(
        "syncWindow", value, limits.SYNC_WINDOW_MIN, limits.SYNC_WINDOW_MAX, "1 hour-7 days"
    )


def validate_message_ttl(value: str) -> timedelta:
    """messageTtl: how long sync messages are kept (1 to 90 days)."""
    return _check_range(
        "messageTtl", value, limits.MESSAGE_TTL_MIN, limits.MESSAGE_TTL_MAX, "1-90 days"
    )
