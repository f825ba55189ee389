"""What the Azure sandbox starts with (seed) and how it misbehaves (knobs)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

DEFAULT_PROPAGATION_DELAY = 3.0  # start_sandbox / `acr-edge sandbox up` / the demo
NAMESPACES = ("samples", "edge/apps", "edge/infra", "library")


def default_repositories(count: int = 260) -> list[str]:
    """``count`` repository names spread over several namespaces, sorted like ACR's catalog."""
    names: list[str] = []
    for i in range(count):
        namespace = NAMESPACES[i % len(NAMESPACES)]
        names.append(f"{namespace}/app{i // len(NAMESPACES):04d}")
    # a few well-known single-level names too, as real registries have
    names.extend(["hello-world", "nginx", "busybox"])
    return sorted(set(names))


def _secret() -> str:
    return secrets.token_urlsafe(24)


@dataclass
class SeedConfig:
    """Identity, registry and repositories the sandbox is seeded with."""

    tenant_id: str = "72f988bf-0000-4000-8000-00000000a11e"
    subscription_id: str = "5c1b7a3e-0000-4000-8000-0000000000b5"
    subscription_name: str = "acr-edge sandbox"
    client_id: str = "0c4b9f3a-0000-4000-8000-00000000c11e"
    client_secret: str = field(default_factory=_secret)
    resource_group: str = "edge-rg"
    registry: str = "contosoedge"
    location: str = "eastus"
    sku: str = "Premium"
    data_endpoint_enabled: bool = False
    repo_count: int = 260
    repositories: list[str] | None = None
    # the seeded principal's role on the subscription (Contributor: full rights on resources)
    role: str = "Contributor"

    def repository_list(self) -> list[str]:
        if self.repositories is not None:
            return sorted(set(self.repositories))
        return default_repositories(self.repo_count)


@dataclass
class Knobs:
    """Timing and behaviour knobs; all changeable at run time (Python API or /_sandbox)."""

    latency: float = 0.0  # seconds added to every non-internal call
    lro_seconds: float = 0.0  # minimum duration of every LRO
    lro_polls: int = 0  # polls answered InProgress before an LRO reports Succeeded
    # ACR answers some writes synchronously (scope map PUT, connected registry PUT, DELETE:
    # recorded); True makes every write an LRO so tests can watch Creating/Updating/Deleting.
    force_async: bool = False
    # Retry-After (seconds) on LRO answers: the 201/202 and every InProgress poll. 10 as ACR
    # answers (inferred, UNCONFIRMED: azure-cli's recordings strip Retry-After, but CLI 2.84's
    # token LRO polled at once, then 11 s later, where azure-core's default interval is 30 s).
    # azure-core polls once at once, then waits this long between polls, so an LRO of
    # lro_seconds costs ceil(lro_seconds / lro_retry_after) waits. Tests set 1 (sandbox.testing).
    lro_retry_after: int = 10
    # seconds before a new password, or a client token newly attached, works at a connected
    # registry (docs: "allow a few minutes"). 0 here; start_sandbox and `sandbox up` default to
    # DEFAULT_PROPAGATION_DELAY so the normal path waits as it would live.
    propagation_delay: float = 0.0
    arm_page_size: int = 100  # ARM list page size before nextLink
    catalog_page_cap: int = 100  # ACR caps catalog pages at 100
    token_lifetime: int = 3600  # seconds, Entra access tokens and ACR tokens
