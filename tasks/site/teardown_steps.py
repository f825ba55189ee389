"""Prefect task wrappers around the cluster teardown steps: no logic, no retries, no cache."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.site import teardown, tls_teardown

_COMMON: dict[str, Any] = {"cache_policy": NO_CACHE}

delete_pull_secret_task = task(
    name="delete-pull-secret", task_run_name="delete-pull-secret-{namespace}", **_COMMON
)(teardown.delete_pull_secret)
uninstall_release_task = task(name="uninstall-helm-release", **_COMMON)(teardown.uninstall_release)
namespace_left_task = task(name="namespace-left", **_COMMON)(teardown.namespace_left)
node_registry_host_task = task(name="registry-host", **_COMMON)(teardown.node_registry_host)
remove_node_mirror_task = task(name="node-mirror-teardown", **_COMMON)(teardown.remove_node_mirror)
delete_tls_secret_task = task(
    name="delete-tls-secret", task_run_name="delete-tls-secret-{name}", **_COMMON
)(tls_teardown.delete_tls_secret)
delete_node_ca_file_task = task(name="delete-node-ca-file", **_COMMON)(
    tls_teardown.delete_node_ca_file
)
tls_secret_names = tls_teardown.tls_secret_names
