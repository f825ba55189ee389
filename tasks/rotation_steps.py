"""Prefect task wrappers for the credential reads and canaries the flows decide with."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from tasks import canary, site_credentials, site_reads
from tasks.azure.context import AzureContext
from tasks.errors import retry_condition
from tasks.site.connection import SiteConnection, open_site
from tasks.site.helm_values import SyncCredentialRef
from tasks.site.ops import CanaryResult

if TYPE_CHECKING:
    from blocks.edge_site import EdgeSite

_COMMON: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "persist_result": False,
    "retries": 3,
    "retry_delay_seconds": [2, 5, 15],
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_condition,
}


@task(name="read-release-sync-credential", **_COMMON)
def read_release_sync_credential_task(conn: SiteConnection) -> SyncCredentialRef | None:
    return site_credentials.read_release_sync_credential(conn)


@task(name="read-release-record", **_COMMON)
def read_release_record_task(conn: SiteConnection) -> site_credentials.ReleaseRecord | None:
    return site_credentials.read_release_record(conn)


@task(name="read-pull-secret-password", **_COMMON)
def read_pull_secret_password_task(
    conn: SiteConnection, namespace: str, secret_name: str, host: str
) -> tuple[str, SecretStr] | None:
    return site_credentials.read_pull_secret_password(conn, namespace, secret_name, host)


@task(name="read-node-password", **_COMMON)
def read_node_password_task(conn: SiteConnection, host: str) -> tuple[str, SecretStr] | None:
    return site_credentials.read_node_password(conn, host)


@task(name="delete-scratch-secret", **_COMMON)
def delete_secret_task(conn: SiteConnection, namespace: str, name: str) -> bool:
    return site_credentials.delete_secret(conn, namespace, name)


@task(name="client-repositories", **_COMMON)
def client_repositories_task(ctx: AzureContext, scope_map_name: str) -> list[str]:
    return canary.client_repositories(ctx, scope_map_name)


# Its own bounded retry loop is the propagation wait; a Prefect retry would only double it.
@task(name="canary-until-propagated", cache_policy=NO_CACHE, persist_result=False)
def canary_until_ok_task(
    conn: SiteConnection, namespace: str, image: str, pull_secret: str, deadline_seconds: float
) -> CanaryResult:
    return canary.canary_until_ok(
        conn, namespace, image, pull_secret, deadline_seconds=deadline_seconds
    )


@task(name="open-site", **_COMMON)
def open_site_task(stack: ExitStack, site: EdgeSite) -> SiteConnection:
    """Connect (SSH, kubeconfig, tunnel) and leave closing to the flow's exit stack, so the
    connection can be opened while the Azure steps run."""
    return stack.enter_context(open_site(site))


# -- read-only facts for site-status -------------------------------------------------------------


@task(name="release-status", **_COMMON)
def release_status_task(conn: SiteConnection) -> site_reads.Fact:
    return site_reads.release_status(conn)


@task(name="deployment-ready", **_COMMON)
def deployment_ready_task(conn: SiteConnection) -> site_reads.Fact:
    return site_reads.deployment_ready(conn)


@task(name="mirror-configured", **_COMMON)
def mirror_configured_task(conn: SiteConnection, host: str) -> site_reads.Fact:
    return site_reads.mirror_configured(conn, host)


@task(name="hosts-toml", **_COMMON)
def hosts_toml_task(conn: SiteConnection, host: str) -> site_reads.Fact:
    return site_reads.hosts_toml_ok(conn, host)
