"""The `EdgeSiteSpec` block: the desired provision spec of some sites, stored in Prefect.

A fleet run then needs no shared spec parameter: each site's run resolves its own spec (a spec
naming the site wins over one matching it by tag; see model/site_spec.py). The fields mirror
the provision-site form's spec (flows/models.py ProvisionSpec) without its run-only dry_run;
a unit test keeps the two in step, and the run validates the stored values again as that form
would, so nothing looser than the form reaches a site.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from prefect.blocks.core import Block
from pydantic import Field, HttpUrl, field_validator, model_validator

from model import cron, durations, limits, names
from model.errors import InputError
from model.site_spec import SPEC_BLOCK_TYPE, StoredSpec

# Block fields that say whom the spec applies to; everything else is the provision spec.
_TARGET_FIELDS = ("sites", "tags")


def _rule(check: Any, *args: Any) -> Any:
    try:
        return check(*args)
    except InputError as exc:
        raise ValueError(str(exc)) from None


class EdgeSiteSpec(Block):
    """What to provision on the sites it names or tags: repository namespaces, sync mode and
    schedule, client token and connected-registry settings.

    provision-site run without a ``spec`` uses the one stored spec that applies to its site,
    and the daily reconcile (provision-fleet on its schedule) brings every site's scope up to
    date with the repositories now under its namespaces. A change that would remove
    repositories from a site waits for approval in the Prefect UI.

    Example:
        ```python
        from blocks.site_spec import EdgeSiteSpec
        spec = EdgeSiteSpec.load("BLOCK_NAME")
        ```
    """

    _block_type_slug: ClassVar[str] = SPEC_BLOCK_TYPE
    _block_type_name: ClassVar[str] = "Edge Site Spec"
    _description: ClassVar[str] = (
        "The desired connected-registry spec (namespaces and settings) of edge sites, by site "
        "name or tag."
    )
    _documentation_url: ClassVar[HttpUrl | None] = HttpUrl(
        "https://learn.microsoft.com/azure/container-registry/intro-connected-registry"
    )

    sites: list[str] = Field(
        default_factory=list,
        title="Sites",
        description="EdgeSite block names this spec applies to; it wins over a spec that "
        "matches the site by tag. Default: none. Example: ['plant01'].",
        examples=[["plant01", "plant02"]],
    )
    tags: list[str] = Field(
        default_factory=list,
        title="Tags",
        description="Applies to every EdgeSite block carrying one of these tags (unless a spec "
        "names the site). Default: none. Example: ['north'].",
        examples=[["north"]],
    )
    namespaces: list[str] = Field(
        min_length=1,
        title="Repository namespaces",
        description="Repository namespaces in the parent registry to sync; each expands to "
        "every repository under it, listed again on every run. Required. Example: "
        "['samples', 'team/app'].",
        examples=[["samples", "team/app"]],
    )
    allow_empty_namespaces: bool = Field(
        default=False,
        title="Allow empty namespaces",
        description="Accept a namespace that matches no repository yet (otherwise refused as "
        "a likely typo). Default: off. Example: true.",
    )
    mode: Literal["ReadOnly", "ReadWrite"] = Field(
        default="ReadOnly",
        title="Mode",
        description="Connected registry mode; fixed at creation. Default: ReadOnly (the "
        "secure choice). Example: ReadWrite.",
    )
    sync_schedule: str = Field(
        default="30 * * * *",
        title="Sync schedule",
        description="Five-field cron for when the connected registry syncs ('* * * * *' = "
        "continuous). Default: '30 * * * *'. Example: '0 */6 * * *'.",
    )
    sync_window: str = Field(
        default="PT1H",
        title="Sync window",
        description="ISO-8601 duration each scheduled sync may run, 1 hour to 7 days. "
        "Default: PT1H. Example: PT3H.",
    )
    message_ttl: str = Field(
        default="P2D",
        title="Message TTL",
        description="ISO-8601 duration sync messages are kept, 1 to 90 days. Default: P2D. "
        "Example: P7D.",
    )
    client_token_name: str | None = Field(
        default=None,
        title="Client token name",
        description="Client token (and scope map) name. Default: `{site}-client`. Example: "
        "'plant01-pull'.",
    )
    app_namespaces: list[str] | None = Field(
        default=None,
        title="App namespaces",
        description="Kubernetes namespaces that get the pull secret. Default: the site "
        "block's. Example: ['apps'].",
    )
    client_password_days: int = Field(
        default=90,
        ge=limits.CLIENT_PASSWORD_DAYS_MIN,
        le=limits.CLIENT_PASSWORD_DAYS_MAX,
        title="Client password days",
        description="Lifetime of a newly generated client password, in days. Default: 90. "
        "Example: 30.",
    )
    enable_data_endpoint: bool = Field(
        default=False,
        title="Enable data endpoint",
        description="Enable the parent registry's dedicated data endpoint if it is off "
        "(otherwise preflight refuses). Default: off. Example: true.",
    )
    nodes: str = Field(
        default="all",
        title="Nodes",
        description="Which nodes get the mirror: 'all' or one label selector 'key=value'. "
        "Default: all. Example: 'node-role.kubernetes.io/control-plane=true'.",
    )
    log_level: Literal["Debug", "Information", "Warning", "Error", "None"] | None = Field(
        default=None,
        title="Log level",
        description="Connected registry log verbosity. Default: unset (a new one gets "
        "Information, an existing one keeps its own). Example: Debug.",
    )
    audit_logs_enabled: bool | None = Field(
        default=None,
        title="Audit logs",
        description="Whether the connected registry keeps audit logs. Default: unset (off "
        "when created, unchanged otherwise). Example: true.",
    )
    gc_enabled: bool | None = Field(
        default=None,
        title="Garbage collection",
        description="Whether unreferenced content is garbage-collected. Default: unset (on "
        "when created, unchanged otherwise). Example: true.",
    )
    gc_schedule: str | None = Field(
        default=None,
        title="Garbage collection schedule",
        description="Five-field cron for garbage collection. Default: unset ('0 0 * * *' "
        "when created, unchanged otherwise). Example: '0 3 * * 0'.",
    )
    notifications: list[str] | None = Field(
        default=None,
        title="Notifications",
        description="Artifact patterns `{repository}:{tag}:{action}` to notify on. Default: "
        "unset (none when created, unchanged otherwise). Example: ['hello-world:*:*'].",
    )
    shrink_approval_timeout: int = Field(
        default=3600,
        ge=1,
        le=7 * 24 * 3600,
        title="Shrink approval timeout (s)",
        description="Seconds a run waits for approval in the Prefect UI when the spec would "
        "remove repositories from the site; unanswered, nothing is removed and the run "
        "fails. Default: 3600. Example: 86400.",
    )

    @field_validator("sites", "tags")
    @classmethod
    def _check_targets(cls, value: list[str], info: Any) -> list[str]:
        for item in value:
            _rule(names.validate_block_name, item, info.field_name)
        return list(dict.fromkeys(value))

    @field_validator("namespaces")
    @classmethod
    def _check_namespaces(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_rule(names.normalize_namespace, n) for n in value))

    @field_validator("sync_schedule", "gc_schedule")
    @classmethod
    def _check_cron(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return None
        try:
            return cron.validate_cron(value, what=info.field_name)
        except InputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("sync_window")
    @classmethod
    def _check_window(cls, value: str) -> str:
        _rule(durations.validate_sync_window, value)
        return value

    @field_validator("message_ttl")
    @classmethod
    def _check_ttl(cls, value: str) -> str:
        _rule(durations.validate_message_ttl, value)
        return value

    @model_validator(mode="after")
    def _check_applies(self) -> EdgeSiteSpec:
        if not self.sites and not self.tags:
            raise ValueError("a site spec applies to no site: give sites, tags or both")
        return self

    def provision_fields(self) -> dict[str, Any]:
        """The provision settings as the run's spec form takes them (JSON values)."""
        data = self.model_dump(mode="json", include=set(type(self).model_fields))
        return {k: v for k, v in data.items() if k not in _TARGET_FIELDS}

    def stored(self, name: str) -> StoredSpec:
        return StoredSpec(name, tuple(self.sites), tuple(self.tags), self.provision_fields())
