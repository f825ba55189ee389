"""Flow parameter models: what the Prefect UI form shows for a provisioning run.

Only names and settings live here; secrets never travel as parameters (blocks hold them).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from model.errors import InputError
from tasks.azure import schedule
from tasks.azure.repositories import normalize_namespace

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAMESPACE_PATTERN = rf"^{_COMPONENT}(?:/{_COMPONENT})*$"
_K8S_NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_TOKEN_PATTERN = r"^[a-zA-Z0-9-]{5,50}$"

RepoNamespace = Annotated[str, Field(pattern=_NAMESPACE_PATTERN, max_length=256)]
K8sNamespace = Annotated[str, Field(pattern=_K8S_NAMESPACE_PATTERN, max_length=63)]


class ProvisionSpec(BaseModel):
    """What to sync onto a site and how its clients pull."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespaces: list[RepoNamespace] = Field(
        min_length=1,
        description="Repository namespaces in the parent registry to sync, e.g. 'samples' or "
        "'team/app'. Each expands to every repository under it.",
    )
    allow_empty_namespaces: bool = Field(
        default=False,
        description="Accept a namespace that matches no repository yet (otherwise refused as a "
        "likely typo).",
    )
    mode: Literal["ReadOnly", "ReadWrite"] = Field(
        default="ReadOnly",
        description="Connected registry mode. ReadOnly is the secure default; it cannot be "
        "changed after creation.",
    )
    sync_schedule: str = Field(
        default="30 * * * *",
        description="Five-field cron for when the connected registry syncs ('* * * * *' = "
        "continuous).",
    )
    sync_window: str = Field(
        default="PT1H",
        pattern=r"^P",
        description="ISO-8601 duration each scheduled sync may run, 1 hour to 7 days.",
    )
    message_ttl: str = Field(
        default="P2D",
        pattern=r"^P",
        description="ISO-8601 duration sync messages are kept, 1 to 90 days.",
    )
    client_token_name: Annotated[str, Field(pattern=_TOKEN_PATTERN)] | None = Field(
        default=None,
        description="Client token (and scope map) name; default '<site>-client'.",
    )
    app_namespaces: list[K8sNamespace] | None = Field(
        default=None,
        description="Kubernetes namespaces that get the pull secret; default: the site block's.",
    )
    client_password_days: int = Field(
        default=90,
        ge=1,
        le=3650,
        description="Lifetime of a newly generated client password, in days.",
    )
    enable_data_endpoint: bool = Field(
        default=False,
        description="Enable the parent registry's dedicated data endpoint if it is off "
        "(otherwise preflight refuses).",
    )
    dry_run: bool = Field(
        default=False,
        description="Plan only: report ARM, registries.yaml, Helm and secret changes; write "
        "nothing.",
    )

    @field_validator("namespaces")
    @classmethod
    def _check_namespaces(cls, value: list[str]) -> list[str]:
        try:
            out = list(dict.fromkeys(normalize_namespace(n) for n in value))
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return out

    @field_validator("sync_schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            return schedule.validate_cron(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("sync_window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        try:
            schedule.validate_sync_window(value)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("message_ttl")
    @classmethod
    def _check_ttl(cls, value: str) -> str:
        try:
            schedule.validate_message_ttl(value)
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
        if len(set(value)) != len(value):
            raise ValueError("app_namespaces has duplicates")
        return value
