"""Alerts wired at deploy: `acr-edge deploy --notify BLOCK` keeps one Prefect Automation per
alert, each sending through the notification block the user saved (Slack, Custom Webhook,
e-mail: any block with the `notify` capability).

Automations are ours by name (`acr-edge: <what>`). A deploy reads them (fact), decides per
alert create / update / unchanged (pure, `plan`), and applies exactly that; automations with
other names are never touched, and duplicates of one of our names are removed so that exactly
one remains. The events are emitted elsewhere: `acr-edge.site.unhealthy` and
`acr-edge.credential.expiring` by site-status, `acr-edge.fleet.wave-halted` by the fleet flows,
`prefect.flow-run.Failed` (and Crashed/TimedOut) by Prefect for the rotation flows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from model.errors import InputError

PREFIX = "acr-edge: "
TAGS = ("acr-edge",)
ROTATION_FLOWS = ("rotate-client-token", "rotate-sync-credential")
# A Failed run's event is named for its state: a rotation that timed out or whose process died
# failed as much as one that raised, so all three are alerts.
FAILED_STATE_EVENTS = (
    "prefect.flow-run.Failed",
    "prefect.flow-run.Crashed",
    "prefect.flow-run.TimedOut",
)

_REASONS = (
    "{% if event.payload.reasons is string %}{{ event.payload.reasons }}"
    "{% else %}{{ event.payload.reasons | join('; ') }}{% endif %}"
)


@dataclass(frozen=True)
class AlertDefinition:
    """One alert: which events it matches and what the notification says (Jinja templates
    that Prefect renders with the triggering event, and for flow-run events the run)."""

    what: str
    description: str
    expect: tuple[str, ...]
    subject: str
    body: str
    match: dict[str, str | list[str]] = field(default_factory=dict)
    match_related: dict[str, str | list[str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{PREFIX}{self.what}"


ALERTS: tuple[AlertDefinition, ...] = (
    AlertDefinition(
        what="site unhealthy",
        description="A site-status run found a site unhealthy (it was healthy before).",
        expect=("acr-edge.site.unhealthy",),
        match={"prefect.resource.id": "acr-edge.site.*"},
        subject="acr-edge: site {{ event.payload.site }} is unhealthy",
        body=(
            "Site {{ event.payload.site }} turned unhealthy at {{ event.occurred }}.\n"
            f"Reasons: {_REASONS}\n"
            "Resource: {{ event.resource.id }}"
        ),
    ),
    AlertDefinition(
        what="rotation failed",
        description="A rotate-client-token or rotate-sync-credential run failed.",
        expect=FAILED_STATE_EVENTS,
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related={
            "prefect.resource.role": "flow",
            "prefect.resource.name": list(ROTATION_FLOWS),
        },
        subject="acr-edge: {{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}",
        body=(
            "{{ flow.name }} run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
            "{{ flow_run.state.message }}\n{{ flow_run|ui_url }}"
        ),
    ),
    AlertDefinition(
        what="credential expiring",
        description=(
            "site-status found a client or sync password within its expiry window "
            "(the window is site-status's parameter)."
        ),
        expect=("acr-edge.credential.expiring",),
        subject=(
            "acr-edge: {{ event.payload.kind }} password of {{ event.payload.site }} expires "
            "in {{ event.payload.days_left }} days"
        ),
        body=(
            "The {{ event.payload.kind }} password of site {{ event.payload.site }} expires in "
            "{{ event.payload.days_left }} days. Rotate it (rotate-client-token or "
            "rotate-sync-credential) before it does.\nResource: {{ event.resource.id }}"
        ),
    ),
    AlertDefinition(
        what="fleet wave halted",
        description="A fleet run stopped before its next wave because sites of a wave failed.",
        expect=("acr-edge.fleet.wave-halted",),
        subject="acr-edge: fleet wave halted ({{ event.resource.id }})",
        body="A fleet wave halted at {{ event.occurred }}.\nDetails: {{ event.payload | tojson }}",
    ),
)


def desired_automations(block_document_id: str) -> list[dict[str, Any]]:
    """The Automations (API JSON) deploy keeps, all sending through that block."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    out = []
    for alert in ALERTS:
        core = AutomationCore(
            name=alert.name,
            description=alert.description,
            enabled=True,
            tags=list(TAGS),
            trigger=EventTrigger(
                expect=set(alert.expect),
                match=alert.match,  # type: ignore[arg-type]  # pydantic validates the dict
                match_related=alert.match_related,  # type: ignore[arg-type]
                posture="Reactive",  # type: ignore[arg-type]
                threshold=1,
                within=0,  # type: ignore[arg-type]
            ),
            actions=[
                SendNotification(
                    block_document_id=block_document_id,  # type: ignore[arg-type]
                    subject=alert.subject,
                    body=alert.body,
                )
            ],
            actions_on_trigger=[],
            actions_on_resolve=[],
        )
        out.append(core.model_dump(mode="json"))
    return out


_SET_FIELDS = ("expect", "after", "for_each")


def comparable(automation: dict[str, Any]) -> dict[str, Any]:
    """What decides "changed": every field deploy sets, without server-made ids, and with
    the trigger's sets in a fixed order (sets serialise in hash order)."""
    keep = ("name", "description", "enabled", "tags", "trigger", "actions")
    out: dict[str, Any] = {k: automation.get(k) for k in keep}
    out["actions_on_trigger"] = automation.get("actions_on_trigger") or []
    out["actions_on_resolve"] = automation.get("actions_on_resolve") or []
    trigger = dict(out["trigger"] or {})
    trigger.pop("id", None)
    for key in _SET_FIELDS:
        trigger[key] = sorted(trigger.get(key) or [])
    out["trigger"] = trigger
    return out


@dataclass(frozen=True)
class AutomationChange:
    name: str
    action: Literal["create", "update", "unchanged", "delete-duplicate", "left"]
    automation_id: str | None = None
    reason: str = ""


def plan(
    desired: Sequence[dict[str, Any]], existing: Sequence[dict[str, Any]]
) -> list[AutomationChange]:
    """Pure: per desired automation create / update / unchanged; duplicates of our names go
    (the most recently updated one is kept, `existing` comes newest first); automations named
    with our prefix that deploy no longer defines are left, and said so."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for auto in existing:
        by_name.setdefault(auto["name"], []).append(auto)
    changes: list[AutomationChange] = []
    wanted = {d["name"] for d in desired}
    for want in desired:
        found = by_name.get(want["name"], [])
        if not found:
            changes.append(AutomationChange(want["name"], "create", reason="missing"))
            continue
        keep, extra = found[0], found[1:]
        if comparable(keep) == comparable(want):
            changes.append(AutomationChange(want["name"], "unchanged", str(keep["id"])))
        else:
            differs = [k for k, v in comparable(want).items() if comparable(keep)[k] != v]
            reason = "changed: " + ", ".join(differs)
            if not keep.get("enabled", True):
                reason += " (was paused; enabled again)"
            changes.append(AutomationChange(want["name"], "update", str(keep["id"]), reason))
        changes.extend(
            AutomationChange(want["name"], "delete-duplicate", str(d["id"]), "same name twice")
            for d in extra
        )
    for name in sorted(by_name):
        if name.startswith(PREFIX) and name not in wanted:
            changes.append(
                AutomationChange(name, "left", reason="not an acr-edge alert (any more)")
            )
    return changes


def resolve_notification_block(ref: str) -> tuple[str, str]:
    """`NAME` or `TYPE-SLUG/NAME` of a saved notification block -> (document id, TYPE/NAME).
    Read-only, so deploy can refuse a bad `--notify` before it writes anything."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        BlockDocumentFilter,
        BlockDocumentFilterIsAnonymous,
        BlockDocumentFilterName,
    )
    from prefect.client.schemas.objects import BlockDocument

    slug, _, name = ref.rpartition("/")
    fix = (
        "save a notification block first (UI → Blocks → Add, e.g. Slack Webhook or Custom "
        "Webhook), then pass its name: --notify NAME or --notify TYPE/NAME."
    )
    if not name:
        raise InputError("--notify needs a block name.", resource="--notify", fix=fix)
    flt = BlockDocumentFilter(
        name=BlockDocumentFilterName(any_=[name]),
        is_anonymous=BlockDocumentFilterIsAnonymous(eq_=False),
    )
    with get_client(sync_client=True) as client:
        response = client.request(
            "POST",
            "/block_documents/filter",
            json={"block_documents": flt.model_dump(mode="json"), "include_secrets": False},
        )
    docs = BlockDocument.model_validate_list(response.json())
    if slug:
        docs = [d for d in docs if d.block_type is not None and d.block_type.slug == slug]
    found = [(d, f"{d.block_type.slug if d.block_type else '?'}/{d.name}") for d in docs]
    notify = [(d, label) for d, label in found if _can_notify(d)]
    if not notify:
        what = f"block {ref!r} is not saved"
        if found:
            what = f"block {found[0][1]!r} is not a notification block"
        raise InputError(f"{what}.", resource=f"--notify {ref}", fix=fix)
    if len(notify) > 1:
        labels = ", ".join(label for _, label in notify)
        raise InputError(
            f"several notification blocks are named {name!r}: {labels}.",
            resource=f"--notify {ref}",
            fix="name the block with its type: --notify TYPE/NAME.",
        )
    doc, label = notify[0]
    return str(doc.id), label


def _can_notify(doc: Any) -> bool:
    schema = doc.block_schema
    return schema is not None and "notify" in (schema.capabilities or [])


def read_ours() -> list[dict[str, Any]]:
    """Every automation whose name carries our prefix, newest first (the API's order)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import AutomationSort

    with get_client(sync_client=True) as client:
        autos = client.read_automations(sort=AutomationSort.UPDATED_DESC)
    return [a.model_dump(mode="json") for a in autos if a.name.startswith(PREFIX)]


def apply(changes: Sequence[AutomationChange], desired: Sequence[dict[str, Any]]) -> None:
    """Make exactly the planned changes."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.events.schemas.automations import AutomationCore

    body = {d["name"]: d for d in desired}
    with get_client(sync_client=True) as client:
        for change in changes:
            if change.action == "create":
                client.create_automation(AutomationCore.model_validate(body[change.name]))
            elif change.action == "update":
                assert change.automation_id is not None
                # The whole body, not the client's update_automation: that one drops fields
                # left at their defaults (an action's `type`), and the API's update refuses
                # `owner_resource`.
                update = {k: v for k, v in body[change.name].items() if k != "owner_resource"}
                client.request(
                    "PUT",
                    "/automations/{id}",
                    path_params={"id": change.automation_id},
                    json=update,
                ).raise_for_status()
            elif change.action == "delete-duplicate":
                assert change.automation_id is not None
                client.delete_automation(UUID(change.automation_id))


def converge(block_document_id: str) -> list[AutomationChange]:
    desired = desired_automations(block_document_id)
    changes = plan(desired, read_ours())
    apply(changes, desired)
    return changes


def existing_note() -> list[AutomationChange]:
    """Without --notify deploy writes no automation; it says which of ours it left."""
    return [
        AutomationChange(a["name"], "left", str(a["id"]), "deploy without --notify")
        for a in read_ours()
    ]
