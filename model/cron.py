"""Five-field cron: one validation rule and the "previous fire time" (pure, via cronsim).

The same rule checks a connected registry's sync and garbage-collection schedules, the
rotation deployment's schedule and the schedule site-status judges sync age against, so an
expression accepted anywhere is accepted everywhere. cronsim (a Prefect dependency, so no new
package) parses and evaluates; acr-edge narrows what it takes to the portable subset every
consumer understands: exactly five fields of ASCII digits and ``* / , -`` (no names, ``L``,
``#``, ``?`` or seconds field), day of week 0-6.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

from model.errors import InputError
from model.patterns import CRON_FIELD

# A connected registry with this schedule syncs continuously.
CONTINUOUS = "* * * * *"
# How far back "previous fire time" looks (covers monthly schedules with slack).
LOOKBACK = timedelta(days=62)

_FIELD_NAMES = ("minute", "hour", "day of month", "month", "day of week")
_FIX = "five fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * 1' (Mon 03:00)."
# Only ASCII spaces and tabs separate fields (str.split() would also split on U+3000 etc.).
_SEPARATOR = re.compile(r"[ \t]+", re.ASCII)
_NUMBER = re.compile(r"[0-9]+", re.ASCII)


def _refuse(expr: object, why: str, what: str) -> InputError:
    return InputError(f"{what} {expr!r} is invalid: {why}.", resource=what, fix=_FIX)


def validate_cron(expr: str, *, what: str = "cron") -> str:
    """The expression with single spaces between its fields; InputError naming ``what``."""
    if not isinstance(expr, str):
        raise _refuse(expr, "not a string", what)
    text = expr.strip(" \t")
    fields = _SEPARATOR.split(text) if text else []
    if len(fields) != len(_FIELD_NAMES):
        raise _refuse(expr, f"it has {len(fields)} fields, not 5", what)
    for name, value in zip(_FIELD_NAMES, fields, strict=True):
        if not CRON_FIELD.fullmatch(value):
            raise _refuse(expr, f"{name} {value!r} may hold only digits and * / , -", what)
    # cronsim takes 7 for Sunday; not every cron does, so the rule is 0-6.
    if any(int(n) > 6 for n in _NUMBER.findall(fields[4].split("/")[0])):
        raise _refuse(expr, "day of week must be 0-6 (0 = Sunday)", what)
    normal = " ".join(fields)
    try:
        CronSim(normal, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:  # e.g. "Bad minute": a value out of range or a broken range
        raise _refuse(expr, str(exc).lower(), what) from None
    return normal


@dataclass(frozen=True)
class Cron:
    """A validated expression that answers "when did it last fire?"."""

    expr: str

    @classmethod
    def parse(cls, expr: str) -> Cron:
        return cls(validate_cron(expr))

    @property
    def continuous(self) -> bool:
        return self.expr == CONTINUOUS

    def previous(self, before: datetime) -> datetime | None:
        """The latest fire time at or before ``before`` (minute resolution, UTC), or None when
        there is none within ``LOOKBACK``."""
        t = before.astimezone(UTC).replace(second=0, microsecond=0)
        # cronsim's reverse iteration excludes its start, so start one minute later.
        fire = next(CronSim(self.expr, t + timedelta(minutes=1), reverse=True), None)
        if fire is None or fire < t - LOOKBACK:
            return None
        return fire.astimezone(UTC)

    def matches(self, t: datetime) -> bool:
        """Whether the schedule fires in the minute ``t`` falls in."""
        minute = t.astimezone(UTC).replace(second=0, microsecond=0)
        return self.previous(minute) == minute
