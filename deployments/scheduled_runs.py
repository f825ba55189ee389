"""A redeploy carries its parameters into the runs already scheduled from the old deployment.

Prefect's server deletes a deployment's *future* auto-scheduled runs when the deployment is
applied and its scheduler makes new ones, but a run already due (Late, waiting for a worker)
keeps the parameters it was created with: after `acr-edge deploy --parent-block contoso` a late
`fleet-status` run would still look for the old parent. So after each apply, every scheduled
run the scheduler made for this deployment is brought to what its schedule gives now (the
deployment's parameters overlaid with the schedule's, as the server merges them), matched by
the schedule's slug (the server gives re-applied schedules new ids). A run whose schedule is
gone is deleted: nothing would have started it under the new deployment. A schedule the
definition no longer has is removed first (the server keeps it otherwise). Runs a person
scheduled by hand carry their own parameters and are left alone.
"""

from __future__ import annotations

import contextlib
from typing import Any

# Flow-run pages read at once; a deployment has at most a few hundred scheduled runs.
_PAGE = 200


def schedule_slugs(deployment: Any) -> dict[str, str]:
    """Schedule id -> slug of a deployment as read from the API (before it is re-applied)."""
    return {str(s.id): s.slug for s in deployment.schedules if s.slug}


def wanted_parameters(deployment: Any) -> dict[str, dict[str, Any]]:
    """Slug -> the parameters the server gives a run it schedules from that schedule."""
    base = dict(deployment.parameters or {})
    return {s.slug: {**base, **(s.parameters or {})} for s in deployment.schedules if s.slug}


def schedule_of(run: Any) -> tuple[str | None, str | None]:
    """(schedule id, slug as the server recorded it) a run was made from: its creator, else
    its idempotency key (``scheduled <deployment> <schedule> <date>``)."""
    creator = getattr(run, "created_by", None)
    if creator is not None and str(getattr(creator, "type", "")).upper() == "SCHEDULE":
        return str(creator.id), getattr(creator, "display_value", None)
    key = (run.idempotency_key or "").split(" ")
    return (key[2] if len(key) >= 3 and key[0] == "scheduled" else None), None


def plan(
    runs: list[Any], old_slugs: dict[str, str], now_ids: dict[str, str], wanted: dict[str, Any]
) -> tuple[list[tuple[Any, dict[str, Any]]], list[Any]]:
    """Pure: (runs to update with their parameters, runs to delete). A run follows the slug of
    the schedule it was made from, whether that schedule's id is the current or an old one."""
    update: list[tuple[Any, dict[str, Any]]] = []
    delete: list[Any] = []
    for run in runs:
        if not getattr(run, "auto_scheduled", False):
            continue
        sid, recorded = schedule_of(run)
        slug = now_ids.get(sid or "") or old_slugs.get(sid or "") or recorded
        want = wanted.get(slug or "")
        if want is None:
            delete.append(run)
        elif dict(run.parameters or {}) != want:
            update.append((run, want))
    return update, delete


def _scheduled_runs(client: Any, deployment_id: Any) -> list[Any]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    runs: list[Any] = []
    while True:
        page = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED]))
            ),
            limit=_PAGE,
            offset=len(runs),
        )
        runs.extend(page)
        if len(page) < _PAGE:
            return runs


def refresh(full_name: str, old_slugs: dict[str, str], slugs: set[str]) -> str:
    """Remove the schedules whose slug the definition no longer has (`slugs`), then bring the
    deployment's auto-scheduled runs to its current parameters; says what it did (empty when
    there was nothing to do)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(full_name)
        # The server patches schedules by slug and creates new slugs, but never deletes a slug
        # the request left out: `--status-minutes 30` after 15 would run on both intervals.
        gone = [s for s in deployment.schedules if s.slug not in slugs]
        for schedule in gone:
            with contextlib.suppress(ObjectNotFound):
                client.delete_deployment_schedule(deployment.id, schedule.id)
        if gone:
            deployment = client.read_deployment_by_name(full_name)
        now_ids = schedule_slugs(deployment)
        update, delete = plan(
            _scheduled_runs(client, deployment.id),
            old_slugs,
            now_ids,
            wanted_parameters(deployment),
        )
        for run, parameters in update:
            client.update_flow_run(run.id, parameters=parameters)
        for run in delete:
            # started or removed meanwhile: nothing left to fix
            with contextlib.suppress(ObjectNotFound):
                client.delete_flow_run(run.id)
    parts = []
    if gone:
        parts.append(
            f"{len(gone)} old schedule(s) removed: " + ", ".join(str(s.slug) for s in gone)
        )
    if update:
        parts.append(f"{len(update)} scheduled run(s) given the new parameters")
    if delete:
        parts.append(f"{len(delete)} run(s) of a removed schedule deleted")
    return "; ".join(parts)
