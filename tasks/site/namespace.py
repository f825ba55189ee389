"""The Kubernetes namespace a step needs: read, plan (tasks.site.plans), create."""

from __future__ import annotations

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from model.errors import classify
from model.plan import Change, converge
from model.result import StepResult
from tasks.site import plans
from tasks.site.connection import SiteConnection, kube_call


def namespace_resource(conn: SiteConnection, name: str) -> str:
    return f"{conn.resource}: namespace {name}"


def read_namespace(conn: SiteConnection, name: str) -> bool:
    """Whether namespace ``name`` exists."""
    resource = namespace_resource(conn, name)
    try:
        kube_call(lambda: conn.core.read_namespace(name), resource)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise classify(exc, resource=resource) from None
    return True


def create_namespace(conn: SiteConnection, name: str) -> int:
    """Create ``name``; the number of writes (0 when it was created meanwhile: the state we
    wanted). A transient failure propagates for the caller's re-read."""
    body = k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name))
    try:
        conn.core.create_namespace(body)
    except ApiException as exc:
        if exc.status == 409:
            return 0
        raise classify(
            exc, resource=namespace_resource(conn, name), fix="check the namespace name"
        ) from None
    return 1


def apply_namespace(conn: SiteConnection, change: Change) -> StepResult:
    writes = create_namespace(conn, str(change.payload))
    note = "" if writes else "created meanwhile"
    return StepResult.from_change(change, writes=writes, note=note)


def ensure_namespace(conn: SiteConnection, name: str, *, dry_run: bool = False) -> StepResult:
    """Create namespace ``name`` unless it exists."""
    resource = namespace_resource(conn, name)
    return converge(
        lambda: read_namespace(conn, name),
        lambda exists: plans.plan_namespace(exists, name, resource=resource),
        lambda change: apply_namespace(conn, change),
        dry_run=dry_run,
    )
