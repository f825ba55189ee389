"""What the bench reads back from the Prefect API: per-site run durations, start waits and
task time by kind, and the difference of two 503 tallies."""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from typing import Any

# The private server's task-run recorder writes task runs at most a second after their events.
RECORDER_LAG_S = 1.5

_RUN_SUFFIX = re.compile(r"-[0-9a-f]{3}$")


def _task_kind(name: str, cr_name: str) -> str:
    """Task-run name without what differs per site/run (CR name, Prefect's random suffix)."""
    return _RUN_SUFFIX.sub("", name.replace(cr_name, "{site}"))


def _seconds(a: Any, b: Any) -> float | None:
    return (b - a).total_seconds() if a is not None and b is not None else None


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def run_breakdown(exclude: set[Any]) -> dict[str, Any]:
    """Where a pass's time went, read back from the Prefect API: per-site run durations, the
    wait between a run's creation and its start, and total task time by task kind."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = []
        offset = 0
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["provision-site"])),
                limit=200,
                offset=offset,
            )
            runs += page
            offset += len(page)
            if len(page) < 200:
                break
        runs = [r for r in runs if r.id not in exclude]
        ids = {r.id for r in runs}
        site_of = {r.id: str(r.parameters.get("site_block", "")) for r in runs}
        tasks = []
        offset = 0
        while True:
            tpage = client.read_task_runs(limit=200, offset=offset)
            tasks += [t for t in tpage if t.flow_run_id in ids]
            offset += len(tpage)
            if len(tpage) < 200:
                break
    durations = [d for r in runs if (d := _seconds(r.start_time, r.end_time)) is not None]
    waits = [d for r in runs if (d := _seconds(r.created, r.start_time)) is not None]
    by_kind: dict[str, float] = defaultdict(float)
    for t in tasks:
        d = _seconds(t.start_time, t.end_time)
        if d is not None:
            # CR names are the site names ("site7"); block names end in the same index.
            index = site_of.get(t.flow_run_id, "") if t.flow_run_id else ""
            index = index.rsplit("-", 1)[-1]
            by_kind[_task_kind(t.name, f"site{index}")] += d
    n = max(len(runs), 1)
    top = sorted(by_kind.items(), key=lambda kv: -kv[1])[:12]
    return {
        "flow_runs": len(runs),
        "task_runs": len(tasks),
        "site_run_s": _stats(durations),
        "created_to_start_s": _stats(waits),
        "task_s_per_site": {k: round(v / n, 2) for k, v in top},
        "_ids": ids,
    }


def tally_difference(
    total: dict[str, int] | None, first: dict[str, int] | None
) -> dict[str, int] | None:
    if total is None or first is None:
        return None
    return {k: v - first.get(k, 0) for k, v in total.items() if v - first.get(k, 0)}
