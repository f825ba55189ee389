"""AzureContext: the clients and coordinates every Azure step takes as its first argument."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from model import names
from model.arm_facts import ArmFacts
from model.retry import DEFAULT_POLICY, RetryPolicy

if TYPE_CHECKING:
    from azure.containerregistry import ContainerRegistryClient
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient


@dataclass
class AzureContext:
    """Built by ``ParentRegistry.azure_context()`` (or by tests around any clients).

    ``cr_mgmt`` is a second management client pinned to ``cr_api_version``: SDK 15 takes the
    api-version from the client configuration, and the live service lists only preview versions
    for connectedRegistries.
    """

    mgmt: ContainerRegistryManagementClient
    cr_mgmt: ContainerRegistryManagementClient
    catalog: ContainerRegistryClient
    subscription_id: str
    resource_group: str
    registry: str
    cr_api_version: str = "2026-01-01-preview"
    # The retry policy the clients' pipelines were built with (ParentRegistry.retry_policy);
    # write loops (converge, password generation) wait with the same one.
    policy: RetryPolicy = DEFAULT_POLICY
    # A fleet's bulk read of ARM (site-status only): readers answer from it while it is fresh
    # and covers the name; callers about to write read live (``live=True``).
    facts: ArmFacts | None = None

    @property
    def registry_id(self) -> str:
        return names.registry_id(self.subscription_id, self.resource_group, self.registry)

    def scope_map_id(self, name: str) -> str:
        return names.scope_map_id(self.subscription_id, self.resource_group, self.registry, name)

    def token_id(self, name: str) -> str:
        return names.token_id(self.subscription_id, self.resource_group, self.registry, name)

    def connected_registry_id(self, name: str) -> str:
        return names.connected_registry_id(
            self.subscription_id, self.resource_group, self.registry, name
        )

    def close(self) -> None:
        for client in (self.mgmt, self.cr_mgmt, self.catalog):
            client.close()
