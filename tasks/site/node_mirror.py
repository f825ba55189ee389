"""One node's mirror, converged and proven: registries.yaml, hosts.toml, restart, canary.

The apply of a changed node is one unit that either leaves the node proven or leaves it as it
was: back up, write, restart if the plan says so, wait for the node Ready and the API, check
the hosts.toml containerd will use, and pull a canary pinned to the node. If any of that
fails the backup is restored (the file removed if it did not exist), a hosts.toml acr-edge
wrote is put back, the node is restarted again if it was restarted, and the error names the
node, what failed and what was restored. A restart runs at most once: only a connection
that drops before it is retried (converge reads again and finishes the change).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from model.errors import AcrEdgeError, PermanentError, TransientError, classify
from model.plan import Change, converge
from model.result import StepResult
from model.retry import RetryPolicy
from model.site import MirrorRoute, NodeAuth, PullSecretMeta, as_route
from tasks.site import canary, mirror, node_files, registries_yaml
from tasks.site.connection import SiteConnection, api_status
from tasks.site.node_mirror_plan import NodeMirrorFact, Proof, plan_node_mirror

log = logging.getLogger(__name__)
# Dropped connections before the restart are retried by converge's re-read; the restart and
# the proof are never repeated (a failure there rolls the node back instead).
SSH_WRITE_POLICY = RetryPolicy(attempts=4, base_delay=0.3, max_delay=5.0)


def _node(conn: SiteConnection) -> str:
    return conn.node.name if conn.node is not None else conn.site.name


def read_node_mirror(conn: SiteConnection, route: MirrorRoute | str) -> NodeMirrorFact:
    """registries.yaml (a regular file within the size limit, else refused), our host's
    hosts.toml, whether K3s has loaded the file since it was written, and the site CA file."""
    site, route = conn.site, as_route(route)
    host = route.host
    file = node_files.read_node_file(
        conn.ssh, site.registries_path, sudo=site.sudo, resource=conn.resource
    )
    hosts = mirror.read_hosts_toml(conn, host)
    pending = file.exists and (hosts is None or mirror.restart_pending(conn, host))
    ca_text = None
    if route.ca_file:
        ca = node_files.read_node_file(
            conn.ssh, route.ca_file, sudo=site.sudo, resource=conn.resource
        )
        ca_text = ca.text.get_secret_value() if ca.text is not None else None
    return NodeMirrorFact(
        text=file.text, exists=file.exists, hosts_toml=hosts, pending=pending, ca_text=ca_text
    )


def check_node_file(conn: SiteConnection) -> None:
    """Pre-flight: the node's registries.yaml is one acr-edge may edit (a regular file, within
    the limits, decodable as K3s decodes it); raises naming the node and the fix otherwise."""
    site = conn.site
    file = node_files.read_node_file(
        conn.ssh, site.registries_path, sudo=site.sudo, resource=conn.resource
    )
    if file.text is not None:
        registries_yaml.parse(
            file.text.get_secret_value(), path=f"{conn.resource}: {site.registries_path}"
        )


def plan_for(
    conn: SiteConnection,
    fact: NodeMirrorFact,
    route: MirrorRoute | str,
    auth: NodeAuth | None,
    node_ref: PullSecretMeta | None,
) -> Change:
    site = conn.site
    return plan_node_mirror(
        fact,
        route,
        auth,
        node=_node(conn),
        service=conn.service,
        path=site.registries_path,
        policy=getattr(site, "restart_policy", "auto"),
        node_model=site.auth_model == "node",
        node_ref=node_ref,
    )


@dataclass
class Undo:
    """What rolling this node back means, kept across converge's attempts: the state first
    read (the operator's file and hosts.toml) and the one backup of it. A retried attempt
    after a dropped connection must not back up acr-edge's own half-written state."""

    fact: NodeMirrorFact | None = None
    backup: str | None = None
    touched: set[str] = field(default_factory=set)
    restarted: bool = False
    ca_file: str | None = None


def ensure_node_mirror(
    conn: SiteConnection,
    host: MirrorRoute | str,
    auth: NodeAuth | None,
    proof: Proof,
    *,
    node_ref: PullSecretMeta | None = None,
    dry_run: bool = False,
) -> StepResult:
    """Converge one node; see the module. A connection that drops before the restart is
    retried (read and planned again: a write that landed is seen as done); a failure from the
    restart on rolls the node back and stops."""
    undo = Undo()

    def read() -> NodeMirrorFact:
        current = read_node_mirror(conn, host)
        if undo.fact is None:
            undo.fact = current
        return current

    return converge(
        read,
        lambda f: plan_for(conn, f, host, auth, node_ref),
        lambda change: apply_node_mirror(conn, change, host, proof, undo),
        dry_run=dry_run,
        policy=SSH_WRITE_POLICY,
    )


def apply_node_mirror(
    conn: SiteConnection, change: Change, host: MirrorRoute | str, proof: Proof, undo: Undo
) -> StepResult:
    site, shown, route = conn.site, change.shown, as_route(host)
    path, hosts_path = site.registries_path, mirror.hosts_toml_path(conn, route.host)
    stage = "backup"
    writes = 0
    try:
        if shown.get("ca_file") and shown.get("ca_text"):
            ca_file = str(shown["ca_file"])
            stage = f"writing the site CA {ca_file}"
            undo.touched.add("ca")
            undo.ca_file = ca_file
            directory = ca_file.rsplit("/", 1)[0] if "/" in ca_file else "."
            conn.ssh.run(["mkdir", "-p", "-m", "755", "--", directory], sudo=site.sudo).check(
                f"{conn.resource}: mkdir {directory}"
            )
            conn.ssh.write_file(ca_file, str(shown["ca_text"]).encode(), mode=0o644, sudo=site.sudo)
            writes += 1
        stat = node_files.stat_file(conn.ssh, path, sudo=site.sudo, resource=conn.resource)
        if shown.get("write_file"):
            if stat is not None and undo.backup is None and "registries" not in undo.touched:
                undo.backup = node_files.back_up(
                    conn.ssh, path, sudo=site.sudo, resource=conn.resource
                )
                writes += 1
            stage = f"writing {path}"
            undo.touched.add("registries")
            node_files.replace(conn.ssh, path, change.payload, like=stat, sudo=site.sudo)
            writes += 1
        if shown.get("hosts_toml"):
            stage = f"writing {hosts_path}"
            undo.touched.add("hosts")
            directory = hosts_path.rsplit("/", 1)[0]
            conn.ssh.run(["mkdir", "-p", "-m", "700", "--", directory], sudo=site.sudo).check(
                f"{conn.resource}: mkdir {directory}"
            )
            conn.ssh.write_file(hosts_path, str(shown["hosts_toml"]).encode(), sudo=site.sudo)
            writes += 1
    except TransientError:
        raise  # nothing is restarted yet: converge reads again and finishes the change
    except AcrEdgeError as exc:
        _fail(conn, stage, exc, path, hosts_path, undo)
    result = ""
    try:
        if shown.get("restart"):
            stage = f"restarting {conn.service}"
            undo.restarted = True
            restart_node(conn)
            writes += 1
        stage = f"checking {hosts_path}"
        mirror.verify_hosts_toml(conn, route)
        if proof.image is not None and not shown.get("restart_pending"):
            stage = "the canary pull pinned to the node"
            pulled = canary.canary_until_propagated(
                conn,
                proof.namespace,
                proof.image,
                proof.pull_secret,
                deadline_seconds=proof.deadline_seconds,
            )
            result = pulled.reason
    except AcrEdgeError as exc:
        _fail(conn, stage, exc, path, hosts_path, undo)
    return StepResult.from_change(
        change, writes=writes, backup=undo.backup, restarted=undo.restarted, canary=result
    )


def _fail(
    conn: SiteConnection, stage: str, exc: AcrEdgeError, path: str, hosts_path: str, undo: Undo
) -> NoReturn:
    restored = _roll_back(conn, path, hosts_path, undo)
    raise PermanentError(
        f"node {_node(conn)} failed while {stage}: {exc}. Rolled back: {restored}. "
        "The rollout stopped; the nodes after this one were not touched",
        resource=conn.resource,
        fix="fix the cause named above, then re-run (the converged nodes are skipped)",
    ) from None


def _roll_back(conn: SiteConnection, path: str, hosts_path: str, undo: Undo) -> str:
    """Undo what this step did; a failing undo step is reported, never hidden."""
    site, done = conn.site, []
    steps: list[tuple[str, Callable[[], str]]] = []
    if "registries" in undo.touched:
        steps.append(
            (
                "registries.yaml",
                lambda: node_files.restore(
                    conn.ssh, path, undo.backup, sudo=site.sudo, resource=conn.resource
                ),
            )
        )
    if "hosts" in undo.touched:
        old = undo.fact.hosts_toml if undo.fact is not None else None
        steps.append(("hosts.toml", _put_back(conn, hosts_path, old, 0o600)))
    if "ca" in undo.touched and undo.ca_file:
        old_ca = undo.fact.ca_text if undo.fact is not None else None
        steps.append(("the site CA file", _put_back(conn, undo.ca_file, old_ca, 0o644)))
    if undo.restarted:

        def again() -> str:
            restart_node(conn)
            return f"restarted {conn.service} again with the old file"

        steps.append(("restart", again))
    for what, step in steps:
        try:
            done.append(step())
        except Exception as exc:
            done.append(f"FAILED to undo {what}: {classify(exc, resource=conn.resource)}")
    return "; ".join(done) or "nothing had been changed"


def _put_back(conn: SiteConnection, path: str, old: str | None, mode: int) -> Callable[[], str]:
    """Undo of a file acr-edge wrote whole: its earlier text again, or removed if it had none."""
    site = conn.site
    if old is None:
        return lambda: node_files.restore(
            conn.ssh, path, None, sudo=site.sudo, resource=conn.resource
        )
    data = old.encode()

    def put_back() -> str:
        conn.ssh.write_file(path, data, mode=mode, sudo=site.sudo)
        return f"put back the previous {path}"

    return put_back


def restart_node(conn: SiteConnection) -> None:
    """``systemctl restart`` the node's service once, then wait for the node Ready."""
    site = conn.site
    resource = f"{conn.resource}: {conn.service}"
    started = time.monotonic()
    try:
        result = conn.ssh.run(
            ["systemctl", "restart", conn.service], sudo=site.sudo, timeout=site.restart_timeout
        )
    except TransientError as exc:
        log.warning("%s: %s; waiting for the node instead of restarting again", resource, exc)
    else:
        if result.exit_status != 0:
            raise PermanentError(
                f"systemctl restart {conn.service} failed: {result.error_text()}",
                resource=resource,
                fix=f"see `journalctl -u {conn.service}` on the node",
            )
    remaining = max(1.0, site.restart_timeout - (time.monotonic() - started))
    wait_node_ready(conn, conn.node.name if conn.node else None, remaining)


def wait_node_ready(
    conn: SiteConnection, name: str | None, timeout: float, *, poll: float = 0.25
) -> None:
    """Wait to the deadline for the API to answer and list ``name`` Ready (None: the site's
    own connection, not tied to one node: every node)."""
    resource = f"{conn.resource}: node Ready"
    deadline = time.monotonic() + timeout
    last = "API not answering"
    while True:
        try:
            if name is None:
                nodes = conn.core.list_node(_request_timeout=5).items
            else:
                nodes = [conn.core.read_node(name, _request_timeout=5)]
            waiting = [
                str(n.metadata.name if n.metadata else "?")
                for n in nodes
                if not any(
                    c.type == "Ready" and c.status == "True"
                    for c in ((n.status.conditions if n.status else None) or [])
                )
            ]
            if nodes and not waiting:
                return
            last = f"not Ready: {', '.join(waiting) or 'no nodes listed'}"
        except Exception as exc:
            err = classify(exc, resource=resource)
            # 401/403 right after a restart: the API server is up before its authenticator.
            if not isinstance(err, TransientError) and api_status(exc) not in (401, 403, 404):
                raise err from None
            last = str(err)
        if time.monotonic() >= deadline:
            raise TransientError(f"{resource}: not ready after {timeout:.0f}s: {last}")
        time.sleep(poll)
