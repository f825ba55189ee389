"""Where a site records its credentials: reads for keep/resume decisions, scratch cleanup.

- The Helm release's ``acrEdge.syncCredential`` (which sync-token slot the runtime was given).
- A pull secret's password for the registry host, read back only to finish an interrupted
  adoption (some namespaces already hold the new password and ARM will never show it again).
- The same from the node's registries.yaml ``configs.<host>.auth`` (node auth model), when the
  node file is the consumer that already holds the password to adopt.

Only the needed field is kept; everything else read is dropped unlogged.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from model.errors import PermanentError, classify
from tasks.rotation import NODE_CONSUMER
from tasks.site import ops, registries_yaml
from tasks.site.helm_values import (
    SyncCredentialRef,
    masked,
    recorded_digest,
    recorded_sync_credential,
)

if TYPE_CHECKING:
    from tasks.site.connection import SiteConnection

log = logging.getLogger("acr_edge.credentials")


@dataclass(frozen=True)
class ReleaseRecord:
    """What the installed release records about itself (no secret): its sync credential
    reference and the digest of the values it was installed with."""

    sync_ref: SyncCredentialRef | None
    digest: str | None


def read_release_record(conn: SiteConnection) -> ReleaseRecord | None:
    """The release's recorded sync credential and values digest; None when there is no
    release."""
    values = ops.read_release_values(conn)
    if values is None:
        return None
    record = ReleaseRecord(recorded_sync_credential(values), recorded_digest(values))
    del values  # holds the connection string
    return record


def read_pull_secret_password(
    conn: SiteConnection, namespace: str, secret_name: str, host: str
) -> tuple[str, SecretStr] | None:
    """(username, password) the pull secret holds for ``host``; None if absent or foreign."""
    resource = f"{conn.resource}: secret {namespace}/{secret_name}"
    try:
        secret = conn.core.read_namespaced_secret(secret_name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise classify(exc, resource=resource) from None
    raw = (secret.data or {}).get(".dockerconfigjson")
    if not raw:
        return None
    try:
        config = json.loads(base64.b64decode(raw))
        entry = config["auths"][host]
        username, password = str(entry["username"]), SecretStr(str(entry["password"]))
    except (ValueError, KeyError, TypeError):
        log.warning("%s: not a dockerconfigjson for %s; ignored", resource, host)
        return None
    finally:
        del raw
    return username, password


def read_node_password(conn: SiteConnection, host: str) -> tuple[str, SecretStr] | None:
    """(username, password) of registries.yaml ``configs.<host>.auth``; None if absent."""
    site = conn.site
    raw = conn.ssh.read_file(site.registries_path, sudo=site.sudo)
    if raw is None:
        return None
    try:
        data = registries_yaml.parse(
            raw.decode("utf-8", errors="strict"), path=site.registries_path
        )
    finally:
        del raw
    configs = data.get("configs")
    config = configs.get(host) if isinstance(configs, dict) else None
    auth = config.get("auth") if isinstance(config, dict) else None
    del data, configs, config
    if not isinstance(auth, dict):
        return None
    username, password = auth.get("username"), auth.get("password")
    del auth
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        return None
    return username, SecretStr(password)


def read_consumer_password(
    conn: SiteConnection, consumer: str, host: str, slot: str, *, rerun: str
) -> tuple[str, SecretStr]:
    """(username, password) a consumer holds for ``host``, read back to adopt that live slot
    elsewhere without regenerating it. ``consumer`` is a namespace (its pull secret) or
    :data:`tasks.rotation.NODE_CONSUMER` (the node's registries.yaml). Raises PermanentError,
    naming ``rerun`` in the fix, when the consumer's record promises a value it does not hold."""
    site = conn.site
    if consumer == NODE_CONSUMER:
        found = read_node_password(conn, host)
        where = site.registries_path
        fix = f"remove its configs entry for {host} and re-run {rerun}"
    else:
        found = read_pull_secret_password(conn, consumer, site.pull_secret_name, host)
        where = f"secret {consumer}/{site.pull_secret_name}"
        fix = f"delete that pull secret and re-run {rerun}"
    if found is None:
        raise PermanentError(
            f"{where} is recorded as holding {slot} but holds no credential for {host}",
            resource=f"{site.name}: {where}",
            fix=fix,
        )
    return found


def delete_secret(conn: SiteConnection, namespace: str, name: str) -> bool:
    """Remove a scratch secret (the canary's); True when something was deleted."""
    resource = f"{conn.resource}: secret {namespace}/{name}"
    try:
        conn.core.delete_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise classify(exc, resource=resource) from None
    return True


def read_release_values_masked(conn: SiteConnection) -> dict[str, Any] | None:
    """The release's values with secrets masked (for a plan diff); None without a release."""
    values = ops.read_release_values(conn)
    return masked(values) if isinstance(values, dict) else None
