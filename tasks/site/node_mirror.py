"""One node's mirror, converged and proven: registries.yaml, hosts.toml, restart, canary.

The apply of a changed node is one unit that either leaves the node proven or leaves it as it
was: back up, write, restart if the plan says so, wait for the node Ready and the API, check
the hosts.toml containerd will use, and pull a canary pinned to the node. If any of that
fails the backup is restored (the file removed if it did not exist), a hosts.toml acr-edge
wrote is put back, the node is restarted again if it was restarted, and the error names the
node, what failed and what was restored. Never retried: a restart runs at most once.
"""

from __future__ import annotations

import logging
import time

from model.errors import AcrEdgeError, PermanentError, TransientError, classify
from model.plan import Change, converge
from model.result import StepResult
from model.retry import RetryPolicy, call_with_retry
from model.site import NodeAuth, PullSecretMeta
from tasks.site import canary, mirror, node_files, registries_yaml
from tasks.site.connection import SiteConnection, api_status
from tasks.site.node_mirror_plan import NodeMirrorFact, Proof, plan_node_mirror

log = logging.getLogger(__name__)
ONCE = RetryPolicy(attempts=1)


def _node(conn: SiteConnection) -> str:
    return conn.node.name if conn.node is not None else conn.site.name


def read_node_mirror(conn: SiteConnection, host: str) -> NodeMirrorFact:
    """registries.yaml (a regular file within the size limit, else refused), our host's
    hosts.toml and whether K3s has loaded the file since it was written."""
    site = conn.site
    file = node_files.read_node_file(
        conn.ssh, site.registries_path, sudo=site.sudo, resource=conn.resource
    )
    path = mirror.hosts_toml_path(conn, host)
    raw = call_with_retry(
        lambda: conn.ssh.read_file(path, sudo=site.sudo), what=f"{conn.resource}: {path}"
    )
    hosts = raw.decode(errors="replace") if raw is not None else None
    pending = file.exists and (hosts is None or mirror.restart_pending(conn, host))
    return NodeMirrorFact(text=file.text, exists=file.exists, hosts_toml=hosts, pending=pending)


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
    host: str,
    auth: NodeAuth | None,
    node_ref: PullSecretMeta | None,
) -> Change:
    site = conn.site
    return plan_node_mirror(
        fact,
        host,
        auth,
        node=_node(conn),
        service=conn.service,
        path=site.registries_path,
        policy=getattr(site, "restart_policy", "auto"),
        node_model=site.auth_model == "node",
        node_ref=node_ref,
    )


def ensure_node_mirror(
    conn: SiteConnection,
    host: str,
    auth: NodeAuth | None,
    proof: Proof,
    *,
    fact: NodeMirrorFact | None = None,
    node_ref: PullSecretMeta | None = None,
    dry_run: bool = False,
) -> StepResult:
    """Converge one node (``fact``: already read by the run's pre-flight); see the module."""
    preread: list[NodeMirrorFact] = [fact] if fact is not None else []
    seen: list[NodeMirrorFact] = []

    def read() -> NodeMirrorFact:
        current = preread.pop() if preread else read_node_mirror(conn, host)
        seen.append(current)  # the apply rolls back to the latest read
        return current

    return converge(
        read,
        lambda f: plan_for(conn, f, host, auth, node_ref),
        lambda change: apply_node_mirror(conn, change, host, proof, seen[-1]),
        dry_run=dry_run,
        policy=ONCE,
    )


def apply_node_mirror(
    conn: SiteConnection, change: Change, host: str, proof: Proof, fact: NodeMirrorFact
) -> StepResult:
    site, shown = conn.site, change.shown
    path, hosts_path = site.registries_path, mirror.hosts_toml_path(conn, host)
    backup: str | None = None
    touched: list[str] = []
    restarted = False
    stage = "backup"
    try:
        stat = node_files.stat_file(conn.ssh, path, sudo=site.sudo, resource=conn.resource)
        if shown.get("write_file"):
            if stat is not None:
                backup = node_files.back_up(conn.ssh, path, sudo=site.sudo, resource=conn.resource)
            stage = f"writing {path}"
            touched.append("registries")
            node_files.replace(conn.ssh, path, change.payload, like=stat, sudo=site.sudo)
        if shown.get("hosts_toml"):
            stage = f"writing {hosts_path}"
            touched.append("hosts")
            directory = hosts_path.rsplit("/", 1)[0]
            conn.ssh.run(["mkdir", "-p", "-m", "700", "--", directory], sudo=site.sudo).check(
                f"{conn.resource}: mkdir {directory}"
            )
            conn.ssh.write_file(hosts_path, str(shown["hosts_toml"]).encode(), sudo=site.sudo)
        if shown.get("restart"):
            stage = f"restarting {conn.service}"
            restarted = True
            restart_node(conn)
        stage = f"checking {hosts_path}"
        mirror.verify_hosts_toml(conn, host)
        result = ""
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
        restored = _roll_back(conn, fact, path, hosts_path, backup, touched, restarted)
        raise PermanentError(
            f"node {_node(conn)} failed while {stage}: {exc}. Rolled back: {restored}. "
            "The rollout stopped; the nodes after this one were not touched",
            resource=conn.resource,
            fix="fix the cause named above, then re-run (the converged nodes are skipped)",
        ) from None
    writes = len(touched) + (1 if backup else 0) + (1 if restarted else 0)
    return StepResult.from_change(
        change, writes=writes, backup=backup, restarted=restarted, canary=result
    )


def _roll_back(
    conn: SiteConnection,
    fact: NodeMirrorFact,
    path: str,
    hosts_path: str,
    backup: str | None,
    touched: list[str],
    restarted: bool,
) -> str:
    """Undo what this apply did; a failing undo step is reported, never hidden."""
    site, done = conn.site, []
    steps: list[tuple[str, object]] = []
    if "registries" in touched:
        steps.append(
            (
                "registries.yaml",
                lambda: node_files.restore(
                    conn.ssh, path, backup, sudo=site.sudo, resource=conn.resource
                ),
            )
        )
    if "hosts" in touched:
        if fact.hosts_toml is None:
            steps.append(
                (
                    "hosts.toml",
                    lambda: node_files.restore(
                        conn.ssh, hosts_path, None, sudo=site.sudo, resource=conn.resource
                    ),
                )
            )
        else:
            old = fact.hosts_toml.encode()

            def put_back() -> str:
                conn.ssh.write_file(hosts_path, old, sudo=site.sudo)
                return f"put back the previous {hosts_path}"

            steps.append(("hosts.toml", put_back))
    if restarted:

        def again() -> str:
            restart_node(conn)
            return f"restarted {conn.service} again with the old file"

        steps.append(("restart", again))
    for what, undo in steps:
        try:
            done.append(str(undo()))  # type: ignore[operator]
        except Exception as exc:
            done.append(f"FAILED to undo {what}: {classify(exc, resource=conn.resource)}")
    return "; ".join(done) or "nothing had been changed"


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
    wait_node_ready(conn, _node(conn), remaining)


def wait_node_ready(conn: SiteConnection, name: str, timeout: float, *, poll: float = 0.25) -> None:
    """Wait to the deadline for the API to answer and list ``name`` Ready."""
    resource = f"{conn.resource}: node Ready"
    deadline = time.monotonic() + timeout
    last = "API not answering"
    while True:
        try:
            node = conn.core.read_node(name, _request_timeout=5)
            conditions = (node.status.conditions if node.status else None) or []
            if any(c.type == "Ready" and c.status == "True" for c in conditions):
                return
            last = f"{name} not Ready"
        except Exception as exc:
            err = classify(exc, resource=resource)
            # 401/403 right after a restart: the API server is up before its authenticator.
            if not isinstance(err, TransientError) and api_status(exc) not in (401, 403, 404):
                raise err from None
            last = str(err)
        if time.monotonic() >= deadline:
            raise TransientError(f"{resource}: not ready after {timeout:.0f}s: {last}")
        time.sleep(poll)
