"""The shrink gate: a spec that would remove repositories from a site waits for approval.

A ReadOnly connected registry deletes from the site whatever leaves its sync scope map, so a
narrower scope (a namespace dropped from the spec, a repository deleted from the parent) is
never applied silently. The run pauses (Prefect's blocking pause, which also works when the
site's run is a subflow of a fleet shard: only a *rescheduling* pause is refused for
subflows) with a form listing the repositories; the operator approves in the UI (Resume).

* approved: those repositories leave the scope;
* not approved (approve left off): nothing leaves the scope; the run converges everything
  else (new repositories are added) and says what it kept;
* no answer within ``spec.shrink_approval_timeout``: the run fails before its first write
  (Prefect cannot resume a run whose pause timed out), nothing changed.

The pause happens before the site's lock is taken and before any node is contacted, so a
pending approval blocks neither rotations nor status checks of the site. A dry run plans the
removal and says that approval would be needed; it never pauses.
"""

from __future__ import annotations

from prefect.input import RunInput
from pydantic import Field

from flows.report import RunReport
from model import names
from model.azure_context import AzureContext
from model.errors import PermanentError
from model.scope_shrink import removals
from tasks.azure import steps as az

STEP = "scope-shrink"
POLL_SECONDS = 5
_MAX_LISTED = 200  # the form lists them all; the report's row names the first ones


class ShrinkApproval(RunInput):
    """The resume form of a run that would remove repositories from a site."""

    approve: bool = Field(
        default=False,
        title="Approve the removal",
        description="Remove the listed repositories from the site's sync scope (the connected "
        "registry then deletes them from the site). Left off: nothing is removed.",
    )
    remove: list[str] = Field(
        default_factory=list,
        title="Repositories to remove",
        description="The repositories that would leave the site; delete a line to keep it.",
    )


def read_sync_scope(ctx: AzureContext, cr_name: str) -> list[str]:
    """The repositories the site's sync scope map holds now ([] when there is none)."""
    name = names.sync_scope_map_name(cr_name)
    reader = az.client_repositories.with_options(task_run_name=f"read-sync-scope-{name}")
    return list(reader(ctx, name))


def _listing(repos: tuple[str, ...]) -> str:
    shown = ", ".join(repos[:10])
    return shown + (f" and {len(repos) - 10} more" if len(repos) > 10 else "")


def gate(
    ctx: AzureContext,
    cr_name: str,
    site: str,
    desired: list[str],
    *,
    timeout: int,
    dry_run: bool,
    report: RunReport,
) -> tuple[str, ...]:
    """The removals the run may apply: () when none is needed or approved."""
    gone = removals(read_sync_scope(ctx, cr_name), desired)
    resource = f"scopeMaps/{names.sync_scope_map_name(cr_name)}"
    if not gone:
        return ()
    if dry_run:
        report.note(
            STEP,
            resource,
            f"would remove {len(gone)} repositories from site {site}: {_listing(gone)}; the "
            "real run pauses for approval in the Prefect UI first",
            action="approval",
            planned=True,
        )
        return gone
    answer = _ask(site, gone, timeout)
    if answer is None:
        raise PermanentError(
            f"removing {len(gone)} repositories from site {site} ({_listing(gone)}) was not "
            f"approved within {timeout} s; nothing was changed",
            resource=resource,
            fix="re-run provision-site and approve in the Prefect UI (Resume), or add the "
            "namespaces back to the site's spec",
        )
    approved = tuple(r for r in gone if answer.approve and r in set(answer.remove))
    if approved:
        report.note(
            STEP,
            resource,
            f"approved: {len(approved)} leave the scope: {_listing(approved)}",
            action="approved",
        )
    kept = tuple(r for r in gone if r not in approved)
    if kept:
        report.note(
            STEP,
            resource,
            f"removal of {len(kept)} repositories not approved: kept in the site's scope "
            f"({_listing(kept)}); the next run asks again",
            action="skipped",
        )
    return approved


def _ask(site: str, gone: tuple[str, ...], timeout: int) -> ShrinkApproval | None:
    from prefect import get_run_logger
    from prefect.exceptions import FlowPauseTimeout
    from prefect.flow_runs import pause_flow_run

    lines = "\n".join(f"- `{r}`" for r in gone[:_MAX_LISTED])
    more = f"\n- ... and {len(gone) - _MAX_LISTED} more" if len(gone) > _MAX_LISTED else ""
    description = (
        f"## Remove {len(gone)} repositories from site {site}?\n\n"
        "The site's spec no longer covers these repositories. Its connected registry (in "
        "ReadOnly mode) deletes what leaves its sync scope map from the site.\n\n"
        f"{lines}{more}\n\n"
        "Tick **approve** to remove them; leave it off to keep them (everything else still "
        f"converges). Unanswered within {timeout} s the run fails and changes nothing."
    )
    form = ShrinkApproval.with_initial_data(
        description=description, approve=False, remove=list(gone)
    )
    get_run_logger().warning(
        "%s: the spec would remove %d repositories; waiting up to %d s for approval "
        "(Resume in the Prefect UI)",
        site,
        len(gone),
        timeout,
    )
    try:
        answer = pause_flow_run(
            wait_for_input=form, timeout=timeout, poll_interval=min(POLL_SECONDS, timeout)
        )
    except FlowPauseTimeout:
        return None
    return ShrinkApproval(approve=answer.approve, remove=list(answer.remove))
