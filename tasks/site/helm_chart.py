"""Which chart the connected registry's Helm release runs: name, chart version, app version.

Read from ``helm status -o json`` (the release's ``chart.metadata``), the same query
:mod:`tasks.site.helm_release` reads its status from. That JSON also carries the release's
values (the connection string): only the chart metadata is kept, the rest is dropped unlogged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tasks.site.connection import SiteConnection
from tasks.site.helm_release import release_query


@dataclass(frozen=True)
class ChartFact:
    name: str | None
    version: str | None
    app_version: str | None


def chart_of(status_json: str | None) -> ChartFact | None:
    """The chart metadata of a ``helm status -o json`` document; None without a release or
    JSON (a status row reports those)."""
    if status_json is None:
        return None
    try:
        meta = (json.loads(status_json).get("chart") or {}).get("metadata") or {}
    except (ValueError, AttributeError):
        return None

    def text(key: str) -> str | None:
        value = meta.get(key)
        return str(value) if value not in (None, "") else None

    return ChartFact(text("name"), text("version"), text("appVersion"))


def read_release_chart(conn: SiteConnection) -> ChartFact | None:
    return chart_of(release_query(conn, "status"))
