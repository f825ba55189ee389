"""Teardown on the cluster: the pull secrets acr-edge wrote, then its Helm release.

Ownership markers, the same ones provision checks:

- a pull secret is ours when its annotations name acr-edge's client token
  (``acr-edge.io/token``); any other secret under that name is left;
- the Helm release is ours when its values carry acr-edge's ``acrEdge.valuesDigest`` record.

The release's namespace is never deleted: provision creates it without a marker, so acr-edge
cannot prove it created it (an operator may have made it first); the row says so.
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from model.errors import PermanentError, TransientError, classify, redact
from model.plan import Change, converge
from model.result import StepResult
from model.site import ReleaseFact
from tasks.site import plans
from tasks.site.connection import SiteConnection, kube_call
from tasks.site.helm_release import read_helm_release

DELETE = "delete"
UNINSTALL = "uninstall"


# ---- pure plans -----------------------------------------------------------------------------


def plan_pull_secret_delete(
    annotations: dict[str, str] | None, *, resource: str, token: str
) -> Change:
    """``annotations`` None: no such secret."""
    step = "delete-pull-secret"
    if annotations is None:
        return Change.none(step, resource, "pull secret does not exist (nothing to delete)")
    meta = plans.meta_of(annotations)
    if meta is None or meta.token != token:
        return Change.none(
            step,
            resource,
            f"secret carries no acr-edge annotation for token {token}: not acr-edge's, left",
            owned=False,
        )
    return Change(step, resource, DELETE, f"pull secret written by acr-edge for token {token}")


def plan_release_uninstall(fact: ReleaseFact, *, resource: str) -> Change:
    step = "uninstall-helm-release"
    if fact.status is None:
        return Change.none(step, resource, "helm release does not exist (nothing to uninstall)")
    if fact.digest is None:
        return Change.none(
            step,
            resource,
            "helm release carries no acrEdge values record: not installed by acr-edge, left",
            owned=False,
        )
    return Change(step, resource, UNINSTALL, "helm release was installed by acr-edge")


def namespace_row(namespace: str, resource: str) -> Change:
    return Change.none(
        "delete-namespace",
        resource,
        f"namespace {namespace} left: acr-edge cannot prove it created it (provision writes no "
        "ownership marker on it)",
        owned=False,
    )


# ---- I/O --------------------------------------------------------------------------------------


def _read_annotations(conn: SiteConnection, namespace: str, name: str) -> dict[str, str] | None:
    resource = f"{conn.resource}: secret {namespace}/{name}"
    try:
        secret = kube_call(lambda: conn.core.read_namespaced_secret(name, namespace), resource)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise classify(exc, resource=resource) from None
    return dict((secret.metadata.annotations or {}) if secret.metadata else {})


def _delete_secret(conn: SiteConnection, namespace: str, name: str, change: Change) -> StepResult:
    try:
        conn.core.delete_namespaced_secret(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return StepResult.from_change(change, writes=0, note="deleted meanwhile")
        raise classify(exc, resource=change.resource) from None
    return StepResult.from_change(change, writes=1)


def delete_pull_secret(
    conn: SiteConnection, namespace: str, name: str, token: str, *, dry_run: bool = False
) -> StepResult:
    resource = f"{conn.resource}: secret {namespace}/{name}"
    return converge(
        lambda: _read_annotations(conn, namespace, name),
        lambda ann: plan_pull_secret_delete(ann, resource=resource, token=token),
        lambda change: _delete_secret(conn, namespace, name, change),
        dry_run=dry_run,
    )


def _uninstall(conn: SiteConnection, change: Change) -> StepResult:
    site = conn.site
    argv = [
        "env",
        f"KUBECONFIG={site.kubeconfig_path}",
        "helm",
        "uninstall",
        site.release_name,
        "-n",
        site.namespace,
        "--wait",
    ]
    result = conn.ssh.run(argv, sudo=site.sudo, timeout=site.command_timeout)
    if result.exit_status == 0:
        return StepResult.from_change(change, writes=1)
    err = redact(result.error_text(), ())
    if "not found" in err.lower():
        return StepResult.from_change(change, writes=0, note="uninstalled meanwhile")
    if "timed out" in err.lower() or "connection refused" in err.lower():
        raise TransientError(f"{change.resource}: helm uninstall failed: {err}")
    raise PermanentError(f"helm uninstall failed: {err}", resource=change.resource)


def uninstall_release(conn: SiteConnection, *, dry_run: bool = False) -> StepResult:
    resource = plans.release_resource(conn.site)
    return converge(
        lambda: read_helm_release(conn),
        lambda fact: plan_release_uninstall(fact, resource=resource),
        lambda change: _uninstall(conn, change),
        dry_run=dry_run,
    )


def namespace_left(conn: SiteConnection) -> StepResult:
    ns = conn.site.namespace
    return StepResult.from_change(namespace_row(ns, f"{conn.resource}: namespace {ns}"), writes=0)
