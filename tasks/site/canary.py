"""The canary: a short-lived pod that proves the node pulls through the mirror.

:func:`run_canary` is one attempt (always deletes its pod); :func:`canary_until_propagated`
retries, bounded, while a freshly generated password has not reached the connected registry
yet (it arrives at its next sync); :func:`ensure_canary` is provision-site's step, planned so
a dry run lists it without creating a pod.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from model.errors import TransientError, classify
from model.plan import Change, converge
from model.result import StepResult
from model.retry import RetryPolicy
from model.site import CanaryResult
from tasks.site import plans
from tasks.site.connection import SiteConnection, kube_call

log = logging.getLogger("acr_edge.canary")

# Its own bounded loop is the propagation wait: converge must not run it again.
_ONCE = RetryPolicy(attempts=1)
_PULL_FAILED = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")


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
            # A node's own connection pins the pod to it: the proof is that node's pull.
            node_selector={"kubernetes.io/hostname": conn.node.name} if conn.node else None,
            containers=[k8s.V1Container(name="canary", image=image, command=["/bin/true"])],
            image_pull_secrets=[k8s.V1LocalObjectReference(name=pull_secret)]
            if pull_secret
            else None,
        ),
    )
    try:
        # A fresh random name: a retried create can only meet its own pod (409, kept).
        kube_call(lambda: conn.core.create_namespaced_pod(namespace, pod), where)
    except ApiException as exc:
        if exc.status != 409:
            raise classify(exc, resource=where) from None
    try:
        return _watch(conn, namespace, name, image, timeout, poll, where)
    finally:
        try:
            kube_call(
                lambda: conn.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0),
                where,
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("%s: could not delete: %s", where, exc.reason)
        except Exception as exc:  # the verdict matters more than the cleanup
            log.warning("%s: could not delete: %s", where, exc)


def _watch(
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
        pod = kube_call(lambda: conn.core.read_namespaced_pod(name, namespace), where)
        status = pod.status
        for cs in (status.container_statuses or []) if status else []:
            if cs.image_id:
                return CanaryResult(True, f"pulled {image}", pod=name)
            waiting = cs.state.waiting if cs.state else None
            if waiting and waiting.reason in _PULL_FAILED:
                reason = f"{waiting.reason}: {waiting.message or ''}".strip()
                return CanaryResult(False, reason, pod=name)
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


def canary_until_propagated(
    conn: SiteConnection,
    namespace: str,
    image: str,
    pull_secret: str | None,
    *,
    deadline_seconds: float,
    attempt_timeout: float = 30.0,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> CanaryResult:
    """Run canaries until one pulls, or raise TransientError after ``deadline_seconds``.

    This bounded loop is the propagation wait; nothing retries it again."""
    start = clock()
    attempts = 0
    while True:
        attempts += 1
        remaining = deadline_seconds - (clock() - start)
        result = run_canary(
            conn, namespace, image, pull_secret, timeout=max(1.0, min(attempt_timeout, remaining))
        )
        if result.ok:
            return CanaryResult(True, f"{result.reason} (attempt {attempts})", result.pod)
        if clock() - start >= deadline_seconds:
            raise TransientError(
                f"{conn.resource}: canary pull of {image} with {pull_secret} still failing after "
                f"{deadline_seconds:g}s ({attempts} attempts): {result.reason}"
            )
        log.info("canary attempt %d failed (%s); retrying", attempts, result.reason)
        sleep(poll)


def ensure_canary(
    conn: SiteConnection,
    namespace: str,
    image: str | None,
    pull_secret: str | None,
    *,
    deadline_seconds: float,
    dry_run: bool = False,
) -> StepResult:
    """provision-site's canary step: pull ``image`` (None: nothing synced yet, skipped) until
    it propagates; the result's ``details["result"]`` says how it went. A dry run only plans.
    """
    resource = f"{conn.resource}: canary {namespace}"

    def apply(change: Change) -> StepResult:
        result = canary_until_propagated(
            conn, namespace, str(image), pull_secret, deadline_seconds=deadline_seconds
        )
        return StepResult.from_change(change, writes=0, result=result.reason)

    return converge(
        lambda: None,
        lambda _: plans.plan_canary(namespace, image, pull_secret, resource=resource),
        apply,
        dry_run=dry_run,
        policy=_ONCE,
    )
