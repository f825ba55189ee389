"""The connected registry's Helm release: one reader, the install/upgrade, readiness, service.

:func:`read_helm_release` is the one read of the release, shared by provision, rotation,
status and the dry run: status, recorded digest and sync credential, masked values, and
whether the connection string it holds can be re-used. The connection string itself never
leaves this module: it travels to helm on stdin, read back only for a settings-only upgrade.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from model import tls
from model.errors import PermanentError, TransientError, classify
from model.plan import Change, converge
from model.result import StepResult
from model.site import ReleaseFact, SiteCheck, SyncCredentialRef
from tasks.site import helm_values, plans
from tasks.site.connection import SiteConnection, api_status, kube_call
from tasks.site.helm_cli import helm as _helm
from tasks.site.helm_cli import helm_error as _helm_error


def release_query(conn: SiteConnection, *verb: str) -> str | None:
    """stdout of ``helm <verb> <release> -n <ns> -o json``; None when there is no release."""
    site = conn.site
    rc, out, err = _helm(
        conn,
        [*verb, site.release_name, "-n", site.namespace, "-o", "json"],
        timeout=site.command_timeout,
        idempotent=True,  # a read: re-run after a dropped connection
    )
    if rc != 0:
        if "not found" in err.lower():
            return None
        raise _helm_error(plans.release_resource(site), f"helm {' '.join(verb)}", err)
    return out


def _release_values(conn: SiteConnection) -> Any:
    """``helm get values -o json`` parsed; None without a release or JSON. Holds the
    connection string: callers keep what they need and drop the rest unlogged."""
    out = release_query(conn, "get", "values")
    try:
        return json.loads(out or "null")
    except ValueError:
        return None


def read_helm_release(conn: SiteConnection) -> ReleaseFact:
    """The release as it is: status, recorded digest and sync credential, masked values."""
    out = release_query(conn, "status")
    if out is None:
        return ReleaseFact(status=None)
    try:
        status = str(json.loads(out).get("info", {}).get("status") or "unknown")
    except (ValueError, AttributeError):
        raise PermanentError(
            "helm status printed no JSON", resource=plans.release_resource(conn.site)
        ) from None
    values = _release_values(conn)
    ref = helm_values.recorded_sync_credential(values)
    record = values if isinstance(values, dict) else None
    fact = ReleaseFact(
        status=status,
        digest=helm_values.recorded_digest(record),
        sync_ref=ref,
        credential_reusable=helm_values.kept_connection_string(values, ref) is not None,
        values=helm_values.masked(record) if record is not None else None,
    )
    del values, record  # they hold the connection string
    return fact


def apply_helm_release(conn: SiteConnection, change: Change) -> StepResult:
    """`helm upgrade --install` with the planned values on stdin."""
    site = conn.site
    payload: plans.HelmPayload = change.payload
    connection_string = payload.connection_string
    if connection_string is None:  # settings-only upgrade: the release's own string, again
        # (the plan only leaves it None for the kept credential or for a dry run, never applied)
        connection_string = helm_values.kept_connection_string(
            _release_values(conn), payload.sync_ref
        )
        if connection_string is None:
            raise PermanentError(
                "the release's connection string could not be read back for the upgrade",
                resource=change.resource,
                fix="re-run provision-site: it generates a fresh sync password then",
            )
    desired = helm_values.chart_values(site, connection_string, payload.sync_ref, payload.serving)
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
    del connection_string
    if rc != 0:
        raise _helm_error(change.resource, "helm upgrade --install", err)
    return StepResult.from_change(change, writes=1, digest=desired.digest)


def ensure_helm_release(
    conn: SiteConnection,
    sync_ref: SyncCredentialRef,
    connection_string: SecretStr | None,
    *,
    tls_secret: str | None = None,
    transport: str | None = None,
    dry_run: bool = False,
) -> StepResult:
    """Install/upgrade the release to the site's values carrying ``sync_ref``; no-op when the
    recorded digest matches. ``connection_string`` None keeps the release's own (a
    settings-only upgrade); a dry run passes None or a placeholder and writes nothing;
    ``tls_secret``/``transport`` None keep what the release serves."""
    return converge(
        lambda: read_helm_release(conn),
        lambda fact: plans.plan_helm_release(
            fact, conn.site, sync_ref, connection_string, tls_secret, transport
        ),
        lambda change: apply_helm_release(conn, change),
        dry_run=dry_run,
    )


@dataclass(frozen=True)
class Revision:
    """One row of ``helm history``: no values, so nothing secret."""

    revision: int
    status: str
    description: str = ""


def read_release_history(conn: SiteConnection) -> list[Revision]:
    """``helm history -o json``, oldest first; [] when there is no release."""
    out = release_query(conn, "history")
    try:
        rows = json.loads(out or "[]")
        return [
            Revision(int(r["revision"]), str(r.get("status", "")), str(r.get("description", "")))
            for r in rows
        ]
    except (ValueError, TypeError, KeyError):
        raise PermanentError(
            "helm history printed no JSON", resource=plans.release_resource(conn.site)
        ) from None


def _deployed(history: list[Revision]) -> int | None:
    return next((r.revision for r in reversed(history) if r.status == "deployed"), None)


def _head(history: list[Revision]) -> int:
    return history[-1].revision if history else 0


def ensure_helm_release_proven(
    conn: SiteConnection,
    sync_ref: SyncCredentialRef,
    connection_string: SecretStr | None,
    online: Callable[[], SiteCheck],
    *,
    tls_secret: str | None = None,
    transport: str | None = None,
    dry_run: bool = False,
) -> StepResult:
    """:func:`ensure_helm_release`, then, when it wrote, the proof: the deployment Ready within
    ``ready_timeout`` and ``online()`` true (the connected registry Online in ARM) within it
    again. On failure (of the upgrade itself too) the change is undone - rolled back to the
    revision deployed before, or, a release this call installed, uninstalled - and a
    PermanentError says what was undone and why."""
    before = [] if dry_run else read_release_history(conn)
    try:
        serving = {"tls_secret": tls_secret, "transport": transport}
        result = ensure_helm_release(conn, sync_ref, connection_string, **serving, dry_run=dry_run)
    except PermanentError as exc:
        if dry_run:
            raise
        _undo(conn, before, str(exc))  # raises when a revision was written
        raise
    if dry_run or result.action == "none":
        return result
    why = _prove(conn, online)
    if why is not None:
        _undo(conn, before, why)
    return result


def _prove(conn: SiteConnection, online: Callable[[], SiteCheck]) -> str | None:
    """Why the new revision is not good, or None when it is Ready and Online."""
    site = conn.site
    try:
        wait_deployment_ready(conn)
    except TransientError as exc:
        return str(exc)
    deadline = time.monotonic() + site.ready_timeout
    while True:
        try:
            check = online()
        except TransientError as exc:
            check = SiteCheck(False, str(exc))
        if check.ok:
            return None
        if time.monotonic() >= deadline:
            return (
                f"the connected registry is not Online {site.ready_timeout:.0f}s after the "
                f"upgrade ({check.value})"
            )
        time.sleep(min(1.0, site.ready_timeout / 20))


def _undo(conn: SiteConnection, before: list[Revision], why: str) -> None:
    """Roll back to the revision deployed before (or uninstall what this run installed) and
    raise saying so; returns only when helm wrote no revision."""
    site = conn.site
    resource = plans.release_resource(site)
    after = read_release_history(conn)
    failed = _head(after)
    if failed == _head(before):
        return  # helm wrote no revision: the caller's error stands
    name = f"release {site.namespace}/{site.release_name}"
    if not before:
        rc, _, err = _helm(
            conn,
            ["uninstall", site.release_name, "-n", site.namespace, "--wait"],
            timeout=site.helm_timeout + 30,
        )
        done = "uninstalled it" if rc == 0 else f"its uninstall failed too: {err}"
        raise PermanentError(
            f"{name}: the install (revision {failed}, created by this run) failed: {why}; {done}",
            resource=resource,
            fix="fix the cause, then re-run provision-site",
        )
    target = _deployed(before)
    if target is None:
        raise PermanentError(
            f"{name}: the upgrade to revision {failed} failed: {why}; left as it is: no "
            "revision was deployed before it (the release was not created by this run)",
            resource=resource,
            fix="inspect `helm history`, then roll back or uninstall it by hand",
        )
    wait = ["--wait", "--timeout", f"{int(site.helm_timeout)}s"]
    rc, _, err = _helm(
        conn,
        ["rollback", site.release_name, str(target), "-n", site.namespace, *wait],
        timeout=site.helm_timeout + 30,
    )
    if rc != 0:
        raise PermanentError(
            f"{name}: the upgrade to revision {failed} failed: {why}; the rollback to "
            f"revision {target} failed too: {err}",
            resource=resource,
            fix=f"`helm rollback {site.release_name} {target} -n {site.namespace}` by hand",
        )
    now = _head(read_release_history(conn))
    raise PermanentError(
        f"{name}: the upgrade to revision {failed} failed: {why}; rolled back from revision "
        f"{failed} to revision {target} (now revision {now}, Ready)",
        resource=resource,
        fix="fix the chart version or values in the site block, then re-run provision-site",
    )


def release_status(conn: SiteConnection) -> SiteCheck:
    """site-status's release check, from the one reader."""
    try:
        fact = read_helm_release(conn)
    except PermanentError as exc:
        return SiteCheck(False, str(exc))
    return plans.release_check(fact, conn.site.release_name)


def _deployment_state(dep: Any) -> tuple[bool, str]:
    want = dep.spec.replicas if dep.spec and dep.spec.replicas is not None else 1
    st = dep.status
    ready = (st.ready_replicas or 0) if st else 0
    observed = (st.observed_generation or 0) if st else 0
    generation = (dep.metadata.generation or 0) if dep.metadata else 0
    if ready >= want and observed >= generation:
        return True, f"{ready}/{want} pods ready"
    conditions = (st.conditions or []) if st else []
    text = "; ".join(f"{c.type}={c.status} {c.message or ''}".strip() for c in conditions)
    return False, text or f"{ready}/{want} pods ready"


def deployment_ready(conn: SiteConnection) -> SiteCheck:
    """Whether the release's deployment has its pods ready (one read)."""
    site = conn.site
    resource = f"{conn.resource}: deployment {site.namespace}/{site.release_name}"
    try:
        dep = kube_call(
            lambda: conn.apps.read_namespaced_deployment(site.release_name, site.namespace),
            resource,
        )
    except ApiException as exc:
        if exc.status == 404:
            return SiteCheck(False, f"deployment {site.namespace}/{site.release_name} not found")
        raise classify(exc, resource=resource) from None
    return SiteCheck(*_deployment_state(dep))


def wait_deployment_ready(
    conn: SiteConnection, timeout: float | None = None, *, poll: float = 0.25
) -> None:
    """Wait (to its own deadline, default the site's ``ready_timeout``) for the release's
    deployment to be rolled out and ready; TransientError when the deadline passes."""
    site = conn.site
    timeout = site.ready_timeout if timeout is None else timeout
    resource = f"{conn.resource}: deployment {site.namespace}/{site.release_name}"
    deadline = time.monotonic() + timeout
    last = "not found"
    while True:
        try:
            dep = conn.apps.read_namespaced_deployment(site.release_name, site.namespace)
            ok, last = _deployment_state(dep)
            if ok:
                return
        except Exception as exc:
            if api_status(exc) == 404:
                last = "not found"
            else:
                err = classify(exc, resource=resource)
                if not isinstance(err, TransientError):
                    raise err from None
                last = str(err)
        if time.monotonic() >= deadline:
            raise TransientError(f"{resource} not ready after {timeout:.0f}s: {last}")
        time.sleep(poll)


def registry_host(conn: SiteConnection) -> str:
    """``"<clusterIP>:<port>"``: the name pods and the mirror use for the connected registry."""
    site = conn.site
    resource = f"{conn.resource}: service {site.namespace}/{site.release_name}"
    try:
        svc = kube_call(
            lambda: conn.core.read_namespaced_service(site.release_name, site.namespace),
            resource,
        )
    except ApiException as exc:
        raise classify(exc, resource=resource, fix="is the Helm release installed?") from None
    ip = svc.spec.cluster_ip if svc.spec else None
    if not ip or ip == "None":
        raise PermanentError("service has no cluster IP", resource=resource)
    # The port the release recorded: an http site migrated to https keeps "<ip>:80".
    port = helm_values.recorded_pull_port(_release_values(conn)) or tls.service_port(site.transport)
    return f"{ip}:{port}"
