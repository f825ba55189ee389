"""The cluster's nodes: listed through the Kubernetes API, each reached over its own SSH session.

A node is reached at the address :func:`tasks.site.node_plans.node_targets` chose, directly or
through the site's session as the jump host (ProxyJump; every hop's host key pinned). Each
node's key is verified against the site's known_hosts plus that node's override lines; a node
no line pins is trusted on first use only when the block allows it, and its line is recorded
on the node's connection and appended to ``site.known_hosts`` (the caller saves the block).
Every node is tried before anything fails, so one error lists every node that is unreachable.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes.client.exceptions import ApiException

from model.errors import AcrEdgeError, PermanentError, TransientError, classify
from model.site import NodeFact, NodeTarget
from tasks.site.connection import SiteConnection, kube_call
from tasks.site.ssh import SSH_POLICY, SshSession

log = logging.getLogger(__name__)

# K3s and RKE2 label servers with both; kubeadm-style clusters with control-plane only.
SERVER_ROLE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
# Connections opened at once: enough for a site's nodes without a thread per node of a big one.
_PARALLEL = 8

_UNREACHABLE_FIX = (
    "check that each node named is up and its SSH port answers (from the jump host when "
    "ssh_jump is on); a node reached at another address, port or user needs a nodes override "
    "on the site block; a refused host key must be verified out of band and pinned in "
    "known_hosts"
)


def node_fact(node: Any) -> NodeFact:
    """A ``V1Node`` as the facts acr-edge decides on (role, InternalIP, Ready, labels)."""
    labels = dict(node.metadata.labels or {})
    status = node.status
    addresses = (status.addresses if status else None) or []
    conditions = (status.conditions if status else None) or []
    return NodeFact(
        name=str(node.metadata.name),
        role="server" if any(key in labels for key in SERVER_ROLE_LABELS) else "agent",
        internal_ip=next((str(a.address) for a in addresses if a.type == "InternalIP"), ""),
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
    )


def read_nodes(conn: SiteConnection) -> list[NodeFact]:
    """Every node of the cluster, by name (one idempotent list call, retried when transient)."""
    try:
        listed = kube_call(lambda: conn.core.list_node(), f"{conn.site.resource}: list nodes")
    except ApiException as exc:  # a definite answer kube_call hands back (404/409/422)
        raise classify(exc, resource=conn.site.resource) from None
    except PermanentError as exc:
        raise PermanentError(
            f"cannot list the cluster's nodes: {exc}",
            resource=conn.site.resource,
            fix="the kubeconfig's user must be allowed to list nodes (cluster-scoped, read)",
        ) from None
    return sorted((node_fact(n) for n in listed.items or []), key=lambda f: f.name)


def _is_site_session(conn: SiteConnection, target: NodeTarget) -> bool:
    site = conn.site
    return not target.via_jump and (target.host, target.port, target.user) == (
        site.ssh_host,
        site.ssh_port,
        site.ssh_user,
    )


def _connect(conn: SiteConnection, target: NodeTarget, known_hosts: list[str]) -> SshSession:
    site = conn.site
    jump: SshSession | None = None
    if target.via_jump:
        if not isinstance(conn.ssh, SshSession):
            raise PermanentError(
                "the site's connection cannot be a jump host (it is not an SSH session)",
                resource=target.resource,
            )
        jump = conn.ssh
    return SshSession.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        private_key=site.ssh_private_key,
        passphrase=site.ssh_key_passphrase,
        known_hosts=[*known_hosts, *target.known_hosts],
        trust_on_first_use=site.trust_on_first_use,
        connect_timeout=site.connect_timeout,
        command_timeout=site.command_timeout,
        resource=target.resource,
        policy=SSH_POLICY.replace(attempts=getattr(site, "retry_attempts", None)),
        jump=jump,
    )


def _open_one(
    conn: SiteConnection, target: NodeTarget, known_hosts: list[str]
) -> SiteConnection | AcrEdgeError:
    """The node's connection, or the error that says why it cannot be had (never raises)."""
    if _is_site_session(conn, target):
        return conn.for_node(target, conn.ssh)  # the site's own session: already verified
    try:
        session = _connect(conn, target, known_hosts)
    except Exception as exc:
        return classify(exc, resource=target.resource)
    node_conn = conn.for_node(target, session, recorded_host_key=session.recorded_host_key)
    node_conn._closers.append(session.close)
    return node_conn


def _failure_text(target: NodeTarget, err: AcrEdgeError) -> str:
    text = str(err)
    return text if target.resource in text else f"{target.resource}: {text}"


def _unreachable(
    conn: SiteConnection, total: int, failures: list[tuple[NodeTarget, AcrEdgeError]]
) -> AcrEdgeError:
    listed = "; ".join(_failure_text(t, e) for t, e in failures)
    message = f"{len(failures)} of {total} nodes cannot be reached: {listed}."
    if any(isinstance(e, PermanentError) for _, e in failures):
        return PermanentError(message, resource=conn.site.resource, fix=_UNREACHABLE_FIX)
    # Only transient causes (down, timed out): a later run may reach them all.
    return TransientError(f"{conn.site.resource}: {message} Fix: {_UNREACHABLE_FIX}")


def open_nodes(conn: SiteConnection, targets: Sequence[NodeTarget]) -> list[SiteConnection]:
    """A connection per target, in the order given, each node's host key verified.

    The node at the site's own address reuses ``conn.ssh``; the others get their own session,
    through ``conn.ssh`` as the jump host when ``target.via_jump``. Every target is tried
    (a few at a time) before anything is raised: one Permanent/TransientError then names every
    node that could not be reached and the fix, and the sessions that did open are closed.
    Sessions opened here also close with ``conn``.
    """
    if not targets:
        return []
    # A snapshot: lines recorded on first use are appended below, in target order, only once
    # every node is reached (a failed run records nothing).
    known = list(conn.site.known_hosts)
    with ThreadPoolExecutor(max_workers=min(_PARALLEL, len(targets))) as pool:
        results = list(pool.map(lambda t: _open_one(conn, t, known), targets))
    opened = [r for r in results if isinstance(r, SiteConnection)]
    failures = [
        (t, r) for t, r in zip(targets, results, strict=True) if not isinstance(r, SiteConnection)
    ]
    if failures:
        for node_conn in opened:
            node_conn.close()
        raise _unreachable(conn, len(targets), failures)
    for node_conn in opened:
        conn._closers.append(node_conn.close)
        line = node_conn.recorded_host_key
        if line and line not in conn.site.known_hosts:
            conn.site.known_hosts.append(line)
            log.warning("%s: host key recorded on first use", node_conn.resource)
    return opened
