"""The fleet summary a person reads at 200+ sites: worst first, counts first, outcome first."""

from __future__ import annotations

from flows import fleet_report


def _row(site: str, state: str, ok: bool, url: str = "") -> dict[str, object]:
    return {"site": site, "ok": ok, "state": state, "run": f"provision-{site}", "url": url,
            "outcome": f"{site}: {'converged' if ok else 'canary pull failed'}"}  # fmt: skip


ROWS = [
    _row("plant03", "Completed", True, "http://ui/runs/3"),
    _row("plant01", "NotStarted", False),
    _row("plant02", "Failed", False, "http://ui/runs/2"),
    _row("plant00", "Completed", True, "http://ui/runs/0"),
    _row("plant04", "Crashed", False, "http://ui/runs/4"),
]


def test_rows_are_worst_first_with_the_outcome_column_first() -> None:
    rows = fleet_report.ordered(ROWS)
    assert [r["site"] for r in rows] == ["plant02", "plant04", "plant01", "plant00", "plant03"]
    assert all(next(iter(r)) == "outcome" for r in rows)


def test_counts_come_worst_first() -> None:
    assert fleet_report.counts(ROWS) == [
        ("Crashed", 1),
        ("Failed", 1),
        ("NotStarted", 1),
        ("Completed", 2),
    ]
    assert fleet_report.headline("provision-fleet", ROWS).startswith(
        "provision-fleet: 5 site(s): 1 Crashed, 1 Failed, 1 NotStarted, 2 Completed"
    )


def test_the_overview_puts_counts_before_rows_and_links_runs_short() -> None:
    text = fleet_report.overview_markdown("provision-fleet", ROWS, "wave 1 over budget")
    assert text.index("| state | sites |") < text.index("| outcome | site |")
    assert "**Halted:** wave 1 over budget" in text
    assert "[provision-plant02](http://ui/runs/2)" in text  # a short link, not a raw URL
    assert "| plant01 | NotStarted | provision-plant01 |" in text  # no run yet: no link
    body = text.split("| outcome | site | state | run |", 1)[1]
    assert body.index("plant02") < body.index("plant00")


def test_a_blocked_plan_sorts_after_errors_and_before_the_rest() -> None:
    from flows.fleet_report import severity

    assert severity({"ok": False, "state": "Failed"}) < severity({"ok": False, "state": "Blocked"})
    assert severity({"ok": False, "state": "Blocked"}) < severity({"ok": True, "state": "Planned"})
