"""Pull secrets: the dockerconfigjson Secret per app namespace, default service accounts,
the canary's scratch secret, and reading back a consumer's password for adoption.

:func:`read_pull_secrets` (annotations only: which token slot each holds, no value) is the one
read rotation, provision, status and the dry run decide from; :func:`ensure_pull_secrets`
reads the full state, plans (:func:`tasks.site.plans.plan_pull_secrets`) and writes only
where it differs. Values reach the cluster only in Secret bodies.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Sequence
from typing import Any

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from model.errors import PermanentError, TransientError, classify
from model.plan import Change, converge
from model.result import StepResult
from model.site import PullSecretMeta
from tasks.rotation import NODE_CONSUMER
from tasks.site import mirror, plans
from tasks.site.connection import SiteConnection, kube_call
from tasks.site.namespace import create_namespace, read_namespace

log = logging.getLogger(__name__)

LABELS = {"app.kubernetes.io/managed-by": "acr-edge"}


def _read_secret(conn: SiteConnection, namespace: str, name: str) -> k8s.V1Secret | None:
    resource = f"{conn.resource}: secret {namespace}/{name}"
    try:
        return kube_call(lambda: conn.core.read_namespaced_secret(name, namespace), resource)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise classify(exc, resource=resource) from None


def _annotations(secret: k8s.V1Secret) -> dict[str, str]:
    return (secret.metadata.annotations or {}) if secret.metadata else {}


def read_pull_secrets(
    conn: SiteConnection, namespaces: Sequence[str], secret_name: str
) -> dict[str, PullSecretMeta | None]:
    """Which client-token slot the pull secret holds per namespace (its annotations); None
    where it is missing or not ours. No value is kept."""
    out: dict[str, PullSecretMeta | None] = {}
    for ns in namespaces:
        secret = _read_secret(conn, ns, secret_name)
        out[ns] = plans.meta_of(_annotations(secret)) if secret is not None else None
    return out


def _service_account_names(conn: SiteConnection, namespace: str) -> tuple[str, ...] | None:
    where = f"{conn.resource}: serviceaccount {namespace}/default"
    try:
        sa = kube_call(
            lambda: conn.core.read_namespaced_service_account("default", namespace), where
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise classify(exc, resource=where) from None
    return tuple(str(ref.name) for ref in (sa.image_pull_secrets or []))


def read_pull_secret_states(
    conn: SiteConnection,
    namespaces: Sequence[str],
    secret_name: str,
    *,
    service_accounts: bool = False,
) -> list[plans.PullSecretState]:
    """The full state to plan a write from (the dockerconfigjson as a SecretStr)."""
    states = []
    for ns in namespaces:
        if not read_namespace(conn, ns):
            states.append(plans.PullSecretState(ns, namespace_exists=False))
            continue
        secret = _read_secret(conn, ns, secret_name)
        names = _service_account_names(conn, ns) if service_accounts else None
        if secret is None:
            states.append(plans.PullSecretState(ns, True, sa_pull_secrets=names))
            continue
        raw = (secret.data or {}).get(".dockerconfigjson")
        states.append(
            plans.PullSecretState(
                ns,
                True,
                exists=True,
                type=str(secret.type or ""),
                meta=plans.meta_of(_annotations(secret)),
                config=plans.decode_config(raw),
                sa_pull_secrets=names,
            )
        )
        del raw, secret
    return states


def _secret_body(wanted: plans.PullSecretWanted, namespace: str) -> k8s.V1Secret:
    assert wanted.password is not None, "a write needs the password (a dry run never writes)"
    config = plans.dockerconfig(wanted.host, wanted.username, wanted.password)
    data = base64.b64encode(json.dumps(config, sort_keys=True).encode()).decode()
    return k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(
            name=wanted.secret_name,
            namespace=namespace,
            annotations=plans.annotations_of(wanted.meta),
            labels=dict(LABELS),
        ),
        type=plans.DOCKERCONFIG,
        data={".dockerconfigjson": data},
    )


def _write_secret(
    conn: SiteConnection, mode: str, namespace: str, body: k8s.V1Secret, where: str
) -> int:
    name = str(body.metadata.name) if body.metadata else ""
    try:
        if mode == "create":
            conn.core.create_namespaced_secret(namespace, body)
            return 1
        if mode == "recreate":  # the type of a Secret is immutable
            conn.core.delete_namespaced_secret(name, namespace)
            conn.core.create_namespaced_secret(namespace, body)
            return 2
        conn.core.replace_namespaced_secret(name, namespace, body)
        return 1
    except ApiException as exc:
        # 409: written by someone else meanwhile; converge re-reads and plans again.
        if exc.status == 409:
            raise TransientError(f"{where}: changed concurrently") from None
        raise classify(exc, resource=where) from None


def _patch_service_account(conn: SiteConnection, namespace: str, secret_name: str) -> int:
    where = f"{conn.resource}: serviceaccount {namespace}/default"
    names = _service_account_names(conn, namespace)  # fresh: the namespace may be new
    if names is None:
        raise TransientError(f"{where}: not created yet")
    if secret_name in names:
        return 0
    patch = {"imagePullSecrets": [{"name": n} for n in [*names, secret_name]]}
    try:
        conn.core.patch_namespaced_service_account("default", namespace, patch)
    except ApiException as exc:
        raise classify(exc, resource=where) from None
    return 1


def apply_pull_secrets(conn: SiteConnection, change: Change) -> StepResult:
    wanted: plans.PullSecretWanted
    writes_planned: tuple[plans.SecretWrite, ...]
    wanted, writes_planned = change.payload
    writes = 0
    for w in writes_planned:
        if w.create_namespace:
            writes += create_namespace(conn, w.namespace)
        if w.mode:
            where = f"{change.resource} in {w.namespace}"
            body = _secret_body(wanted, w.namespace)
            writes += _write_secret(conn, w.mode, w.namespace, body, where)
        if w.patch_service_account:
            writes += _patch_service_account(conn, w.namespace, wanted.secret_name)
    return StepResult.from_change(change, writes=writes)


def ensure_pull_secrets(
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
    """A dockerconfigjson secret for ``host`` in every namespace (created if missing), written
    only where it differs; optionally on each default service account. ``password`` None only
    in a dry run: the annotations then say whether the slot ``meta`` names is held."""
    wanted = plans.PullSecretWanted(
        secret_name, host, username, meta, password, patch_default_service_account
    )
    resource = f"{conn.resource}: pull secret {secret_name}"
    return converge(
        lambda: read_pull_secret_states(
            conn, namespaces, secret_name, service_accounts=patch_default_service_account
        ),
        lambda states: plans.plan_pull_secrets(states, wanted, resource=resource),
        lambda change: apply_pull_secrets(conn, change),
        dry_run=dry_run,
    )


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


def read_pull_secret_password(
    conn: SiteConnection, namespace: str, secret_name: str, host: str
) -> tuple[str, SecretStr] | None:
    """(username, password) the pull secret holds for ``host``; None if absent or foreign."""
    secret = _read_secret(conn, namespace, secret_name)
    raw = (secret.data or {}).get(".dockerconfigjson") if secret is not None else None
    config = plans.decode_config(raw)
    del raw, secret
    if config is None:
        return None
    try:
        entry: Any = json.loads(config.get_secret_value())["auths"][host]
        return str(entry["username"]), SecretStr(str(entry["password"]))
    except (ValueError, KeyError, TypeError):
        log.warning(
            "%s: secret %s/%s is not a dockerconfigjson for %s; ignored",
            conn.resource,
            namespace,
            secret_name,
            host,
        )
        return None
    finally:
        del config


def read_consumer_password(
    conn: SiteConnection, consumer: str, host: str, slot: str, *, rerun: str
) -> tuple[str, SecretStr]:
    """(username, password) a consumer holds for ``host``, read back to adopt that live slot
    elsewhere without regenerating it. ``consumer`` is a namespace (its pull secret) or
    :data:`tasks.rotation.NODE_CONSUMER` (the node's registries.yaml). Raises PermanentError,
    naming ``rerun`` in the fix, when the consumer's record promises a value it does not hold."""
    site = conn.site
    if consumer == NODE_CONSUMER:
        found = mirror.read_node_password(conn, host)
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
