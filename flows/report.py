"""What a flow run did (or, in a dry run, would do), step by step: the return value and the
table artifact (no secrets). Plan rows and run rows have the same columns: step, resource,
action, why."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from flows import checkpoints
from model.names import short_label
from model.result import StepResult


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The flow run's logger (stored with the run, read in the UI); plain logging outside one."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("acr_edge.flows")


@dataclass
class RunReport:
    flow: str
    site: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    # A dry run's report: every row is planned (rows noted by the flow itself too).
    dry_run: bool = False
    # The non-secret details of each row's StepResult (ids, counts, masked diffs), for the plan.
    details: list[dict[str, Any]] = field(default_factory=list)

    def done(self, result: StepResult) -> StepResult:
        """Record a step's result and mark its boundary (the one seam crash tests use)."""
        self.step(result.step, result)
        checkpoints.reached(self.flow, self.site, result.step)
        return result

    def step(self, step: str, result: StepResult) -> StepResult:
        self.note(
            step,
            result.resource,
            result.message,
            changed=result.changed,
            writes=result.writes,
            action=result.action or None,
            planned=result.planned,
            details=result.details,
        )
        return result

    def note(
        self,
        step: str,
        resource: str,
        message: str,
        *,
        changed: bool = False,
        writes: int = 0,
        action: str | None = None,
        planned: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Record a row of the artifact and log it: every step, no-ops included, says why."""
        self.rows.append(
            {
                "step": step,
                "resource": resource,
                "action": action or ("write" if changed else "none"),
                "changed": changed,
                "writes": writes,
                "planned": planned or self.dry_run,
                "message": message,
            }
        )
        self.details.append(dict(details or {}))
        _run_logger().info("%s: %s%s", step, "(plan) " if planned or self.dry_run else "", message)

    @property
    def writes(self) -> int:
        return sum(int(r["writes"]) for r in self.rows)

    @property
    def changed(self) -> list[str]:
        return [r["step"] for r in self.rows if r["changed"]]

    def summary(self, **extra: Any) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "site": self.site,
            "writes": self.writes,
            "changed": self.changed,
            "steps": [dict(r) for r in self.rows],
            **extra,
        }

    def table(self) -> list[dict[str, Any]]:
        """The artifact's rows; a dry run's blockers (where the real run would stop) first."""
        rows = sorted(self.rows, key=lambda r: r["action"] != "blocked")
        return [
            # The reason first: the UI clips the last columns of a wide table.
            {
                "why": r["message"],
                "step": r["step"],
                "action": r["action"],
                "this run": "planned"
                if r["planned"]
                else ("changed" if r["changed"] else "no change"),
                "resource": short_label(r["resource"]),
            }
            for r in rows
        ]


def artifact_key(prefix: str, site: str) -> str:
    """Artifact keys allow only lowercase letters, digits and dashes."""
    clean = "".join(c if c.isalnum() else "-" for c in site.lower()).strip("-")
    return f"{prefix}-{clean}"
