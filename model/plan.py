"""Plan and apply from one model: a read (fact), a pure decision (Change), an apply.

pyinfra's facts and operations are the model. Every ensure-step is three functions:

- ``read_<resource>(client, ...) -> Fact``: the actual state; I/O, never a write;
- ``plan_<resource>(fact, desired...) -> Change``: pure; the planned change *and its reason*
  (a no-op says why too: "scope map site01 already has its 10 actions");
- ``apply_<resource>(client, change) -> StepResult``: performs exactly that change, nothing else.

:func:`converge` runs the three. With ``dry_run`` it stops after the plan and returns the
planned change as a result that wrote nothing: the dry run is the same code without the
applies, so a plan cannot drift from what the real run does. After a transient failure of
the apply it reads and plans again before writing again, so a write whose answer was lost is
seen as done instead of repeated (no duplicate PUTs, no wiped token passwords).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from model.errors import TransientError, classify
from model.result import StepResult
from model.retry import DEFAULT_POLICY, RetryPolicy, delay_for

F = TypeVar("F")
log = logging.getLogger("acr_edge.plan")

NONE = "none"


@dataclass(frozen=True)
class Change:
    """What one step will do and why.

    ``action`` is ``"none"`` for a no-op, else a verb the plan artifact shows (``create``,
    ``update``, ``delete``, ``write``, ``install``, ``upgrade``, ``restart``, ``generate``,
    ``revoke``, ...). ``payload`` is what the apply needs (a request body, a SecretStr): never
    rendered, logged or compared. ``shown`` holds non-secret details for the plan artifact
    (masked diffs, counts).
    """

    step: str
    resource: str
    action: str
    reason: str
    payload: Any = field(default=None, repr=False, compare=False)
    shown: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError(f"{self.step}: a planned change needs a reason, a no-op too")

    @property
    def needed(self) -> bool:
        return self.action != NONE

    @classmethod
    def none(cls, step: str, resource: str, reason: str, **shown: Any) -> Change:
        return cls(step, resource, NONE, reason, shown=shown)

    def row(self) -> dict[str, str]:
        """The plan artifact's row; the apply's StepResult renders the same columns."""
        return {
            "step": self.step,
            "resource": self.resource,
            "action": self.action,
            "why": self.reason,
        }


def converge(
    read: Callable[[], F],
    plan: Callable[[F], Change],
    apply: Callable[[Change], StepResult],
    *,
    dry_run: bool = False,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
) -> StepResult:
    """Read, plan, and (unless ``dry_run`` or nothing is needed) apply exactly the plan.

    Transient apply failures are followed by a fresh read and plan (the one re-read-before-
    rewrite loop); permanent ones propagate at once, classified.
    """
    first: Change | None = None
    for attempt in range(policy.attempts):
        change = plan(read())
        first = first or change
        if dry_run:  # decided, not applied: a no-op of a dry run is a planned row too
            return StepResult.of_plan(change)
        if not change.needed:
            if attempt:  # every earlier pass wrote: one of those landed, its answer was lost
                return StepResult.from_change(
                    first, writes=attempt, note="done after a retried write"
                )
            log.info("%s: %s", change.step, change.reason)
            return StepResult.from_change(change, writes=0)
        try:
            return apply(change)
        except Exception as exc:
            err = classify(exc, resource=change.resource)
            if not isinstance(err, TransientError) or attempt == policy.attempts - 1:
                if err is exc:
                    raise
                raise err from exc
            delay = delay_for(err, attempt, policy)
            log.warning(
                "%s: write failed transiently (%s); re-reading in %.2fs",
                change.resource,
                err,
                delay,
            )
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
