"""Flow parameter models: what the Prefect UI form shows for a provisioning run.

Only names and settings live here; secrets never travel as parameters (blocks hold them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from blocks import forms
from model import cron, durations, limits, names, patterns
from model.errors import InputError
from tasks.azure.spec import MAX_NOTIFICATIONS, NOTIFICATION, validate_notifications


def _rule(check: Callable[[str], Any]) -> AfterValidator:
    """A model rule as a field validator: its InputError message becomes the form's error."""

    def run(value: str) -> str:
        try:
            check(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    return AfterValidator(run)


def _form(pattern: re.Pattern[str]) -> Any:
    return Field(json_schema_extra={"pattern": patterns.form_pattern(pattern)})


RepoNamespace = Annotated[str, _rule(names.normalize_namespace), _form(patterns.OCI_NAMESPACE)]
TokenName = Annotated[str, _rule(names.validate_token_name), _form(patterns.TOKEN_NAME)]
AppNamespace = Annotated[str, _form(patterns.DNS1123_LABEL)]
NotificationPattern = Annotated[str, _form(NOTIFICATION)]


class ProvisionSpec(BaseModel):
    """What to sync onto a site and how its clients pull."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dry_run: bool = Field(
        default=False,
        title="Dry run",
        description="Plan only: list every ARM, registries.yaml, Helm and secret change with "
        "its reason, and write nothing. Default: off. Example: on for a first look at a site.",
    )
    namespaces: list[RepoNamespace] = Field(
        min_length=1,
        title="Repository namespaces",
        description="Repository namespaces in the parent registry to sync; each expands to "
        "every repository under it (lowercase OCI path components joined by `/`). Required, at "
        "least one. Example: `samples`, `team/app`.",
    )
    allow_empty_namespaces: bool = Field(
        default=False,
        title="Allow empty namespaces",
        description="Accept a namespace that matches no repository yet. Default: off (such a "
        "namespace is refused as a likely typo). Example: on before the first push.",
    )
    mode: Literal["ReadOnly", "ReadWrite"] = Field(
        default="ReadOnly",
        title="Mode",
        description="Connected registry mode; it cannot be changed after creation. Default: "
        "`ReadOnly` (the secure choice: clients pull only). Example: `ReadWrite` to push at "
        "the edge.",
    )
    sync_schedule: str = Field(
        default="30 * * * *",
        title="Sync schedule",
        description="Five-field cron (minute hour day month weekday; digits and `* / , -`, "
        "weekday 0-6) for when the connected registry syncs; `* * * * *` syncs continuously. "
        "Default: `30 * * * *` (hourly at :30). Example: `0 2 * * *`.",
        json_schema_extra=forms.CRON_FORM,
    )
    sync_window: str = Field(
        default="PT1H",
        title="Sync window",
        description="ISO-8601 duration each scheduled sync may run, 1 hour to 7 days. "
        "Default: `PT1H`. Example: `PT4H` or `P1D`.",
        json_schema_extra=forms.DURATION_FORM,
    )
    message_ttl: str = Field(
        default="P2D",
        title="Message TTL",
        description="ISO-8601 duration sync messages are kept, 1 to 90 days. Default: `P2D`. "
        "Example: `P7D`.",
        json_schema_extra=forms.DURATION_FORM,
    )
    client_token_name: TokenName | None = Field(
        default=None,
        title="Client token name",
        description="Name of the client token and its scope map (5-50 letters, digits and "
        "`-`). Default: `{site}-client`, the connected registry name plus `-client`. Example: "
        "`plant01-pull`.",
    )
    app_namespaces: list[AppNamespace] | None = Field(
        default=None,
        title="App namespaces",
        description="Kubernetes namespaces that get the pull secret (DNS-1123 labels). "
        "Default: the site block's app namespaces. Example: `apps`, `monitoring`.",
    )
    client_password_days: int = Field(
        default=90,
        ge=limits.CLIENT_PASSWORD_DAYS_MIN,
        le=limits.CLIENT_PASSWORD_DAYS_MAX,
        title="Client password lifetime (days)",
        description=f"Days a newly generated client password stays valid "
        f"({limits.CLIENT_PASSWORD_DAYS_MIN}-{limits.CLIENT_PASSWORD_DAYS_MAX}). Default: "
        "`90`. Example: `30`.",
    )
    enable_data_endpoint: bool = Field(
        default=False,
        title="Enable data endpoint",
        description="Turn on the parent registry's dedicated data endpoint if it is off (a "
        "connected registry needs it). Default: off (preflight refuses while it is off). "
        "Example: on for a new registry.",
    )
    nodes: str = Field(
        default="all",
        title="Nodes",
        json_schema_extra={"pattern": patterns.form_pattern(patterns.NODE_SELECTION)},
        description="Which nodes of the site get the mirror: `all` or one label selector "
        "`key=value`. Default: `all`. Example: `node-role.kubernetes.io/control-plane=true`.",
    )
    log_level: Literal["Debug", "Information", "Warning", "Error", "None"] | None = Field(
        default=None,
        title="Log level",
        description="Verbosity of the connected registry's logs. Default (unset): a new "
        "connected registry gets `Information` (the az CLI's default) and an existing one "
        "keeps its own. Example: `Debug` for troubleshooting.",
        examples=["Debug"],
    )
    audit_logs_enabled: bool | None = Field(
        default=None,
        title="Audit logs",
        description="Whether the connected registry keeps audit logs. Default (unset): off "
        "for a new connected registry (the az CLI's default), unchanged on an existing one. "
        "Example: on.",
        examples=[True],
    )
    gc_enabled: bool | None = Field(
        default=None,
        title="Garbage collection",
        description="Whether the connected registry garbage-collects unreferenced content. "
        "Default (unset): on for a new connected registry (the az CLI's default), unchanged on "
        "an existing one. Example: on.",
        examples=[True],
    )
    gc_schedule: str | None = Field(
        default=None,
        title="Garbage collection schedule",
        description="Five-field cron for when garbage collection runs. Default (unset): "
        "`0 0 * * *` (daily at midnight, the az CLI's default) for a new connected registry, "
        "unchanged on an existing one. Example: `0 3 * * 0`.",
        json_schema_extra=forms.CRON_FORM,
        examples=["0 3 * * 0"],
    )
    notifications: list[NotificationPattern] | None = Field(
        default=None,
        max_length=MAX_NOTIFICATIONS,
        title="Notifications",
        description="Artifact patterns `{repository}:{tag}:{action}` the connected registry "
        "generates notifications for (`*` matches anything). Default (unset): none for a new "
        "connected registry, unchanged on an existing one; an empty list removes them all. "
        "Example: `hello-world:*:*`.",
        examples=[["hello-world:*:*", "team/app/*:1.0:*"]],
    )
    shrink_approval_timeout: int = Field(
        default=3600,
        ge=1,
        le=7 * 24 * 3600,
        title="Shrink approval timeout",
        description="Seconds the run waits for approval in the Prefect UI when the spec would "
        "remove repositories from the site's sync scope (a ReadOnly connected registry then "
        "deletes them from the site). Unanswered: nothing is removed and the run fails. "
        "Default: 3600. Example: 86400.",
        examples=[86400],
    )

    @field_validator("namespaces")
    @classmethod
    def _check_namespaces(cls, value: list[str]) -> list[str]:
        try:
            out = list(dict.fromkeys(names.normalize_namespace(n) for n in value))
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return out

    @field_validator("nodes")
    @classmethod
    def _check_nodes(cls, value: str) -> str:
        if not patterns.matches(patterns.NODE_SELECTION, value):
            raise ValueError(
                f"nodes {value!r} is neither 'all' nor one label selector key=value (e.g. "
                "node-role.kubernetes.io/control-plane=true)"
            )
        return value

    @field_validator("sync_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            return cron.validate_cron(value, what="sync_schedule")
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("gc_schedule")
    @classmethod
    def _check_gc_schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return cron.validate_cron(value, what="gc_schedule")
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("notifications")
    @classmethod
    def _check_notifications(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        try:
            return list(validate_notifications(value))
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("sync_window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        try:
            durations.validate_sync_window(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("message_ttl")
    @classmethod
    def _check_ttl(cls, value: str) -> str:
        try:
            durations.validate_message_ttl(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("app_namespaces")
    @classmethod
    def _check_app_namespaces(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("app_namespaces, when given, needs at least one namespace")
        try:
            return names.validate_dns_labels(value, "app_namespaces")
        except InputError as exc:
            raise ValueError(str(exc)) from None
