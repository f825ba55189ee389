"""What every ensure-step returns: whether it wrote, how many writes, and why (also for no-ops)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepResult:
    """Outcome of one ensure-step.

    ``message`` always explains itself, for a no-op too ("scope map site01 already has its 14
    actions"). ``writes`` counts the write calls made, so a converged re-run can prove 0.
    ``details`` carries non-secret facts for artifacts (ids, slots, endpoints).
    """

    resource: str
    changed: bool
    message: str
    writes: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def noop(cls, resource: str, message: str, **details: Any) -> StepResult:
        return cls(resource=resource, changed=False, message=message, writes=0, details=details)

    @classmethod
    def wrote(cls, resource: str, message: str, writes: int = 1, **details: Any) -> StepResult:
        return cls(resource=resource, changed=True, message=message, writes=writes, details=details)
