"""What a flow run did, step by step: the return value and the table artifact (no secrets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.result import StepResult


@dataclass
class RunReport:
    flow: str
    site: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def step(self, step: str, result: StepResult) -> StepResult:
        self.rows.append(
            {
                "step": step,
                "resource": result.resource,
                "changed": result.changed,
                "writes": result.writes,
                "message": result.message,
            }
        )
        return result

    def note(
        self, step: str, resource: str, message: str, *, changed: bool = False, writes: int = 0
    ) -> None:
        self.rows.append(
            {
                "step": step,
                "resource": resource,
                "changed": changed,
                "writes": writes,
                "message": message,
            }
        )

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
        return [
            {
                "step": r["step"],
                "resource": r["resource"],
                "this run": "changed" if r["changed"] else "no change",
                "why": r["message"],
            }
            for r in self.rows
        ]


def artifact_key(prefix: str, site: str) -> str:
    """Artifact keys allow only lowercase letters, digits and dashes."""
    clean = "".join(c if c.isalnum() else "-" for c in site.lower()).strip("-")
    return f"{prefix}-{clean}"
