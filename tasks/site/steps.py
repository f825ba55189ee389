"""Prefect task wrappers for the site ops: transient failures retried, nothing cached.

Each takes the flow run's `SiteConnection` (one per site per run, from `open_site`); none
persists its result, and secrets arrive as SecretStr arguments, never as flow parameters.

Example:
    ```python
    with open_site(site) as conn:
        ensure_namespace_task(conn, site.namespace)
        helm_install_task(conn, site, connection_string, sync_ref=ref)
    ```
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from model.result import StepResult
from model.retry import retry_condition
from tasks.site import canary, credentials, facts, ops
from tasks.site.connection import SiteConnection, open_site
from tasks.site.helm_values import SyncCredentialRef
from tasks.site.ops import CanaryResult, PullSecretMeta
from tasks.site.registries_yaml import NodeAuth

if TYPE_CHECKING:
    from blocks.edge_site import EdgeSite

# No tags: Prefect 3 makes a tag-concurrency call per tagged task run even when no limit exists
# (on SQLite often a 503 and a 2 s client retry); the deployments carry the UI tags instead.
_COMMON: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "persist_result": False,
    "retries": 3,
    "retry_delay_seconds": [2, 5, 15],
    "retry_jitter_factor": 0.2,
    "retry_condition_fn": retry_condition,
}


@task(name="ensure-namespace", task_run_name="ensure-namespace-{name}", **_COMMON)
def ensure_namespace_task(conn: SiteConnection, name: str) -> StepResult:
    """Create the namespace unless it exists."""
    return ops.ensure_namespace(conn, name)


@task(name="helm-install", **_COMMON)
def helm_install_task(
    conn: SiteConnection,
    site: EdgeSite,
    connection_string: SecretStr,
    *,
    sync_ref: SyncCredentialRef,
) -> StepResult:
    """`helm upgrade --install` the connected registry unless the recorded digest matches."""
    return ops.helm_install(conn, site, connection_string, sync_ref=sync_ref)


@task(name="helm-upgrade-kept-credential", **_COMMON)
def helm_upgrade_kept_credential_task(
    conn: SiteConnection, site: EdgeSite, sync_ref: SyncCredentialRef
) -> StepResult | None:
    """Upgrade the release to changed chart settings with the connection string it already
    has (read back on the node side, never a parameter or result); None if unreadable."""
    return ops.helm_upgrade_kept_credential(conn, site, sync_ref)


@task(name="wait-deployment-ready", **_COMMON)
def wait_deployment_ready_task(
    conn: SiteConnection, namespace: str, name: str, timeout: float
) -> None:
    ops.wait_deployment_ready(conn, namespace, name, timeout)


@task(name="registry-host", **_COMMON)
def registry_host_task(conn: SiteConnection, site: EdgeSite) -> str:
    """``"<clusterIP>:<port>"`` of the connected registry service."""
    return ops.registry_host(conn, site)


@task(name="service-cluster-ip", **_COMMON)
def service_cluster_ip_task(conn: SiteConnection, namespace: str, name: str) -> str:
    return ops.service_cluster_ip(conn, namespace, name)


@task(name="ensure-registries-yaml", **_COMMON)
def ensure_registries_yaml_task(
    conn: SiteConnection, site: EdgeSite, host: str, auth: NodeAuth | None = None
) -> StepResult:
    """Add the http mirror; ``changed`` means a restart is needed."""
    return ops.ensure_registries_yaml(conn, site, host, auth)


@task(name="restart-distribution", **_COMMON)
def restart_distribution_task(conn: SiteConnection, site: EdgeSite) -> None:
    ops.restart_distribution(conn, site)


@task(name="verify-hosts-toml", **_COMMON)
def verify_hosts_toml_task(conn: SiteConnection, site: EdgeSite, host: str) -> None:
    ops.verify_hosts_toml(conn, site, host)


@task(name="read-pull-secrets", **_COMMON)
def read_pull_secrets_task(
    conn: SiteConnection, namespaces: Sequence[str], secret_name: str
) -> dict[str, PullSecretMeta | None]:
    return ops.read_pull_secrets(conn, namespaces, secret_name)


@task(name="read-node-credential", **_COMMON)
def read_node_credential_task(
    conn: SiteConnection, site: EdgeSite, host: str
) -> PullSecretMeta | None:
    """Which client-token slot the node's registries.yaml credential is (node auth model)."""
    return ops.read_node_credential(conn, site, host)


@task(name="ensure-pull-secrets", **_COMMON)
def ensure_pull_secrets_task(
    conn: SiteConnection,
    namespaces: Sequence[str],
    secret_name: str,
    host: str,
    username: str,
    password: SecretStr,
    meta: PullSecretMeta,
    *,
    patch_default_service_account: bool = False,
) -> StepResult:
    return ops.ensure_pull_secrets(
        conn,
        namespaces,
        secret_name,
        host,
        username,
        password,
        meta,
        patch_default_service_account=patch_default_service_account,
    )


@task(name="run-canary", **_COMMON)
def run_canary_task(
    conn: SiteConnection,
    namespace: str,
    image: str,
    pull_secret: str | None,
    timeout: float = 120.0,
) -> CanaryResult:
    """A short-lived pod that passes when the kubelet pulls ``image``; always deleted."""
    return ops.run_canary(conn, namespace, image, pull_secret, timeout)


@task(name="open-site", **_COMMON)
def open_site_task(stack: ExitStack, site: EdgeSite) -> SiteConnection:
    """Connect (SSH, kubeconfig, tunnel) and leave closing to the flow's exit stack, so the
    connection can be opened while the Azure steps run."""
    return stack.enter_context(open_site(site))


# Its own bounded retry loop is the propagation wait; a Prefect retry would only double it.
@task(name="canary-until-propagated", cache_policy=NO_CACHE, persist_result=False)
def canary_until_ok_task(
    conn: SiteConnection, namespace: str, image: str, pull_secret: str, deadline_seconds: float
) -> CanaryResult:
    return canary.canary_until_ok(
        conn, namespace, image, pull_secret, deadline_seconds=deadline_seconds
    )


# -- where the site records its credentials (keep/resume decisions) ------------------------------


@task(name="read-release-record", **_COMMON)
def read_release_record_task(conn: SiteConnection) -> credentials.ReleaseRecord | None:
    return credentials.read_release_record(conn)


@task(name="read-consumer-password", **_COMMON)
def read_consumer_password_task(
    conn: SiteConnection, consumer: str, host: str, slot: str, rerun: str
) -> tuple[str, SecretStr]:
    """The live value a pull secret or the node holds, to adopt it without regenerating."""
    return credentials.read_consumer_password(conn, consumer, host, slot, rerun=rerun)


@task(name="delete-scratch-secret", **_COMMON)
def delete_secret_task(conn: SiteConnection, namespace: str, name: str) -> bool:
    return credentials.delete_secret(conn, namespace, name)


# -- read-only facts for site-status -------------------------------------------------------------


@task(name="release-status", **_COMMON)
def release_status_task(conn: SiteConnection) -> facts.Fact:
    return facts.release_status(conn)


@task(name="deployment-ready", **_COMMON)
def deployment_ready_task(conn: SiteConnection) -> facts.Fact:
    return facts.deployment_ready(conn)


@task(name="mirror-configured", **_COMMON)
def mirror_configured_task(conn: SiteConnection, host: str) -> facts.Fact:
    return facts.mirror_configured(conn, host)


@task(name="hosts-toml", **_COMMON)
def hosts_toml_task(conn: SiteConnection, host: str) -> facts.Fact:
    return facts.hosts_toml_ok(conn, host)
