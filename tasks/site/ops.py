"""I/O on an edge site: namespace, Helm release, registries.yaml, restart, pull secrets, canary.

Each ensure-step reads the actual state, computes the desired one with a pure module
(`helm_values`, `registries_yaml`) and writes only the difference. Secrets reach the node only
on stdin or in Kubernetes Secret bodies; they are never on argv and never in error text.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import tomllib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from model.errors import InputError, PermanentError, TransientError, classify, redact
from model.result import StepResult
from model.retry import call_with_retry
from tasks.azure.connection_string import parse_sync_connection_string
from tasks.site import helm_values, registries_yaml
from tasks.site.connection import SiteConnection, open_site
from tasks.site.helm_values import SyncCredentialRef
from tasks.site.registries_yaml import NodeAuth

if TYPE_CHECKING:
    from blocks.edge_site import EdgeSite

__all__ = [
    "CanaryResult",
    "PullSecretMeta",
    "SyncCredentialRef",
    "ensure_namespace",
    "ensure_pull_secrets",
    "ensure_registries_yaml",
    "helm_install",
    "helm_upgrade_kept_credential",
    "open_site",
    "read_node_credential",
    "read_pull_secrets",
    "read_release_status",
    "read_release_values",
    "registry_host",
    "restart_distribution",
    "run_canary",
    "service_cluster_ip",
    "verify_hosts_toml",
    "wait_deployment_ready",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

ANNOTATION_TOKEN = "acr-edge.io/token"
ANNOTATION_SLOT = "acr-edge.io/password-slot"
ANNOTATION_CREATED = "acr-edge.io/password-created"
_TRANSIENT_HELM = re.compile(
    r"connection refused|timed? ?out|unreachable|503|502|504|i/o timeout|EOF|"
    r"TLS handshake|another operation .* is in progress",
    re.IGNORECASE,
)


_PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName"})


@dataclass(frozen=True)
class PullSecretMeta:
    """Which client-token password a pull secret carries (from its annotations; no value)."""

    token: str
    slot: str
    created: str


@dataclass(frozen=True)
class CanaryResult:
    ok: bool
    reason: str
    pod: str = ""


def _status(exc: BaseException) -> int | None:
    return exc.status if isinstance(exc, ApiException) else None


@dataclass(frozen=True)
class _Answer:
    """A definite API answer (404/409/422) that must reach the caller, not the retry loop."""

    exc: ApiException


def _kube(fn: Callable[[], T], what: str, *, attempts: int = 4) -> T:
    """One Kubernetes call, transient failures retried; ApiException 404/409/422 re-raised."""

    def call() -> T | _Answer:
        try:
            return fn()
        except ApiException as exc:
            if exc.status in (404, 409, 422):
                return _Answer(exc)
            raise

    result = call_with_retry(call, what=what, attempts=attempts, base_delay=0.3, max_delay=5)
    if isinstance(result, _Answer):
        raise result.exc
    return result


# -- namespace -------------------------------------------------------------------------------


def ensure_namespace(conn: SiteConnection, name: str) -> StepResult:
    resource = f"{conn.resource}: namespace {name}"
    try:
        _kube(lambda: conn.core.read_namespace(name), resource)
        return StepResult.noop(resource, f"namespace {name} already exists")
    except ApiException as exc:
        if exc.status != 404:
            raise classify(exc, resource=resource) from None
    body = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name))
    try:
        _kube(lambda: conn.core.create_namespace(body), resource)
    except ApiException as exc:
        if exc.status == 409:  # created concurrently: the state we wanted
            return StepResult.noop(resource, f"namespace {name} already exists (created meanwhile)")
        raise classify(exc, resource=resource, fix="check the namespace name") from None
    return StepResult.wrote(resource, f"created namespace {name}")


# -- helm ------------------------------------------------------------------------------------


def _helm_argv(site: EdgeSite, *args: str) -> list[str]:
    # helm reads the node's admin kubeconfig (root-only on K3s), so it runs like the other
    # privileged commands; KUBECONFIG is passed as an argument of `env`, not a secret.
    return ["env", f"KUBECONFIG={site.kubeconfig_path}", "helm", *args]


def _helm(
    conn: SiteConnection,
    args: Sequence[str],
    *,
    stdin: SecretStr | None = None,
    timeout: float | None = None,
    secrets: Sequence[str] = (),
) -> tuple[int, str, str]:
    site = conn.site
    result = conn.ssh.run(_helm_argv(site, *args), stdin=stdin, sudo=site.sudo, timeout=timeout)
    stderr = redact(result.error_text(), secrets)
    return result.exit_status, result.stdout, stderr


def _release_query(conn: SiteConnection, *verb: str) -> str | None:
    """stdout of ``helm <verb> <release> -n <ns> -o json``; None when there is no release."""
    site = conn.site
    rc, out, err = _helm(
        conn,
        [*verb, site.release_name, "-n", site.namespace, "-o", "json"],
        timeout=site.command_timeout,
    )
    if rc != 0:
        if "not found" in err.lower():
            return None
        rel = f"{conn.resource}: helm release {site.namespace}/{site.release_name}"
        raise _helm_error(rel, f"helm {' '.join(verb)}", err)
    return out


def read_release_status(conn: SiteConnection) -> str | None:
    """The release's Helm status (``deployed``, ``failed``, ...); None when it does not exist."""
    out = _release_query(conn, "status")
    if out is None:
        return None
    try:
        return str(json.loads(out).get("info", {}).get("status") or "unknown")
    except (ValueError, AttributeError):
        site = conn.site
        rel = f"{conn.resource}: helm release {site.namespace}/{site.release_name}"
        raise PermanentError("helm status printed no JSON", resource=rel) from None


def read_release_values(conn: SiteConnection) -> Any:
    """The release's values (``helm get values -o json``) parsed; None when there is no release
    or its output is not JSON. They hold the connection string: callers keep only what they
    need and drop the rest unlogged."""
    out = _release_query(conn, "get", "values")
    try:
        return json.loads(out or "null")
    except ValueError:
        return None


def _release_state(conn: SiteConnection) -> tuple[str | None, str | None]:
    """(status, recorded digest) of the release; (None, None) when it does not exist."""
    status = read_release_status(conn)
    if status is None:
        return None, None
    values = read_release_values(conn)
    # Only the metadata key is looked at; the rest (the connection string) is dropped unread.
    digest = helm_values.recorded_digest(values if isinstance(values, dict) else None)
    del values
    return status, digest


def _helm_error(resource: str, what: str, stderr: str) -> Exception:
    if _TRANSIENT_HELM.search(stderr):
        return TransientError(f"{resource}: {what} failed: {stderr}")
    return PermanentError(f"{what} failed: {stderr}", resource=resource)


def helm_install(
    conn: SiteConnection,
    site: EdgeSite,
    connection_string: SecretStr,
    *,
    sync_ref: SyncCredentialRef,
) -> StepResult:
    """`helm upgrade --install` with values on stdin, skipped when the recorded digest matches."""
    rel = f"{conn.resource}: helm release {site.namespace}/{site.release_name}"
    desired = helm_values.chart_values(site, connection_string, sync_ref)
    status, recorded = _release_state(conn)
    if status == "deployed" and recorded == desired.digest:
        return StepResult.noop(
            rel,
            f"release {site.release_name} already has these values ({desired.digest[:19]})",
            digest=desired.digest,
        )
    args = [
        "upgrade",
        "--install",
        site.release_name,
        site.chart_ref,
        "-n",
        site.namespace,
        "--create-namespace",
        "-f",
        "-",
        "--timeout",
        f"{int(site.helm_timeout)}s",
    ]
    if site.chart_version:
        args += ["--version", site.chart_version]
    rc, _, err = _helm(
        conn,
        args,
        stdin=desired.to_yaml_stdin(),
        timeout=site.helm_timeout + 30,
        secrets=[connection_string.get_secret_value()],
    )
    if rc != 0:
        raise _helm_error(rel, "helm upgrade --install", err)
    if status is None:
        why = "installed"
    elif status != "deployed":
        why = f"upgraded (previous release was {status})"
    else:
        why = "upgraded (values changed)"
    return StepResult.wrote(
        rel,
        f"release {site.release_name} {why}",
        digest=desired.digest,
        previous_digest=recorded,
        sync_slot=sync_ref.slot,
    )


def helm_upgrade_kept_credential(
    conn: SiteConnection, site: EdgeSite, sync_ref: SyncCredentialRef
) -> StepResult | None:
    """Apply changed chart settings while keeping the release's sync credential.

    The connection string is read back from the current release (``helm get values``) into
    memory only and handed to `helm_install` on stdin again. None when it cannot be re-used
    (no release, no connection string, another credential recorded, malformed): the caller
    then generates a fresh sync password instead.
    """
    rel = f"{conn.resource}: helm release {site.namespace}/{site.release_name}"
    values = read_release_values(conn)
    kept = _kept_connection_string(values, sync_ref)
    changed = helm_values.changed_settings(values if isinstance(values, dict) else None, site)
    del values
    if kept is None:
        log.warning(
            "%s: the connection string for %s cannot be re-used from the release",
            rel,
            sync_ref.slot,
        )
        return None
    why = (
        f"release {site.release_name}: values changed ({', '.join(changed) or 'values digest'}); "
        "upgrading with the kept sync credential"
    )
    log.info("%s", why)
    result = helm_install(conn, site, kept, sync_ref=sync_ref)
    del kept
    if not result.changed:
        return result
    return StepResult.wrote(rel, why, writes=result.writes, settings=changed, **result.details)


def _kept_connection_string(values: Any, sync_ref: SyncCredentialRef) -> SecretStr | None:
    """The release's connection string, if it is the one ``sync_ref`` describes."""
    if helm_values.recorded_sync_credential(values) != sync_ref:
        return None
    raw = values.get("connectionString") if isinstance(values, dict) else None
    if not isinstance(raw, str) or not raw:
        return None
    candidate = SecretStr(raw)
    del raw
    try:
        settings = parse_sync_connection_string(candidate)
    except InputError:
        return None  # its text is never echoed: InputError names only the field
    if settings.sync_token != sync_ref.token:
        return None
    return candidate


def wait_deployment_ready(
    conn: SiteConnection, namespace: str, name: str, timeout: float, *, poll: float = 0.25
) -> None:
    resource = f"{conn.resource}: deployment {namespace}/{name}"
    deadline = time.monotonic() + timeout
    last = "not found"
    while True:
        try:
            dep = conn.apps.read_namespaced_deployment(name, namespace)
            spec_replicas = dep.spec.replicas if dep.spec and dep.spec.replicas is not None else 1
            st = dep.status
            ready = (st.ready_replicas or 0) if st else 0
            observed = (st.observed_generation or 0) if st else 0
            generation = dep.metadata.generation or 0 if dep.metadata else 0
            if ready >= spec_replicas and observed >= generation:
                return
            conditions = (st.conditions or []) if st else []
            last = "; ".join(f"{c.type}={c.status} {c.message or ''}".strip() for c in conditions)
            last = last or f"{ready}/{spec_replicas} ready"
        except Exception as exc:
            if _status(exc) == 404:
                last = "not found"
            else:
                err = classify(exc, resource=resource)
                if not isinstance(err, TransientError):
                    raise err from None
                last = str(err)
        if time.monotonic() >= deadline:
            raise TransientError(f"{resource} not ready after {timeout:.0f}s: {last}")
        time.sleep(poll)


def service_cluster_ip(conn: SiteConnection, namespace: str, name: str) -> str:
    resource = f"{conn.resource}: service {namespace}/{name}"
    try:
        svc = _kube(lambda: conn.core.read_namespaced_service(name, namespace), resource)
    except ApiException as exc:
        raise classify(exc, resource=resource, fix="is the Helm release installed?") from None
    ip = svc.spec.cluster_ip if svc.spec else None
    if not ip or ip == "None":
        raise PermanentError("service has no cluster IP", resource=resource)
    return str(ip)


def registry_host(conn: SiteConnection, site: EdgeSite) -> str:
    """``"<clusterIP>:<port>"``: the name pods and the mirror use for the connected registry."""
    resource = f"{conn.resource}: service {site.namespace}/{site.release_name}"
    ip = service_cluster_ip(conn, site.namespace, site.release_name)
    svc = _kube(
        lambda: conn.core.read_namespaced_service(site.release_name, site.namespace), resource
    )
    wanted = 80 if site.http_enabled else 443
    ports = [p.port for p in (svc.spec.ports or [])] if svc.spec else []
    port = wanted if wanted in ports or not ports else ports[0]
    return f"{ip}:{port}"


# -- registries.yaml, restart, hosts.toml ------------------------------------------------------


def ensure_registries_yaml(
    conn: SiteConnection, site: EdgeSite, host: str, auth: NodeAuth | None = None
) -> StepResult:
    """Add/fix the http mirror for ``host``; restart K3s when ``changed`` or when the details
    say ``restart_pending`` (the file is right but K3s has not loaded it since it was written,
    e.g. a run died between the write and the restart)."""
    path = site.registries_path
    resource = f"{conn.resource}: {path}"
    current = conn.ssh.read_file(path, sudo=site.sudo)
    text = None if current is None else current.decode("utf-8", errors="strict")
    result = registries_yaml.merge(text, host, auth, path=path)  # refuses a bad file untouched
    if not result.changed:
        if restart_pending(conn, site, host):
            return StepResult.noop(
                resource,
                f"{result.reason}, but {site.service_name} has not loaded it since it was "
                "written (restart pending)",
                path=path,
                restart_pending=True,
            )
        return StepResult.noop(resource, result.reason, path=path)
    writes = 0
    backup = None
    if current is not None:
        backup = f"{path}.bak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        conn.ssh.run(["cp", "-p", "--", path, backup], sudo=site.sudo).check(
            f"{resource}: backup", fix="check free space and permissions on the node"
        )
        writes += 1
    conn.ssh.write_file(path, result.content, mode=0o600, sudo=site.sudo)
    writes += 1
    return StepResult.wrote(resource, result.reason, writes=writes, path=path, backup=backup)


def hosts_toml_path(site: EdgeSite, host: str) -> str:
    return f"{site.hosts_dir.rstrip('/')}/{host}/hosts.toml"


def restart_pending(conn: SiteConnection, site: EdgeSite, host: str) -> bool:
    """True when registries.yaml is newer than the hosts.toml K3s generated for ``host`` at its
    last start (K3s regenerates certs.d at every start), or that hosts.toml is missing."""
    hosts = hosts_toml_path(site, host)
    result = conn.ssh.run(
        ["find", site.registries_path, "-newer", hosts, "-print"],
        sudo=site.sudo,
        timeout=site.command_timeout,
    )
    if result.exit_status != 0:
        if "no such file" in result.stderr.lower():
            return True
        raise TransientError(
            f"{conn.resource}: cannot compare {site.registries_path} with {hosts}: "
            f"{result.error_text()}"
        )
    return bool(result.stdout.strip())


def read_node_credential(conn: SiteConnection, site: EdgeSite, host: str) -> PullSecretMeta | None:
    """Which client-token password ``configs.<host>.auth`` holds (node auth model), from the
    header acr-edge writes with it; None without a (trustworthy) record. No value is read out."""
    raw = conn.ssh.read_file(site.registries_path, sudo=site.sudo)
    text = None if raw is None else raw.decode("utf-8", errors="strict")
    del raw
    record = registries_yaml.node_credential(text, host, path=site.registries_path)
    if record is None and text is not None and registries_yaml.HEADER_PREFIX in text:
        log.warning(
            "%s: %s has an acr-edge header for %s that does not match its credential; ignored",
            conn.resource,
            site.registries_path,
            host,
        )
    del text
    if record is None:
        return None
    return PullSecretMeta(token=record.token, slot=record.slot, created=record.created)


def restart_distribution(conn: SiteConnection, site: EdgeSite) -> None:
    """Restart K3s/RKE2, then wait (bounded) for the API and every node to be Ready."""
    resource = f"{conn.resource}: {site.service_name}"
    started = time.monotonic()
    result = conn.ssh.run(
        ["systemctl", "restart", site.service_name], sudo=site.sudo, timeout=site.restart_timeout
    )
    if result.exit_status != 0:
        raise PermanentError(
            f"systemctl restart {site.service_name} failed: {result.error_text()}",
            resource=resource,
            fix=f"see `journalctl -u {site.service_name}` on the node; a rejected "
            f"{site.registries_path} keeps it down (a backup sits beside it)",
        )
    remaining = max(1.0, site.restart_timeout - (time.monotonic() - started))
    wait_nodes_ready(conn, remaining)


def wait_nodes_ready(conn: SiteConnection, timeout: float, *, poll: float = 0.25) -> None:
    resource = f"{conn.resource}: nodes"
    deadline = time.monotonic() + timeout
    last = "API not answering"
    while True:
        try:
            nodes = conn.core.list_node(_request_timeout=5).items
            not_ready = [
                str(n.metadata.name if n.metadata else "?")
                for n in nodes
                if not any(
                    c.type == "Ready" and c.status == "True"
                    for c in ((n.status.conditions if n.status else None) or [])
                )
            ]
            if nodes and not not_ready:
                return
            last = f"not Ready: {', '.join(not_ready) or 'no nodes listed'}"
        except Exception as exc:
            err = classify(exc, resource=resource)
            if not isinstance(err, TransientError) and _status(exc) not in (401, 403):
                raise err from None
            last = str(err)
        if time.monotonic() >= deadline:
            raise TransientError(f"{resource}: not ready after {timeout:.0f}s: {last}")
        time.sleep(poll)


def verify_hosts_toml(conn: SiteConnection, site: EdgeSite, host: str) -> None:
    """containerd's hosts.toml for ``host`` must route to the http endpoint.

    Catches K3s versions that regenerate the mirror as https despite the explicit scheme.
    """
    path = hosts_toml_path(site, host)
    resource = f"{conn.resource}: {path}"
    raw = conn.ssh.read_file(path, sudo=site.sudo)
    if raw is None:
        raise PermanentError(
            "hosts.toml was not generated after the restart",
            resource=resource,
            fix=f"check that {site.registries_path} has the mirror and that {site.service_name} "
            "really restarted",
        )
    try:
        hosts = tomllib.loads(raw.decode(errors="replace")).get("host") or {}
    except tomllib.TOMLDecodeError:
        raise PermanentError(
            "hosts.toml does not parse as TOML", resource=resource, fix="restart K3s again"
        ) from None
    # K3s writes endpoints with their /v2 path ("http://10.43.0.10:80/v2").
    schemes = {urlsplit(url).scheme for url in hosts if urlsplit(url).netloc == host}
    if "http" in schemes:
        return
    endpoint = registries_yaml.mirror_endpoint(host)
    regression = " (K3s rewrote the endpoint to https)" if "https" in schemes else ""
    raise PermanentError(
        f"hosts.toml does not route to {endpoint}{regression}",
        resource=resource,
        fix="use a K3s version that keeps explicit http:// mirror endpoints",
    )


# -- pull secrets ------------------------------------------------------------------------------


def _dockerconfig(host: str, username: str, password: SecretStr) -> dict[str, Any]:
    secret = password.get_secret_value()
    auth = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return {"auths": {host: {"username": username, "password": secret, "auth": auth}}}


def _meta_of(secret: k8s.V1Secret) -> PullSecretMeta | None:
    annotations = (secret.metadata.annotations or {}) if secret.metadata else {}
    token = annotations.get(ANNOTATION_TOKEN)
    if not token:
        return None
    return PullSecretMeta(
        token=token,
        slot=annotations.get(ANNOTATION_SLOT, ""),
        created=annotations.get(ANNOTATION_CREATED, ""),
    )


def _read_secret(conn: SiteConnection, namespace: str, name: str) -> k8s.V1Secret | None:
    resource = f"{conn.resource}: secret {namespace}/{name}"
    try:
        return _kube(lambda: conn.core.read_namespaced_secret(name, namespace), resource)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise classify(exc, resource=resource) from None


def read_pull_secrets(
    conn: SiteConnection, namespaces: Sequence[str], secret_name: str
) -> dict[str, PullSecretMeta | None]:
    """Annotations of the pull secret per namespace; None where missing or not ours."""
    out: dict[str, PullSecretMeta | None] = {}
    for ns in namespaces:
        secret = _read_secret(conn, ns, secret_name)
        out[ns] = _meta_of(secret) if secret is not None else None
    return out


def ensure_pull_secrets(
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
    """A dockerconfigjson secret for ``host`` in every namespace; written only where it differs."""
    resource = f"{conn.resource}: pull secret {secret_name}"
    desired_config = _dockerconfig(host, username, password)
    annotations = {
        ANNOTATION_TOKEN: meta.token,
        ANNOTATION_SLOT: meta.slot,
        ANNOTATION_CREATED: meta.created,
    }
    labels = {"app.kubernetes.io/managed-by": "acr-edge"}
    data: dict[str, bytes | str] = {
        ".dockerconfigjson": base64.b64encode(
            json.dumps(desired_config, sort_keys=True).encode()
        ).decode()
    }
    writes = 0
    changed_ns: list[str] = []
    for ns in namespaces:
        writes += ensure_namespace(conn, ns).writes
        where = f"{resource} in {ns}"
        current = _read_secret(conn, ns, secret_name)
        if current is not None and _secret_matches(current, desired_config, annotations):
            pass
        else:
            body = k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(
                    name=secret_name, namespace=ns, annotations=annotations, labels=labels
                ),
                type="kubernetes.io/dockerconfigjson",
                data=dict(data),
            )
            writes += _write_secret(conn, ns, current, body, where)
            changed_ns.append(ns)
        if patch_default_service_account:
            writes += _ensure_sa_pull_secret(conn, ns, secret_name)
    if not writes:
        return StepResult.noop(
            resource,
            f"pull secret {secret_name} already current in {len(namespaces)} namespace(s) "
            f"(token {meta.token}, {meta.slot})",
            namespaces=list(namespaces),
        )
    return StepResult.wrote(
        resource,
        f"pull secret {secret_name} written in {', '.join(changed_ns) or 'no namespace'}"
        + (" and default service accounts patched" if patch_default_service_account else ""),
        writes=writes,
        namespaces=changed_ns,
        token=meta.token,
        slot=meta.slot,
    )


def _write_secret(
    conn: SiteConnection,
    namespace: str,
    current: k8s.V1Secret | None,
    body: k8s.V1Secret,
    where: str,
) -> int:
    name = str(body.metadata.name) if body.metadata else ""

    def create() -> Any:
        return conn.core.create_namespaced_secret(namespace, body)

    def delete() -> Any:
        return conn.core.delete_namespaced_secret(name, namespace)

    def replace() -> Any:
        return conn.core.replace_namespaced_secret(name, namespace, body)

    try:
        if current is None:
            _kube(create, where)
            return 1
        if current.type != "kubernetes.io/dockerconfigjson":
            # The type of a Secret is immutable: replace by delete + create.
            _kube(delete, where)
            _kube(create, where)
            return 2
        if body.metadata is not None and current.metadata is not None:
            body.metadata.resource_version = current.metadata.resource_version
        _kube(replace, where)
        return 1
    except ApiException as exc:
        # 409: someone else wrote it meanwhile; the task's retry re-reads and decides again.
        if exc.status == 409:
            raise TransientError(f"{where}: changed concurrently") from None
        raise classify(exc, resource=where) from None


def _secret_matches(
    current: k8s.V1Secret, desired_config: dict[str, Any], annotations: dict[str, str]
) -> bool:
    if current.type != "kubernetes.io/dockerconfigjson":
        return False
    raw = (current.data or {}).get(".dockerconfigjson")
    try:
        actual = json.loads(base64.b64decode(raw or ""))
    except ValueError:
        return False
    have = (current.metadata.annotations or {}) if current.metadata else {}
    return bool(actual == desired_config and all(have.get(k) == v for k, v in annotations.items()))


def _ensure_sa_pull_secret(conn: SiteConnection, namespace: str, secret_name: str) -> int:
    where = f"{conn.resource}: serviceaccount {namespace}/default"
    try:
        sa = _kube(lambda: conn.core.read_namespaced_service_account("default", namespace), where)
    except ApiException as exc:
        raise classify(exc, resource=where) from None
    names = [ref.name for ref in (sa.image_pull_secrets or [])]
    if secret_name in names:
        return 0
    patch = {"imagePullSecrets": [{"name": n} for n in [*names, secret_name]]}
    try:
        _kube(
            lambda: conn.core.patch_namespaced_service_account("default", namespace, patch), where
        )
    except ApiException as exc:
        raise classify(exc, resource=where) from None
    return 1


# -- canary ------------------------------------------------------------------------------------


def run_canary(
    conn: SiteConnection,
    namespace: str,
    image: str,
    pull_secret: str | None,
    timeout: float = 120.0,
    *,
    poll: float = 0.25,
) -> CanaryResult:
    """Start a short-lived pod; passes when the kubelet pulls ``image``. Always deletes it."""
    name = f"acr-edge-canary-{uuid.uuid4().hex[:8]}"
    where = f"{conn.resource}: canary pod {namespace}/{name}"
    pod = k8s.V1Pod(
        metadata=k8s.V1ObjectMeta(
            name=name,
            labels={"app.kubernetes.io/managed-by": "acr-edge", "acr-edge.io/canary": "1"},
        ),
        spec=k8s.V1PodSpec(
            restart_policy="Never",
            containers=[k8s.V1Container(name="canary", image=image, command=["/bin/true"])],
            image_pull_secrets=[k8s.V1LocalObjectReference(name=pull_secret)]
            if pull_secret
            else None,
        ),
    )
    try:
        _kube(lambda: conn.core.create_namespaced_pod(namespace, pod), where)
    except ApiException as exc:
        raise classify(exc, resource=where) from None
    try:
        return _watch_canary(conn, namespace, name, image, timeout, poll, where)
    finally:
        try:
            _kube(
                lambda: conn.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0),
                where,
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("%s: could not delete: %s", where, exc.reason)
        except Exception as exc:  # the verdict matters more than the cleanup
            log.warning("%s: could not delete: %s", where, exc)


def _watch_canary(
    conn: SiteConnection,
    namespace: str,
    name: str,
    image: str,
    timeout: float,
    poll: float,
    where: str,
) -> CanaryResult:
    deadline = time.monotonic() + timeout
    last = "pending"
    while True:
        pod = _kube(lambda: conn.core.read_namespaced_pod(name, namespace), where)
        status = pod.status
        for cs in (status.container_statuses or []) if status else []:
            if cs.image_id:
                return CanaryResult(True, f"pulled {image}", pod=name)
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason in (
                "ErrImagePull",
                "ImagePullBackOff",
                "InvalidImageName",
            ):
                return CanaryResult(
                    False, f"{waiting.reason}: {waiting.message or ''}".strip(), pod=name
                )
            if waiting and waiting.reason:
                last = waiting.reason
        phase = status.phase if status else None
        if phase in ("Running", "Succeeded"):
            return CanaryResult(True, f"pulled {image} (pod {phase})", pod=name)
        if phase == "Failed" and status is not None:
            return CanaryResult(False, f"pod failed: {status.message or status.reason}", pod=name)
        if time.monotonic() >= deadline:
            return CanaryResult(False, f"no pull within {timeout:.0f}s (last: {last})", pod=name)
        time.sleep(poll)
