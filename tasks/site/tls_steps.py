"""Prefect tasks over the site CA and server certificate Secrets: thin, nothing cached or
persisted (the CA and server keys pass through these tasks' return values and arguments, so
no result may ever be stored), no Prefect retries (``model.plan.converge`` retries writes).

Example:
    ```python
    result, ca = ensure_ca_task(conn, cr_name, now, dry_run=False)
    slots = read_server_slots_task(conn, ca)
    ```
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.site import tls_secrets

_COMMON: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False}

read_ca_task = task(name="read-site-ca", **_COMMON)(tls_secrets.read_ca)
ensure_ca_task = task(name="ensure-site-ca", **_COMMON)(tls_secrets.ensure_ca)
read_server_slots_task = task(name="read-server-cert-slots", **_COMMON)(
    tls_secrets.read_server_slots
)
write_server_secret_task = task(
    name="write-server-cert", task_run_name="write-server-cert-{slot}", **_COMMON
)(tls_secrets.write_server_secret)
delete_server_secret_task = task(
    name="delete-server-cert", task_run_name="delete-server-cert-{slot}", **_COMMON
)(tls_secrets.delete_server_secret)
