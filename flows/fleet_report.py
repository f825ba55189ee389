"""What a fleet run shows while it runs and when it ends, readable at 200+ sites.

A progress artifact moves as shards finish. The summary puts the worst first: counts per
state, then the rows sorted by severity (failed, not started, then the rest), each row's
outcome (the reason, in the site's own words) before its site and a short link to its run, so
the column a person needs is the one the UI does not clip.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.block_refs import shown_name
from model import fleet_picture
from model.errors import PermanentError

HALTED_EVENT = "acr-edge.fleet.wave-halted"
# Lower sorts first. A site run's Prefect state names; NotStarted is the fleet's own.
# Blocked: a dry run found where the real run would stop (flows.plan_runs), after the errors.
_SEVERITY = {
    "Crashed": 0,
    "Failed": 0,
    "TimedOut": 0,
    "Blocked": 1,
    "Cancelled": 1,
    "NotStarted": 2,
}
_OK = 9


def fleet_run_name(kind: str) -> Callable[[], str]:
    """A fleet flow's ``flow_run_name``: what it does and to which sites
    (``fleet-status-all-sites``, ``provision-fleet-tag-north``, ``rotate-fleet-tokens-plant01``,
    ``teardown-fleet-3-sites``), instead of Prefect's random two words."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = dict(flow_run.parameters)
        sites, tag = shown_name(params.get("sites") or []), params.get("tag")
        if tag:
            return f"{kind}-tag-{tag}"
        if len(sites) == 1:
            return f"{kind}-{sites[0]}"
        return f"{kind}-{len(sites)}-sites" if sites else f"{kind}-all-sites"

    name.__qualname__ = name.__name__ = f"fleet_run_name({kind})"
    return name


def severity(row: dict[str, Any]) -> int:
    return _OK if row.get("ok") else _SEVERITY.get(str(row.get("state")), 1)


def ordered(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Worst first, then by site; each row's columns outcome-first (the table shows them in
    this order)."""
    keys = ("outcome", "site", "state", "ok", "run", "url")
    out = []
    for row in sorted(rows, key=lambda r: (severity(r), str(r.get("site")))):
        out.append(
            {k: row.get(k, "") for k in keys} | {k: v for k, v in row.items() if k not in keys}
        )
    return out


def counts(rows: Iterable[dict[str, Any]]) -> list[tuple[str, int]]:
    """(state, sites) worst first; ``ok`` rows count as their state (Completed)."""
    tally = Counter(str(r.get("state") or "Unknown") for r in rows)
    worst = {str(r.get("state")): severity(r) for r in rows}
    return sorted(tally.items(), key=lambda kv: (worst.get(kv[0], _OK), kv[0]))


def headline(kind: str, rows: list[dict[str, Any]]) -> str:
    parts = ", ".join(f"{n} {state}" for state, n in counts(rows))
    return f"{kind}: {len(rows)} site(s): {parts}"


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def figures(rows: Iterable[dict[str, Any]]) -> list[fleet_picture.SiteFigure]:
    """Each row as the picture sees it: ok; unhealthy (the site answered: its run reported
    figures); failed (no figures: unreachable, crashed, not started)."""
    out = []
    for r in rows:
        answered = "expiry_days" in r or "sync_age_s" in r
        state = fleet_picture.OK if r.get("ok") else fleet_picture.FAILED
        if not r.get("ok") and answered:
            state = fleet_picture.UNHEALTHY
        out.append(
            fleet_picture.SiteFigure(
                str(r.get("site")),
                state,
                _number(r.get("sync_age_s")),
                _number(r.get("expiry_days")),
            )
        )
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def picture(kind: str, rows: list[dict[str, Any]]) -> str:
    """The overview's picture as a markdown image: last-sync age against days to the soonest
    expiry, the thresholds site-status judges by (a data URI: the UI renders it, measured)."""
    from flows.health import CONTINUOUS_GRACE
    from flows.site_status import EXPIRY_WARNING_DAYS
    from tasks.sync_rotation import SYNC_LEAD_DAYS

    svg = fleet_picture.fleet_svg(
        figures(rows),
        title=kind,
        sync_grace_seconds=CONTINUOUS_GRACE.total_seconds(),
        expiry_warning_days=EXPIRY_WARNING_DAYS,
        rotation_lead_days=SYNC_LEAD_DAYS,
    )
    return fleet_picture.markdown_image(
        svg, f"{kind}: last sync age against days to the soonest password expiry, per site"
    )


def overview_markdown(
    kind: str, rows: list[dict[str, Any]], halted: str | None, image: str | None = None
) -> str:
    """Counts first (and the picture, if any), then every row worst first, with the run as a
    short link."""
    lines = [f"# {kind}", ""]
    if halted:
        lines += [f"**Halted:** {_cell(halted)}", ""]
    lines += ["| state | sites |", "|---|---|"]
    lines += [f"| {state} | {n} |" for state, n in counts(rows)]
    if image:
        lines += ["", image]
    lines += ["", "| outcome | site | state | run |", "|---|---|---|---|"]
    for r in ordered(rows):
        run = f"[{_cell(r['run'])}]({r['url']})" if r.get("url") else _cell(r.get("run") or "")
        lines.append(f"| {_cell(r['outcome'])} | {_cell(r['site'])} | {r['state']} | {run} |")
    return "\n".join(lines) + "\n"


class Progress:
    """A progress artifact for the fleet run: percent of sites finished, with a one-line
    description (done, failed, of how many). Outside a flow run it does nothing."""

    def __init__(self, kind: str, total: int) -> None:
        from prefect.artifacts import create_progress_artifact
        from prefect.context import FlowRunContext

        self.kind, self.total, self.done, self.failed = kind, max(total, 1), 0, 0
        self.id: UUID | None = None
        if FlowRunContext.get() is not None:
            made = create_progress_artifact(0.0, description=self._text())
            self.id = made if isinstance(made, UUID) else None

    def _text(self) -> str:
        return f"{self.kind}: {self.done}/{self.total} site(s) finished, {self.failed} failed"

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        from prefect.artifacts import update_progress_artifact

        for r in rows:
            self.done += 1
            self.failed += 0 if r.get("ok") else 1
        if self.id is not None:
            update_progress_artifact(
                self.id, 100.0 * min(self.done, self.total) / self.total, self._text()
            )


def emit_halted(fleet: str, failed: list[str], not_started: list[str], reason: str) -> None:
    """The event an Automation can act on (e.g. notify): which sites failed, which wait."""
    from prefect.events import emit_event
    from prefect.runtime import flow_run

    emit_event(
        event=HALTED_EVENT,
        resource={
            "prefect.resource.id": f"acr-edge.fleet.{flow_run.id}",
            "prefect.resource.name": fleet,
        },
        payload={"failed": failed, "not_started": not_started, "reason": reason},
    )


def finish(
    kind: str,
    rows: list[dict[str, Any]],
    not_started: list[str],
    halted: str | None,
    *,
    with_picture: bool = False,
) -> dict[str, Any]:
    skipped = set(not_started)
    failed = [r for r in rows if not r["ok"] and r["site"] not in skipped]
    ran = len(rows) - len(skipped)
    line = f"{kind}: {ran - len(failed)}/{len(rows)} sites ok"
    if failed:
        line += "; failed: " + ", ".join(f"{r['site']} ({r['url']})" for r in failed)
    if not_started:
        line += f"; not started ({halted}): " + ", ".join(not_started)
    # Worst first and the outcome column first: the one a person reads is never clipped.
    # No url column: a table cell is not a link, and the raw URLs pushed the rest off screen
    # (the overview links each run).
    table = [{k: v for k, v in r.items() if k != "url"} for r in ordered(rows)]
    create_table_artifact(key=f"{kind}-summary", table=table, description=line)
    create_markdown_artifact(
        key=f"{kind}-overview",
        markdown=overview_markdown(
            kind, rows, halted, picture(kind, rows) if with_picture else None
        ),
        description=headline(kind, rows),
    )
    summary = {
        "sites": rows,
        "failed": [r["site"] for r in failed],
        "not_started": list(not_started),
        "halted": halted,
    }
    if failed or not_started:
        listing = "; ".join(f"{r['site']}: {r['run']} {r['state']} {r['url']}" for r in failed)
        if not_started:
            listing += f"; not started: {', '.join(not_started)}"
        raise PermanentError(
            f"{kind}: {len(failed)} of {len(rows)} site(s) failed: {listing}",
            resource=kind,
            fix="open each failed site's run for the failing step and its fix; re-running the "
            "fleet retries only what is not converged",
        )
    get_run_logger().info("%s: %d site(s) ok", kind, len(rows))
    return summary
