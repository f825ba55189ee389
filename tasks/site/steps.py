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

from contextlib import ExitStack
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from model.site import NodeTarget, SiteSettings
from tasks.site import (
    canary,
    helm_chart,
    helm_release,
    mirror,
    namespace,
    node_mirror,
    nodes,
    pull_secrets,
)
from tasks.site.connection import SiteConnection, open_site

# No tags: Prefect 3 makes a tag-concurrency call per tagged task run even when no limit exists
# (on SQLite often a 503 and a 2 s client retry); the deployments carry the UI tags instead.
_COMMON: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}


@task(name="open-site", **_COMMON)
def open_site_task(stack: ExitStack, site: SiteSettings) -> SiteConnection:
    """Connect (SSH, kubeconfig, tunnel) and leave closing to the flow's exit stack, so the
    connection can be opened while the Azure steps run."""
    return stack.enter_context(open_site(site))


ensure_namespace_task = task(
    name="ensure-namespace", task_run_name="ensure-namespace-{name}", **_COMMON
)(namespace.ensure_namespace)

# -- helm release --------------------------------------------------------------------------------
read_helm_release_task = task(name="read-helm-release", **_COMMON)(helm_release.read_helm_release)
# Install/upgrade unless the recorded digest matches; a None connection string keeps the
# release's own (read back on the node side, never a parameter or result).
ensure_helm_release_task = task(name="ensure-helm-release", **_COMMON)(
    helm_release.ensure_helm_release
)
# The same, then (when it wrote) Ready and Online, else rolled back / uninstalled and failed
# naming that. Its waits run to their own deadlines: never retried.
ensure_helm_release_proven_task = task(name="ensure-helm-release", **_COMMON)(
    helm_release.ensure_helm_release_proven
)
read_release_history_task = task(name="read-release-history", **_COMMON)(
    helm_release.read_release_history
)
# Runs to its own deadline: never retried.
wait_deployment_ready_task = task(name="wait-deployment-ready", **_COMMON)(
    helm_release.wait_deployment_ready
)
registry_host_task = task(name="registry-host", **_COMMON)(helm_release.registry_host)

# -- mirror --------------------------------------------------------------------------------------
read_node_credential_task = task(name="read-node-credential", **_COMMON)(
    mirror.read_node_credential
)

# -- nodes ---------------------------------------------------------------------------------------
read_nodes_task = task(name="read-nodes", **_COMMON)(nodes.read_nodes)


@task(name="open-nodes", **_COMMON)
def open_nodes_task(
    stack: ExitStack, conn: SiteConnection, targets: list[NodeTarget]
) -> list[SiteConnection]:
    """Connect to every node (host keys pinned per node); closed with the flow's exit stack."""
    opened = nodes.open_nodes(conn, targets)
    for node in opened:
        stack.callback(node.close)
    return opened


check_node_file_task = task(name="check-node-file", **_COMMON)(node_mirror.check_node_file)
# One node: write, restart if needed, prove, roll back on failure. Never retried.
ensure_node_mirror_task = task(name="ensure-node-mirror", **_COMMON)(node_mirror.ensure_node_mirror)

# -- pull secrets --------------------------------------------------------------------------------
read_pull_secrets_task = task(name="read-pull-secrets", **_COMMON)(pull_secrets.read_pull_secrets)
ensure_pull_secrets_task = task(name="ensure-pull-secrets", **_COMMON)(
    pull_secrets.ensure_pull_secrets
)
read_consumer_password_task = task(name="read-consumer-password", **_COMMON)(
    pull_secrets.read_consumer_password
)
delete_secret_task = task(name="delete-scratch-secret", **_COMMON)(pull_secrets.delete_secret)

# -- canary --------------------------------------------------------------------------------------
run_canary_task = task(name="run-canary", **_COMMON)(canary.run_canary)
# Its own bounded loop is the propagation wait: never retried.
canary_until_propagated_task = task(name="canary-until-propagated", **_COMMON)(
    canary.canary_until_propagated
)
ensure_canary_task = task(name="ensure-canary", **_COMMON)(canary.ensure_canary)

# -- read-only checks for site-status ------------------------------------------------------------
release_status_task = task(name="release-status", **_COMMON)(helm_release.release_status)
release_chart_task = task(name="release-chart", **_COMMON)(helm_chart.read_release_chart)
deployment_ready_task = task(name="deployment-ready", **_COMMON)(helm_release.deployment_ready)
mirror_configured_task = task(name="mirror-configured", **_COMMON)(mirror.mirror_check)
hosts_toml_task = task(name="hosts-toml", **_COMMON)(mirror.hosts_toml_check)
ca_file_task = task(name="ca-file", **_COMMON)(mirror.ca_file_check)
service_state_task = task(name="service-state", **_COMMON)(mirror.service_state)
