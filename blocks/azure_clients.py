"""The Azure clients a ParentRegistry block builds: one credential, one retry policy.

Kept apart from the block's fields and validators so each module stays about one thing; the
block's ``credential``/``management_client``/``catalog_client`` methods call these.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from blocks.azure_endpoints import CATALOG_AUDIENCE
from model.retry import RetryPolicy

if TYPE_CHECKING:
    from azure.containerregistry import ContainerRegistryClient
    from azure.core.credentials import TokenCredential
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    from blocks.azure_pipeline import ArmBudget
    from blocks.parent_registry import ParentRegistry


def credential(block: ParentRegistry, policy: RetryPolicy) -> TokenCredential:
    """Entra ID credential. A service principal's token requests go through
    :class:`WriteSafeRetryPolicy` (a token POST is safe to repeat: azure-identity marks it so
    per call). ``auth=default`` keeps azure-identity's own policies: its managed-identity (IMDS)
    credential brings a retry policy of its own that must not be replaced.
    """
    from azure.identity import ClientSecretCredential, DefaultAzureCredential

    from blocks.azure_pipeline import WriteSafeRetryPolicy

    common: dict[str, Any] = {
        "authority": block.authority_host,
        "disable_instance_discovery": block.instance_discovery_disabled,
        **block.tls_kwargs(),
    }
    if block.auth == "service-principal":
        assert block.tenant_id and block.client_id and block.client_secret  # validated
        return ClientSecretCredential(
            block.tenant_id,
            block.client_id,
            block.client_secret.get_secret_value(),
            retry_policy_class=partial(WriteSafeRetryPolicy, policy),
            **common,
        )
    if block.client_id:
        common["managed_identity_client_id"] = block.client_id
        common["workload_identity_client_id"] = block.client_id
    return DefaultAzureCredential(**common)


def management_client(
    block: ParentRegistry,
    *,
    api_version: str,
    credential: TokenCredential | None,
    polling_interval: float,
    transport: Any,
    policy: RetryPolicy,
    arm_budget: ArmBudget | None,
) -> ContainerRegistryManagementClient:
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    from blocks.azure_pipeline import ArmBudgetPolicy, WriteSafeRetryPolicy, honour_zero_retry_after

    extra: dict[str, Any] = {"transport": transport} if transport is not None else {}
    if arm_budget is not None:
        # After the retry policy: each attempt is a request ARM counts.
        extra["per_retry_policies"] = [ArmBudgetPolicy(arm_budget, block.arm_endpoint)]
    return ContainerRegistryManagementClient(
        credential or _own_credential(block, policy),
        block.subscription_id,
        base_url=block.arm_endpoint,
        credential_scopes=[block.arm_scope],
        api_version=api_version,
        polling_interval=polling_interval,
        # Per request, writes only when the server provably did not act (azure_pipeline).
        retry_policy=WriteSafeRetryPolicy(policy),
        raw_response_hook=honour_zero_retry_after,
        **block.tls_kwargs(),
        **extra,
    )


def catalog_client(
    block: ParentRegistry, *, credential: TokenCredential | None, policy: RetryPolicy
) -> ContainerRegistryClient:
    from azure.containerregistry import ContainerRegistryClient

    from blocks.azure_pipeline import WriteSafeRetryPolicy, token_exchange

    return ContainerRegistryClient(
        block.catalog_endpoint,
        credential or _own_credential(block, policy),
        audience=CATALOG_AUDIENCE,
        # Each catalog page is retried on its own; so are the token exchanges it needs.
        retry_policy=WriteSafeRetryPolicy(policy, replay_safe=token_exchange),
        **block.tls_kwargs(),
    )


def _own_credential(block: ParentRegistry, policy: RetryPolicy) -> TokenCredential:
    return credential(block, policy)
