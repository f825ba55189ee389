"""A dry run reads as a plan, in the run list before anyone opens it.

Its flow run is named ``plan-<usual name>`` and tagged ``plan``; its artifact puts the
blockers (where the real run would stop, with the fix) first; and it ends Failed named
``Blocked`` when it found one, Completed named ``Planned`` when it did not. One helper for
every flow with a dry run (provision, teardown, re-home, sync rotation, the fleets).

The name is set twice on purpose: at the start from the parameters (``dry_run``, or
``spec.dry_run`` when the spec is a parameter), so the run list shows it from the first
second; and again by :func:`mark_plan` at run time, because a stored spec's ``dry_run`` is
known only once the flow has loaded it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flows.block_refs import shown_name
from flows.plan import BLOCKED, blockers
from flows.report import RunReport
from model.errors import PermanentError

PREFIX = "plan-"
TAG = "plan"
PLANNED = "Planned"  # a Completed state: a dry run that found nothing stopping the real run
BLOCKED_STATE = "Blocked"  # a Failed state: the real run would stop
PLAN_STATES = frozenset({PLANNED, BLOCKED_STATE})


class PlanBlocked(PermanentError):
    """A dry run found where the real run would stop. Carries the plan summary, so a caller
    that gets the exception (a direct call of the flow) still has the plan."""

    def __init__(self, message: str, *, resource: str = "", summary: Any = None) -> None:
        super().__init__(message, resource=resource)
        self.summary: dict[str, Any] = dict(summary or {})


def is_dry(parameters: Mapping[str, Any]) -> bool:
    """``dry_run``, or ``spec.dry_run`` with the spec a model, a dict (a deployment's or a
    fleet's parameters) or None (the stored spec's: not known yet)."""
    if parameters.get("dry_run"):
        return True
    spec = parameters.get("spec")
    if isinstance(spec, Mapping):
        return bool(spec.get("dry_run"))
    return bool(getattr(spec, "dry_run", False))


def plan_name(name: str, dry: bool) -> str:
    return f"{PREFIX}{name}" if dry and not name.startswith(PREFIX) else name


def run_name(template: str | None = None) -> Callable[[], str]:
    """A ``flow_run_name``: ``template`` filled from the run's parameters (None: the name the
    run already has, e.g. a fleet's generated one), with ``plan-`` first for a dry run."""

    def name() -> str:
        from prefect.runtime import flow_run

        params = dict(flow_run.parameters)
        shown = {k: shown_name(v) for k, v in params.items()}  # a picked block: its name
        usual = template.format(**shown) if template is not None else str(flow_run.name)
        return plan_name(usual, is_dry(params))

    name.__qualname__ = name.__name__ = f"plan_run_name({template or 'current'})"
    return name


def mark_plan() -> None:
    """Tag the current flow run ``plan`` and make sure its name starts with ``plan-``. Outside
    a flow run (``flow.fn``, unit tests) it does nothing."""
    from prefect.context import FlowRunContext

    from flows.locks import run_client

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    run_id = ctx.flow_run.id
    with run_client() as client:
        run = client.read_flow_run(run_id)
        tags = list(run.tags or [])
        name = plan_name(run.name, True)
        if TAG in tags and name == run.name:
            return
        if TAG not in tags:
            tags.append(TAG)
        client.update_flow_run(run_id, name=name, tags=tags)
    ctx.flow_run.name, ctx.flow_run.tags = name, tags


def stop(report: RunReport, exc: PermanentError, *, step: str = "stop") -> PlanBlocked:
    """A dry run met ``exc``, where the real run would stop. The report's blocker row is the
    step's own (e.g. preflight-permissions' ``blocked`` row) or else one made from the error,
    so the plan always names what stopped it."""
    if not blockers(report.rows):
        report.note(step, exc.resource or report.site, str(exc), action=BLOCKED, planned=True)
    first = blockers(report.rows)[0]
    resource, message = str(first["resource"]), str(first["message"])
    message = message.removeprefix(f"{resource}: ")  # PermanentError's text names it already
    line = " ".join(f"{first['step']} {resource}: {message}".split())
    return PlanBlocked(line, resource=resource)


def finish(summary: dict[str, Any], blocked: PlanBlocked | None, outcome: str = "") -> Any:
    """The dry run's final state: Completed ``Planned`` with the summary as its result, or
    Failed ``Blocked`` whose message is the first blocker and its fix. The Blocked state's
    data is the PlanBlocked error carrying the summary: a Failed state whose data is a dict
    makes a direct call of the flow raise TypeError (Prefect 3.9 get_state_exception), an
    exception is raised as itself."""
    from prefect.states import Completed, Failed

    if blocked is None:
        return Completed(name=PLANNED, message=outcome or "planned", data=summary)
    blocked.summary = {**summary, "outcome": "blocked"}
    return Failed(name=BLOCKED_STATE, message=str(blocked), data=blocked)
