"""Teardown on the cluster: the pull secrets acr-edge wrote, then its Helm release.

Ownership markers, the same ones provision checks:

- a pull secret is ours when its annotations name acr-edge's client token
  (``acr-edge.io/token``); any other secret under that name is left;
- the Helm release is ours when its values carry acr-edge's ``acrEdge.valuesDigest`` record.

On every node, acr-edge's mirror entry (and node credential) come out of registries.yaml
(:mod:`tasks.site.registries_teardown`) and the hosts.toml K3s generated for the host is removed
(containerd reads it at every pull: no restart; K3s will not regenerate it from a file that no
longer names the host).

The release's namespace is never deleted: provision creates it without a marker, so acr-edge
cannot prove it created it (an operator may have made it first); the row says so.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from model import tls
from model.errors import PermanentError, TransientError, classify, redact
from model.plan import Change, converge
from model.result import StepResult
from model.site import ReleaseFact
from tasks.site import mirror, node_files, plans, registries_teardown
from tasks.site.commands import helm_argv
from tasks.site.connection import SiteConnection, kube_call
from tasks.site.helm_release import read_helm_release, registry_host
from tasks.site.node_mirror import SSH_WRITE_POLICY
from tasks.site.registries_teardown import TeardownEdit

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
    return Change(
        step,
        resource,
        DELETE,
        f"pull secret written by acr-edge for token {token} (the default service account's "
        "imagePullSecrets entry naming it is left: it carries no marker that acr-edge added it)",
    )


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
    argv = helm_argv(
        site.kubeconfig_path, ["uninstall", site.release_name, "-n", site.namespace, "--wait"]
    )
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


# ---- the nodes' registries.yaml ---------------------------------------------------------------

MAX_BACKUPS = 5  # the newest few backups beside the file are compared with the result


@dataclass(frozen=True)
class NodeFilesFact:
    text: SecretStr | None
    stat: node_files.FileStat | None
    hosts_toml: str | None
    backups: dict[str, SecretStr] = field(default_factory=dict, repr=False)
    ca_hosts_toml: str | None = None  # the https endpoint's (``<ip>:443``), when not ``host``


def node_registry_host(conn: SiteConnection) -> str | None:
    """The connected registry's ``ip:port`` while its service exists; None once it is gone."""
    try:
        return registry_host(conn)
    except PermanentError:
        return None


def _backups(conn: SiteConnection, path: str) -> dict[str, SecretStr]:
    site = conn.site
    folder, base = posixpath.split(path)
    listing = conn.ssh.run(["ls", "-1", "--", folder], sudo=site.sudo, idempotent=True)
    if listing.exit_status != 0:
        return {}
    names = sorted(n for n in listing.stdout.split() if n.startswith(f"{base}.bak-"))
    out: dict[str, SecretStr] = {}
    for name in names[-MAX_BACKUPS:]:
        full = posixpath.join(folder, name)
        raw = conn.ssh.read_file(full, sudo=site.sudo)
        if raw is not None and len(raw) <= node_files.MAX_BYTES:
            out[full] = SecretStr(raw.decode("utf-8", errors="replace"))
        del raw
    return out


def read_node_files(conn: SiteConnection, host: str) -> NodeFilesFact:
    site = conn.site
    file = node_files.read_node_file(
        conn.ssh, site.registries_path, sudo=site.sudo, resource=conn.resource
    )
    hosts = mirror.read_hosts_toml(conn, host)
    backups = _backups(conn, site.registries_path) if file.text is not None else {}
    ca_host = registries_teardown.ca_host_of(host)
    ca_hosts = mirror.read_hosts_toml(conn, ca_host) if ca_host != host else None
    return NodeFilesFact(file.text, file.stat, hosts, backups, ca_hosts)


def plan_node_files(
    fact: NodeFilesFact,
    host: str,
    *,
    resource: str,
    path: str,
    hosts_path: str,
    ca_file: str | None = None,
    ca_hosts_path: str | None = None,
) -> Change:
    """One row per node: what comes out of registries.yaml and hosts.toml, and why."""
    step = "node-mirror-teardown"
    text = fact.text.get_secret_value() if fact.text is not None else None
    backups = {p: v.get_secret_value() for p, v in fact.backups.items()}
    reg = registries_teardown.remove_ours(
        text, host, path=f"{resource}: {path}", backups=backups, ca_file=ca_file
    )
    hosts = registries_teardown.remove_hosts_toml(fact.hosts_toml, host, path=hosts_path)
    ca_hosts = _ca_hosts_edit(fact, reg, host, ca_hosts_path)
    del text, backups
    reason = "; ".join(r.reason for r in (reg, hosts, ca_hosts) if r is not None)
    if not (reg.changed or hosts.changed or (ca_hosts is not None and ca_hosts.changed)):
        return Change.none(step, resource, reason)
    return Change(
        step,
        resource,
        DELETE if reg.changed and reg.content is None else "write",
        reason,
        payload=(reg, hosts, fact.stat, ca_hosts, ca_hosts_path),
        shown={"backup": reg.backup or "", "restart": "not needed"},
    )


def _ca_hosts_edit(
    fact: NodeFilesFact, reg: TeardownEdit, host: str, ca_hosts_path: str | None
) -> TeardownEdit | None:
    """The https endpoint's hosts.toml (K3s writes one for a configs-only host) goes once the
    file no longer names that host; while anything else there names it, it stays."""
    ca_host = registries_teardown.ca_host_of(host)
    if ca_host == host or ca_hosts_path is None or fact.ca_hosts_toml is None:
        return None
    left = reg.content.get_secret_value() if reg.content is not None else ""
    named = registries_teardown.names_host(left, ca_host) if left.strip() else False
    if named:
        return TeardownEdit(False, None, f"{ca_hosts_path} left: registries.yaml still names it")
    return registries_teardown.remove_hosts_toml(fact.ca_hosts_toml, ca_host, path=ca_hosts_path)


def _apply_node_files(conn: SiteConnection, change: Change, hosts_path: str) -> StepResult:
    site = conn.site
    reg, hosts, stat, ca_hosts, ca_hosts_path = change.payload
    assert isinstance(reg, TeardownEdit) and isinstance(hosts, TeardownEdit)
    writes = 0
    if reg.changed:
        if reg.content is None:
            conn.ssh.run(["rm", "-f", "--", site.registries_path], sudo=site.sudo).check(
                f"{conn.resource}: remove {site.registries_path}"
            )
        else:
            node_files.replace(
                conn.ssh, site.registries_path, reg.content, like=stat, sudo=site.sudo
            )
        writes += 1
    if hosts.changed:
        conn.ssh.run(["rm", "-f", "--", hosts_path], sudo=site.sudo).check(
            f"{conn.resource}: remove {hosts_path}"
        )
        writes += 1
    if isinstance(ca_hosts, TeardownEdit) and ca_hosts.changed and ca_hosts_path:
        conn.ssh.run(["rm", "-f", "--", ca_hosts_path], sudo=site.sudo).check(
            f"{conn.resource}: remove {ca_hosts_path}"
        )
        writes += 1
    return StepResult.from_change(change, writes=writes)


def remove_node_mirror(
    conn: SiteConnection, host: str | None, *, dry_run: bool = False
) -> StepResult:
    """Take acr-edge's entries out of this node's files (``host`` None: the service is gone,
    so there is no host to name: nothing is touched and the row says so)."""
    site = conn.site
    resource = f"{conn.resource}: {site.registries_path}"
    if host is None:
        return StepResult.from_change(
            Change.none(
                "node-mirror-teardown",
                resource,
                "the connected registry's service is gone, so its mirror host is unknown: "
                "registries.yaml left (a teardown removes node entries before the release)",
            ),
            writes=0,
        )
    hosts_path = mirror.hosts_toml_path(conn, host)
    ca_host = registries_teardown.ca_host_of(host)
    ca_hosts_path = mirror.hosts_toml_path(conn, ca_host) if ca_host != host else None
    ca_file = tls.node_ca_path(site.registries_path, site.release_name)
    return converge(
        lambda: read_node_files(conn, host),
        lambda fact: plan_node_files(
            fact,
            host,
            resource=conn.resource,
            path=site.registries_path,
            hosts_path=hosts_path,
            ca_file=ca_file,
            ca_hosts_path=ca_hosts_path,
        ),
        lambda change: _apply_node_files(conn, change, hosts_path),
        dry_run=dry_run,
        policy=SSH_WRITE_POLICY,
    )
