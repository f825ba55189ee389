"""What every step returns: what it did (or would do), how many writes, and why (no-ops too)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from model.plan import Change


@dataclass(frozen=True)
class StepResult:
    """Outcome of one ensure-step.

    ``message`` always explains itself, for a no-op too ("scope map site01 already has its 14
    actions"). ``writes`` counts the write calls made, so a converged re-run can prove 0.
    ``action`` is the planned change's verb (``none`` for a no-op); ``planned`` marks a dry
    run's result (the change was decided, not applied). ``details`` carries non-secret facts
    for artifacts (ids, slots, endpoints).
    """

    resource: str
    changed: bool
    message: str
    writes: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    action: str = ""
    step: str = ""
    planned: bool = False

    @classmethod
    def noop(cls, resource: str, message: str, **details: Any) -> StepResult:
        return cls(
            resource=resource,
            changed=False,
            message=message,
            writes=0,
            details=details,
            action="none",
        )

    @classmethod
    def wrote(cls, resource: str, message: str, writes: int = 1, **details: Any) -> StepResult:
        return cls(resource=resource, changed=True, message=message, writes=writes, details=details)

    @classmethod
    def from_change(
        cls, change: Change, *, writes: int, note: str = "", **details: Any
    ) -> StepResult:
        """The apply's result of ``change``: same step, resource, action and reason as the
        plan row, so a dry run and the real run list the same thing."""
        message = f"{change.reason} ({note})" if note else change.reason
        return cls(
            resource=change.resource,
            changed=writes > 0,
            message=message,
            writes=writes,
            details={**dict(change.shown), **details},
            action=change.action,
            step=change.step,
        )

    @classmethod
    def of_plan(cls, change: Change) -> StepResult:
        """A dry run's result: decided, not applied."""
        return cls(
            resource=change.resource,
            changed=False,
            message=change.reason,
            writes=0,
            details=dict(change.shown),
            action=change.action,
            step=change.step,
            planned=True,
        )
