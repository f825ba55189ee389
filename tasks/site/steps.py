"""Prefect tasks over the site resource modules: thin, nothing cached, no Prefect retries.

Transient failures are retried in one place, in-process (``model.retry`` for reads,
``model.plan.converge`` for writes); a Prefect retry on top would stack (brief, issue 7 item
2). The waits (deployment ready, restart, canary propagation) run to their own deadline and
are never retried at all. Each task takes the flow run's `SiteConnection` (one per site per
run, from `open_site`; ``conn.site`` holds the settings); secrets arrive as SecretStr
arguments, never as flow parameters, and no result is persisted.

Example:
    ```python
    with open_site(site) as conn:
        ensure_namespace_task(conn, site.namespace)
        ensure_helm_release_task(conn, sync_ref, connection_string)
    ```
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import SecretStr

from model.result import StepResult
from model.site import (
    CanaryResult,
    NodeAuth,
    PullSecretMeta,
    ReleaseFact,
    SiteCheck,
    SiteSettings,
    SyncCredentialRef,
)
from tasks.site import canary, helm_release, mirror, namespace, pull_secrets
from tasks.site.connection import SiteConnection, open_site

# No tags: Prefect 3 makes a tag-concurrency call per tagged task run even when no limit exists
# (on SQLite often a 503 and a 2 s client retry); the deployments carry the UI tags instead.
_COMMON: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="open-site", **_COMMON)
def open_site_task(stack: ExitStack, site: SiteSettings) -> SiteConnection:
    """Connect (SSH, kubeconfig, tunnel) and leave closing to the flow's exit stack, so the
    connection can be opened while the Azure steps run."""
    return stack.enter_context(open_site(site))


@task(name="ensure-namespace", task_run_name="ensure-namespace-{name}", **_COMMON)
def ensure_namespace_task(conn: SiteConnection, name: str, dry_run: bool = False) -> StepResult:
    return namespace.ensure_namespace(conn, name, dry_run=dry_run)


# -- helm release --------------------------------------------------------------------------------


@task(name="read-helm-release", **_COMMON)
def read_helm_release_task(conn: SiteConnection) -> ReleaseFact:
    return helm_release.read_helm_release(conn)


@task(name="ensure-helm-release", **_COMMON)
def ensure_helm_release_task(
    conn: SiteConnection,
    sync_ref: SyncCredentialRef,
    connection_string: SecretStr | None,
    dry_run: bool = False,
) -> StepResult:
    """Install/upgrade unless the recorded digest matches; ``connection_string`` None keeps
    the release's own (read back on the node side, never a parameter or result)."""
    return helm_release.ensure_helm_release(conn, sync_ref, connection_string, dry_run=dry_run)


@task(name="wait-deployment-ready", **_COMMON)
def wait_deployment_ready_task(conn: SiteConnection) -> None:
    helm_release.wait_deployment_ready(conn)


@task(name="registry-host", **_COMMON)
def registry_host_task(conn: SiteConnection) -> str:
    """``"<clusterIP>:<port>"`` of the connected registry service."""
    return helm_release.registry_host(conn)


# -- mirror --------------------------------------------------------------------------------------


@task(name="ensure-registries-yaml", **_COMMON)
def ensure_registries_yaml_task(
    conn: SiteConnection,
    host: str,
    auth: NodeAuth | None = None,
    node_ref: PullSecretMeta | None = None,
    dry_run: bool = False,
) -> StepResult:
    return mirror.ensure_registries_yaml(conn, host, auth, node_ref=node_ref, dry_run=dry_run)


@task(name="ensure-restart", **_COMMON)
def ensure_restart_task(
    conn: SiteConnection, host: str, file_changed: bool, dry_run: bool = False
) -> StepResult:
    """Restart once if registries.yaml changed or was never loaded; verify hosts.toml."""
    return mirror.ensure_restart(conn, host, file_changed=file_changed, dry_run=dry_run)


@task(name="read-node-credential", **_COMMON)
def read_node_credential_task(conn: SiteConnection, host: str) -> PullSecretMeta | None:
    """Which client-token slot the node's registries.yaml credential is (node auth model)."""
    return mirror.read_node_credential(conn, host)


# -- pull secrets --------------------------------------------------------------------------------


@task(name="read-pull-secrets", **_COMMON)
def read_pull_secrets_task(
    conn: SiteConnection, namespaces: Sequence[str], secret_name: str
) -> dict[str, PullSecretMeta | None]:
    return pull_secrets.read_pull_secrets(conn, namespaces, secret_name)


@task(name="ensure-pull-secrets", **_COMMON)
def ensure_pull_secrets_task(
    conn: SiteConnection,
    namespaces: Sequence[str],
    secret_name: str,
    host: str,
    username: str,
    password: SecretStr | None,
    meta: PullSecretMeta,
    *,
    patch_default_service_account: bool = False,
    dry_run: bool = False,
) -> StepResult:
    return pull_secrets.ensure_pull_secrets(
        conn,
        namespaces,
        secret_name,
        host,
        username,
        password,
        meta,
        patch_default_service_account=patch_default_service_account,
        dry_run=dry_run,
    )


@task(name="read-consumer-password", **_COMMON)
def read_consumer_password_task(
    conn: SiteConnection, consumer: str, host: str, slot: str, rerun: str
) -> tuple[str, SecretStr]:
    """The live value a pull secret or the node holds, to adopt it without regenerating."""
    return pull_secrets.read_consumer_password(conn, consumer, host, slot, rerun=rerun)


@task(name="delete-scratch-secret", **_COMMON)
def delete_secret_task(conn: SiteConnection, namespace: str, name: str) -> bool:
    return pull_secrets.delete_secret(conn, namespace, name)


# -- canary --------------------------------------------------------------------------------------


@task(name="run-canary", **_COMMON)
def run_canary_task(
    conn: SiteConnection,
    namespace: str,
    image: str,
    pull_secret: str | None,
    timeout: float = 120.0,
) -> CanaryResult:
    """A short-lived pod that passes when the kubelet pulls ``image``; always deleted."""
    return canary.run_canary(conn, namespace, image, pull_secret, timeout)


@task(name="canary-until-propagated", **_COMMON)
def canary_until_propagated_task(
    conn: SiteConnection,
    namespace: str,
    image: str,
    pull_secret: str | None,
    deadline_seconds: float,
) -> CanaryResult:
    return canary.canary_until_propagated(
        conn, namespace, image, pull_secret, deadline_seconds=deadline_seconds
    )


@task(name="ensure-canary", **_COMMON)
def ensure_canary_task(
    conn: SiteConnection,
    namespace: str,
    image: str | None,
    pull_secret: str | None,
    deadline_seconds: float,
    dry_run: bool = False,
) -> StepResult:
    return canary.ensure_canary(
        conn, namespace, image, pull_secret, deadline_seconds=deadline_seconds, dry_run=dry_run
    )


# -- read-only checks for site-status ------------------------------------------------------------


@task(name="release-status", **_COMMON)
def release_status_task(conn: SiteConnection) -> SiteCheck:
    return helm_release.release_status(conn)


@task(name="deployment-ready", **_COMMON)
def deployment_ready_task(conn: SiteConnection) -> SiteCheck:
    return helm_release.deployment_ready(conn)


@task(name="mirror-configured", **_COMMON)
def mirror_configured_task(conn: SiteConnection, host: str) -> SiteCheck:
    return mirror.mirror_check(conn, host)


@task(name="hosts-toml", **_COMMON)
def hosts_toml_task(conn: SiteConnection, host: str) -> SiteCheck:
    return mirror.hosts_toml_check(conn, host)
