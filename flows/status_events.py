"""site-status's Prefect events: health changes and expiring credentials.

Event names are a contract (the deploy-time Automations match exactly these):
- ``acr-edge.site.unhealthy``: the site turned unhealthy (or is unhealthy on its first check).
- ``acr-edge.site.healthy``: the site recovered (unhealthy before, healthy now).
- ``acr-edge.credential.expiring``: a password a site uses is within ``expiry_warning_days`` of
  its expiry (or past it).

Change detection keeps the previous verdict in one Prefect Variable per site block
(``acr-edge-health-<site block>``): a synchronous read and write, unlike reading back the last
event (events are persisted asynchronously, so a quick second run could miss the first event and
emit it twice, and event retention would forget the state). A site seen for the first time
emits only when it is unhealthy: there is nothing to recover from.

Expiring credentials are emitted on every run while the condition holds, one resource per
credential slot: a missed notification comes back with the next run, and an Automation
de-duplicates per ``prefect.resource.id`` (``for_each``/``within``).

The pure decisions come first (plain values in, plain values out); the I/O is the three
functions at the end. Payloads hold names, codes, reasons and dates, never a secret.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SITE_UNHEALTHY = "acr-edge.site.unhealthy"
SITE_HEALTHY = "acr-edge.site.healthy"
CREDENTIAL_EXPIRING = "acr-edge.credential.expiring"
VARIABLE_PREFIX = "acr-edge-health-"

log = logging.getLogger("acr_edge.status")


@dataclass(frozen=True)
class Emit:
    """One event to emit: name, resource and payload (all plain JSON values)."""

    event: str
    resource: dict[str, str]
    payload: dict[str, Any] = field(default_factory=dict)


def site_resource(site_block: str) -> dict[str, str]:
    return {
        "prefect.resource.id": f"acr-edge.site.{site_block}",
        "prefect.resource.name": site_block,
    }


def health_change(
    previous: bool | None,
    healthy: bool,
    site_block: str,
    *,
    site: str,
    reasons: Iterable[str],
    codes: Iterable[str],
) -> Emit | None:
    """The event for a change of health, None when nothing changed (or a first check is
    healthy)."""
    if healthy and previous is False:
        return Emit(
            SITE_HEALTHY, site_resource(site_block), {"site": site, "site_block": site_block}
        )
    if not healthy and previous is not False:
        return Emit(
            SITE_UNHEALTHY,
            site_resource(site_block),
            {
                "site": site,
                "site_block": site_block,
                "reasons": list(reasons),
                "codes": list(codes),
                "first_check": previous is None,
            },
        )
    return None


@dataclass(frozen=True)
class Credential:
    """One password slot of a credential the site uses: ``kind`` client or sync."""

    kind: str
    token: str
    slot: str
    days_left: float | None
    expires: datetime | None
    in_use: bool


def expiring(
    credentials: Iterable[Credential], site_block: str, site: str, warning_days: int
) -> list[Emit]:
    """One event per in-use slot that expires within ``warning_days`` (or has expired); a
    slot that never expires or is not in use is no warning."""
    out = []
    for c in credentials:
        if not c.in_use or c.days_left is None or c.expires is None:
            continue
        if c.days_left > warning_days:
            continue
        out.append(
            Emit(
                CREDENTIAL_EXPIRING,
                {
                    "prefect.resource.id": f"acr-edge.credential.{site_block}.{c.kind}.{c.slot}",
                    "prefect.resource.name": f"{c.token} {c.slot}",
                    "acr-edge.site": site_block,
                },
                {
                    "site": site,
                    "site_block": site_block,
                    "kind": c.kind,
                    "token": c.token,
                    "slot": c.slot,
                    "days_left": c.days_left,
                    "expires": c.expires.isoformat(),
                    "warning_days": warning_days,
                },
            )
        )
    return out


def variable_name(site_block: str) -> str:
    """Variable names allow lowercase letters, digits, '-' and '_'; block names are already of
    that alphabet, anything else is folded to '-'."""
    return (VARIABLE_PREFIX + re.sub(r"[^a-z0-9_-]", "-", site_block.lower()))[:255]


def previous_health(stored: object) -> bool | None:
    if isinstance(stored, Mapping) and isinstance(stored.get("healthy"), bool):
        return bool(stored["healthy"])
    return None


# ---------------------------------------------------------------------------------------------
# I/O: the Variable and the events API


def read_previous(site_block: str) -> bool | None:
    from prefect.variables import Variable

    return previous_health(Variable.get(variable_name(site_block), default=None))


def store_health(site_block: str, healthy: bool, codes: list[str], at: datetime) -> None:
    from prefect.variables import Variable

    value = {"healthy": healthy, "codes": codes, "checked": at.isoformat()}
    Variable.set(variable_name(site_block), value, overwrite=True)


def emit(events: Iterable[Emit]) -> int:
    """Emit each event; returns how many the client accepted (emit_event returns None when
    events are off, e.g. no API)."""
    from prefect.events import emit_event

    sent = 0
    for e in events:
        if emit_event(event=e.event, resource=e.resource, payload=e.payload) is not None:
            sent += 1
        else:
            log.warning("event %s for %s was not emitted", e.event, e.resource)
    return sent
