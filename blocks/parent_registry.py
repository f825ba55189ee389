"""ParentRegistry block: where the parent ACR lives and how to authenticate to it.

It builds every Azure client acr-edge uses (ARM management, ACR catalog), so the same code talks
to Azure public cloud, a sovereign cloud or the sandbox: only endpoints, CA bundle and
credentials differ.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

from blocks import forms
from blocks.azure_endpoints import (
    ARM_API_VERSION,
    KNOWN_ARM_AUDIENCES,
    KNOWN_AUTHORITIES,
    discover_arm_audience,
    https_url,
)
from model import names, patterns
from model.errors import InputError
from model.retry import RetryPolicy

if TYPE_CHECKING:
    from azure.containerregistry import ContainerRegistryClient
    from azure.core.credentials import TokenCredential
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    from blocks.azure_pipeline import ArmBudget
    from model.azure_context import AzureContext


def _named(field: str, exc: Exception) -> str:
    text = str(exc)
    return text if text.startswith(field) else f"{field}: {text}"


class ParentRegistry(Block):
    """The parent Azure Container Registry (Premium) that connected registries sync from.

    Example:
        Load the saved parent registry and build its Azure clients:
        ```python
        from blocks.parent_registry import ParentRegistry

        parent = ParentRegistry.load("BLOCK_NAME")
        ctx = parent.azure_context()
        ```
    """

    # Validation errors would otherwise echo the raw input, client_secret included.
    model_config = ConfigDict(hide_input_in_errors=True)

    _block_type_name = "Parent Registry"
    _block_type_slug = "parent-registry"
    _description = "Azure Container Registry that acr-edge provisions connected registries from."
    _logo_url = forms.AZURE_LOGO  # type: ignore[assignment]  # Prefect types it HttpUrl
    _documentation_url = forms.CONNECTED_REGISTRY_DOCS  # type: ignore[assignment]

    subscription_id: str = Field(
        title="Azure subscription ID",
        description="GUID of the subscription that holds the registry. Required. Example: "
        "`00000000-0000-0000-0000-000000000000`.",
        json_schema_extra=forms.pattern(forms.GUID),
    )
    resource_group: str = Field(
        title="Resource group",
        description="Resource group of the registry (1-90 letters, digits, `-`, `_`, `.`, "
        "`(`, `)`; not ending in `.`). Required. Example: `rg-containers`.",
        json_schema_extra=forms.pattern(patterns.RESOURCE_GROUP),
    )
    registry_name: str = Field(
        title="Registry name",
        description="Name of the Premium registry, without `.azurecr.io` (5-50 letters and "
        "digits). Required. Example: `contoso`.",
        json_schema_extra=forms.pattern(patterns.REGISTRY_NAME),
    )
    auth: Literal["service-principal", "default"] = Field(
        default="service-principal",
        title="Authentication",
        description="`service-principal`: the tenant ID, client ID and client secret below. "
        "`default`: DefaultAzureCredential (managed identity, workload identity, az login, "
        "environment). Default: `service-principal`. Example: `default` on an Azure VM.",
    )
    tenant_id: str | None = Field(
        default=None,
        title="Entra tenant ID",
        description="Entra ID tenant of the service principal (GUID or domain); needed with "
        "`service-principal`, not allowed with `default`. Default: none. Example: "
        "`contoso.onmicrosoft.com`.",
    )
    client_id: str | None = Field(
        default=None,
        title="Client ID",
        description="Application (client) ID of the service principal; with `default`, a "
        "user-assigned managed identity's client ID. Default: none. Example: "
        "`11111111-2222-3333-4444-555555555555`.",
    )
    client_secret: SecretStr | None = Field(
        default=None,
        title="Client secret",
        description="Secret of the service principal; needed with `service-principal`. Stored "
        "encrypted. Default: none. Example: the value `az ad sp create-for-rbac` prints as "
        "`password`.",
    )
    arm_endpoint: str = Field(
        default="https://management.azure.com",
        title="ARM endpoint",
        description="Azure Resource Manager URL of the cloud (a bare `https://host`). Default: "
        "`https://management.azure.com`. Example: `https://management.chinacloudapi.cn`.",
        json_schema_extra=forms.pattern(forms.HTTPS_BASE_URL),
    )
    authority_host: str = Field(
        default="https://login.microsoftonline.com",
        title="Entra authority",
        description="Entra ID sign-in URL of the cloud (a bare `https://host`). Default: "
        "`https://login.microsoftonline.com`. Example: `https://login.microsoftonline.us`.",
        json_schema_extra=forms.pattern(forms.HTTPS_BASE_URL),
    )
    data_plane_endpoint: str | None = Field(
        default=None,
        title="Registry login server",
        description="Data-plane URL of the registry (a bare `https://host`). Default: none, "
        "meaning `https://{registry_name}.azurecr.io`. Example: "
        "`https://contoso.azurecr.cn`.",
        json_schema_extra=forms.pattern(forms.HTTPS_BASE_URL),
    )
    ca_bundle_path: str | None = Field(
        default=None,
        title="CA bundle path",
        description="PEM file on the worker to verify TLS with. Default: none (the system's "
        "or requests' bundle). Example: `/etc/ssl/certs/corp-proxy.pem`.",
    )
    connected_registry_api_version: str = Field(
        default="2026-01-01-preview",
        title="Connected registry API version",
        description="ARM api-version for the connectedRegistries calls (the live service "
        "lists only preview versions there). Default: `2026-01-01-preview`. Example: "
        "`2026-09-01-preview`.",
        json_schema_extra=forms.pattern(forms.API_VERSION),
    )
    arm_audience: str | None = Field(
        default=None,
        title="ARM token audience",
        description="Audience of ARM tokens. Default: none, meaning derived from the ARM "
        "endpoint for known clouds, else read from its `/metadata/endpoints`. Example: "
        "`https://management.core.windows.net/`.",
    )
    retry_attempts: int = Field(
        default=6,
        ge=1,
        le=50,
        title="Retry attempts",
        description="Attempts per Azure request (first try included, 1-50) on transient "
        "failures (429, 5xx, dropped connections), and per re-read-before-rewrite of a write. "
        "Default: `6`. Example: `10`.",
    )
    retry_base_delay: float = Field(
        default=0.5,
        ge=0,
        le=60,
        title="First retry delay",
        description="Seconds (0-60) the first retry waits; each further one doubles it. "
        "Default: `0.5`. Example: `2`.",
    )
    retry_max_delay: float = Field(
        default=30.0,
        ge=0,
        le=600,
        title="Longest retry delay",
        description="Cap in seconds (0-600) on any one retry's wait, a server's Retry-After "
        "included. Default: `30`. Example: `120`.",
    )

    @field_validator("connected_registry_api_version")
    @classmethod
    def _check_api_version(cls, value: str) -> str:
        if not patterns.matches(forms.API_VERSION, value):
            raise ValueError(
                f"connected_registry_api_version {value!r} is not an ARM api-version "
                "(YYYY-MM-DD or YYYY-MM-DD-preview, e.g. 2026-01-01-preview)"
            )
        return value

    # Not a field (never saved): the flow that loaded the block injects the shared ARM budget.
    _arm_budget: ArmBudget | None = PrivateAttr(default=None)

    def use_arm_budget(self, budget: ArmBudget | None) -> None:
        """Every ARM request of the management clients built from now on draws from
        ``budget`` (flows inject the shared one; ``None``, the default, draws nothing)."""
        self._arm_budget = budget

    @field_validator("subscription_id", "resource_group", "registry_name")
    @classmethod
    def _check_name(cls, value: str, info: Any) -> str:
        check = {
            "subscription_id": names.validate_subscription_id,
            "resource_group": names.validate_resource_group,
            "registry_name": names.validate_registry_name,
        }[info.field_name]
        try:
            return check(value)
        except InputError as exc:
            raise ValueError(_named(info.field_name, exc)) from None

    @field_validator("arm_endpoint", "authority_host")
    @classmethod
    def _check_endpoint(cls, value: str, info: Any) -> str:
        return https_url(value, info.field_name)

    @field_validator("data_plane_endpoint")
    @classmethod
    def _check_data_plane(cls, value: str | None) -> str | None:
        return None if value is None else https_url(value, "data_plane_endpoint")

    @field_validator("ca_bundle_path")
    @classmethod
    def _check_ca(cls, value: str | None) -> str | None:
        if value is not None and not os.path.isfile(value):
            raise ValueError(f"ca_bundle_path {value!r} is not a readable file.")
        return value

    @model_validator(mode="after")
    def _check_auth(self) -> ParentRegistry:
        if self.auth == "service-principal":
            missing = [
                f for f in ("tenant_id", "client_id", "client_secret") if not getattr(self, f)
            ]
            if missing:
                raise ValueError(
                    f"auth=service-principal needs {', '.join(missing)}; set them or use "
                    "auth=default (managed identity, workload identity, az login)."
                )
        else:
            if self.client_secret is not None:
                raise ValueError(
                    "client_secret is set but auth=default ignores it: set "
                    "auth=service-principal, or remove client_secret."
                )
            if self.tenant_id is not None:
                raise ValueError(
                    "tenant_id is set but auth=default takes the tenant from the environment "
                    "(AZURE_TENANT_ID / az login): remove it or use auth=service-principal."
                )
        return self

    # ---- derived settings -----------------------------------------------------------------

    @property
    def arm_scope(self) -> str:
        """OAuth scope for ARM: ``<audience>/.default`` (public cloud: management.azure.com).

        Known clouds map by host; any other ARM endpoint (Azure Stack, the sandbox) publishes
        its audience at ``/metadata/endpoints``, read once unless ``arm_audience`` is set.
        """
        audience = self.arm_audience
        if audience is None:
            host = (urlparse(self.arm_endpoint).hostname or "").lower()
            audience = KNOWN_ARM_AUDIENCES.get(host) or discover_arm_audience(
                self.arm_endpoint, self.ca_bundle_path, self.retry_policy
            )
        return audience.rstrip("/") + "/.default"

    @property
    def catalog_endpoint(self) -> str:
        return self.data_plane_endpoint or f"https://{self.registry_name.lower()}.azurecr.io"

    @property
    def instance_discovery_disabled(self) -> bool:
        """Entra ID instance discovery only knows Microsoft's authorities."""
        host = (urlparse(self.authority_host).hostname or "").lower()
        return host not in KNOWN_AUTHORITIES

    @property
    def retry_policy(self) -> RetryPolicy:
        """The one retry policy every Azure client of this registry is built with."""
        return RetryPolicy(
            attempts=self.retry_attempts,
            base_delay=self.retry_base_delay,
            max_delay=self.retry_max_delay,
        )

    def tls_kwargs(self) -> dict[str, Any]:
        # An explicit path wins over REQUESTS_CA_BUNDLE, which this kind of machine exports.
        return {"connection_verify": self.ca_bundle_path} if self.ca_bundle_path else {}

    # ---- clients (built in blocks.azure_clients) -----------------------------------------

    def credential(self, *, policy: RetryPolicy | None = None) -> TokenCredential:
        """Entra ID credential; see :func:`blocks.azure_clients.credential`."""
        from blocks import azure_clients

        return azure_clients.credential(self, policy or self.retry_policy)

    def management_client(
        self,
        *,
        api_version: str | None = None,
        credential: TokenCredential | None = None,
        polling_interval: float = 1.0,
        transport: Any = None,
        policy: RetryPolicy | None = None,
    ) -> ContainerRegistryManagementClient:
        """``transport`` is for custom HTTP stacks (and tests that record the poller's waits)."""
        from blocks import azure_clients

        return azure_clients.management_client(
            self,
            api_version=api_version or ARM_API_VERSION,
            credential=credential,
            polling_interval=polling_interval,
            transport=transport,
            policy=policy or self.retry_policy,
            arm_budget=self._arm_budget,
        )

    def catalog_client(
        self, *, credential: TokenCredential | None = None, policy: RetryPolicy | None = None
    ) -> ContainerRegistryClient:
        from blocks import azure_clients

        return azure_clients.catalog_client(
            self, credential=credential, policy=policy or self.retry_policy
        )

    def azure_context(
        self,
        *,
        polling_interval: float = 1.0,
        retry_attempts: int | None = None,
        retry_base_delay: float | None = None,
        retry_max_delay: float | None = None,
    ) -> AzureContext:
        """Every client of one run, built with one credential and one retry policy (the
        block's ``retry_*`` fields; the keyword arguments override them for this run)."""
        from model.azure_context import AzureContext

        policy = self.retry_policy.replace(
            attempts=retry_attempts, base_delay=retry_base_delay, max_delay=retry_max_delay
        )
        # One credential: its token cache serves every client.
        credential = self.credential(policy=policy)
        return AzureContext(
            mgmt=self.management_client(
                credential=credential, polling_interval=polling_interval, policy=policy
            ),
            cr_mgmt=self.management_client(
                credential=credential,
                api_version=self.connected_registry_api_version,
                polling_interval=polling_interval,
                policy=policy,
            ),
            catalog=self.catalog_client(credential=credential, policy=policy),
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            registry=self.registry_name,
            cr_api_version=self.connected_registry_api_version,
            policy=policy,
        )
