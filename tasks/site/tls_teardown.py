"""Teardown of acr-edge's TLS material: the site CA and server certificate Secrets, and the CA
file on every node. Each is a read -> pure plan -> apply, run by converge.

Ownership, the markers provision writes (:mod:`model.tls`):

- a Secret under one of acr-edge's names (``<release>-acr-edge-ca``, ``-tls-a``, ``-tls-b``) is
  ours only when it carries the ``app.kubernetes.io/managed-by: acr-edge`` label; any other
  Secret under that name is left and the row says so;
- a node's CA file is ours only when its first line is acr-edge's header for this connected
  registry (another CR's, or the operator's, file at that path is left).

The Secrets go after the Helm release (nothing serves them any more); the CA files after the
node's registries.yaml no longer names them (containerd would fail a pull otherwise).
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException

from model import tls
from model.errors import classify
from model.plan import Change, converge
from model.result import StepResult
from tasks.site.connection import SiteConnection, kube_call
from tasks.site.node_mirror import SSH_WRITE_POLICY

DELETE = "delete"
SECRET_STEP = "delete-tls-secret"
CA_FILE_STEP = "delete-node-ca-file"


def tls_secret_names(release: str) -> list[str]:
    """Every Secret name acr-edge may have created for the site's TLS."""
    return [tls.ca_secret_name(release)] + [
        tls.server_secret_name(release, slot) for slot in tls.SERVER_SLOTS
    ]


# ---- pure plans -----------------------------------------------------------------------------


def plan_tls_secret_delete(labels: dict[str, str] | None, *, resource: str) -> Change:
    """``labels`` None: no such Secret."""
    if labels is None:
        return Change.none(SECRET_STEP, resource, "secret does not exist (nothing to delete)")
    if not all(labels.get(k) == v for k, v in tls.MANAGED_BY.items()):
        label = ",".join(f"{k}={v}" for k, v in tls.MANAGED_BY.items())
        return Change.none(
            SECRET_STEP,
            resource,
            f"secret carries no label {label}: not acr-edge's, left",
            owned=False,
        )
    return Change(SECRET_STEP, resource, DELETE, "TLS secret created by acr-edge (label)")


def plan_ca_file_delete(first_line: str | None, *, resource: str, cr_name: str) -> Change:
    """``first_line`` None: no such file."""
    if first_line is None:
        return Change.none(CA_FILE_STEP, resource, "CA file does not exist (nothing to delete)")
    if first_line.rstrip("\r") != tls.ca_file_header(cr_name):
        return Change.none(
            CA_FILE_STEP,
            resource,
            f"file's first line is not acr-edge's CA header for {cr_name}: not acr-edge's, left",
            owned=False,
        )
    return Change(
        CA_FILE_STEP, resource, DELETE, f"CA file written by acr-edge for {cr_name} (its header)"
    )


# ---- I/O --------------------------------------------------------------------------------------


def _read_labels(conn: SiteConnection, name: str, resource: str) -> dict[str, str] | None:
    namespace = conn.site.namespace
    try:
        secret = kube_call(lambda: conn.core.read_namespaced_secret(name, namespace), resource)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise classify(exc, resource=resource) from None
    # Only the metadata is kept: the data (a private key) is dropped here.
    return dict((secret.metadata.labels or {}) if secret.metadata else {})


def delete_tls_secret(conn: SiteConnection, name: str, *, dry_run: bool = False) -> StepResult:
    namespace = conn.site.namespace
    resource = f"{conn.resource}: secret {namespace}/{name}"

    def apply(change: Change) -> StepResult:
        try:
            kube_call(lambda: conn.core.delete_namespaced_secret(name, namespace), resource)
        except ApiException as exc:
            if exc.status != 404:
                raise classify(exc, resource=resource) from None
            return StepResult.from_change(change, writes=0, note="deleted meanwhile")
        return StepResult.from_change(change, writes=1)

    return converge(
        lambda: _read_labels(conn, name, resource),
        lambda labels: plan_tls_secret_delete(labels, resource=resource),
        apply,
        dry_run=dry_run,
    )


def node_ca_file(conn: SiteConnection) -> str:
    site = conn.site
    return tls.node_ca_path(site.registries_path, site.release_name)


def read_ca_first_line(conn: SiteConnection, path: str) -> str | None:
    raw = conn.ssh.read_file(path, sudo=conn.site.sudo)
    if raw is None:
        return None
    return raw.decode("utf-8", errors="replace").split("\n", 1)[0]


def delete_node_ca_file(conn: SiteConnection, cr_name: str, *, dry_run: bool = False) -> StepResult:
    site = conn.site
    path = node_ca_file(conn)
    resource = f"{conn.resource}: {path}"

    def apply(change: Change) -> StepResult:
        conn.ssh.run(["rm", "-f", "--", path], sudo=site.sudo).check(f"{resource}: remove")
        return StepResult.from_change(change, writes=1)

    return converge(
        lambda: read_ca_first_line(conn, path),
        lambda first: plan_ca_file_delete(first, resource=resource, cr_name=cr_name),
        apply,
        dry_run=dry_run,
        policy=SSH_WRITE_POLICY,
    )
