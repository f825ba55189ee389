"""The node's registry mirror: registries.yaml, the distribution restart, hosts.toml.

One reader of registries.yaml (:func:`read_registries_yaml`) for provision, rotation, status
and the dry run; the merge decision is pure (:mod:`tasks.site.registries_yaml`,
:func:`tasks.site.plans.plan_registries_yaml`). A restart is its own step, planned from
whether the file changed in this run or was never loaded, and never retried: a slow node gets
exactly one ``systemctl restart`` per changed file (the wait after it runs to its own
deadline and fails the step, it does not restart again).
"""

from __future__ import annotations

import logging
import time
import tomllib
from datetime import UTC, datetime
from urllib.parse import urlsplit

from pydantic import SecretStr

from model.errors import AcrEdgeError, PermanentError, TransientError, classify
from model.plan import Change, converge
from model.result import StepResult
from model.retry import RetryPolicy, call_with_retry
from model.site import NodeAuth, PullSecretMeta, SiteCheck, SiteSettings
from tasks.site import node_files, plans, registries_yaml
from tasks.site.connection import SiteConnection, api_status
from tasks.site.ssh import SshSession

log = logging.getLogger(__name__)

# A restart is applied once: a re-read after a failed restart would see hosts.toml still older
# than the file and restart again, which is exactly the stacking to avoid.
ONCE = RetryPolicy(attempts=1)


def _resource(conn: SiteConnection) -> str:
    return f"{conn.resource}: {conn.site.registries_path}"


def read_registries_yaml(conn: SiteConnection) -> SecretStr | None:
    """The node's registries.yaml text (None: no file); a SecretStr, it may hold passwords.
    A link, a directory, an oversized or undecodable file is refused (never followed or
    quoted): :func:`tasks.site.node_files.read_node_file`."""
    site = conn.site
    return node_files.read_node_file(
        conn.ssh, site.registries_path, sudo=site.sudo, resource=conn.resource
    ).text


def apply_registries_yaml(conn: SiteConnection, change: Change) -> StepResult:
    """Back up the current file beside it, then write the planned content (mode 0600)."""
    site = conn.site
    path = site.registries_path
    writes = 0
    backup = None
    if change.shown.get("replaces"):
        backup = f"{path}.bak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
        conn.ssh.run(["cp", "-p", "--", path, backup], sudo=site.sudo).check(
            f"{change.resource}: backup", fix="check free space and permissions on the node"
        )
        writes += 1
    conn.ssh.write_file(path, change.payload, mode=0o600, sudo=site.sudo)
    writes += 1
    return StepResult.from_change(change, writes=writes, backup=backup)


def ensure_registries_yaml(
    conn: SiteConnection,
    host: str,
    auth: NodeAuth | None = None,
    *,
    node_ref: PullSecretMeta | None = None,
    dry_run: bool = False,
) -> StepResult:
    """The http mirror for ``host`` (node model: with ``auth``) in registries.yaml; a file K3s
    would reject is refused untouched. A dry run of the node model passes ``node_ref`` (the
    slot the node should hold) instead of ``auth``. The restart is :func:`ensure_restart`."""
    site = conn.site
    return converge(
        lambda: read_registries_yaml(conn),
        lambda text: plans.plan_registries_yaml(
            text,
            host,
            auth,
            resource=_resource(conn),
            path=site.registries_path,
            node_ref=node_ref,
        ),
        lambda change: apply_registries_yaml(conn, change),
        dry_run=dry_run,
    )


def hosts_toml_path(conn: SiteConnection, host: str) -> str:
    return f"{conn.site.hosts_dir.rstrip('/')}/{host}/hosts.toml"


def restart_pending(conn: SiteConnection, host: str) -> bool:
    """True when registries.yaml is newer than the hosts.toml K3s generated for ``host`` at its
    last start (K3s regenerates certs.d at every start), or that hosts.toml is missing."""
    site = conn.site
    hosts = hosts_toml_path(conn, host)

    def compare() -> bool:
        result = conn.ssh.run(
            ["find", site.registries_path, "-newer", hosts, "-print"],
            sudo=site.sudo,
            timeout=site.command_timeout,
            idempotent=True,
        )
        if result.exit_status != 0:
            if "no such file" in result.stderr.lower():
                return True
            raise TransientError(
                f"{conn.resource}: cannot compare {site.registries_path} with {hosts}: "
                f"{result.error_text()}"
            )
        return bool(result.stdout.strip())

    return call_with_retry(compare, what=_resource(conn), attempts=3)


def apply_restart(conn: SiteConnection, host: str, change: Change) -> StepResult:
    if not restart_distribution(conn) and restart_pending(conn, host):
        # The connection dropped before the restart command could run: K3s has not
        # regenerated hosts.toml since the file was written. A later run restarts it.
        raise TransientError(
            f"{conn.resource}: {conn.site.service_name} restart not confirmed after a dropped "
            "SSH connection; the next run restarts it"
        )
    verify_hosts_toml(conn, host)
    return StepResult.from_change(change, writes=1)


def ensure_restart(
    conn: SiteConnection, host: str, *, file_changed: bool, dry_run: bool = False
) -> StepResult:
    """Restart the distribution once if registries.yaml changed in this run (``file_changed``:
    the registries-yaml step wrote or plans to write) or was never loaded; then wait for the
    nodes and check hosts.toml routes ``host`` over http. Never retried (see ``ONCE``)."""
    site = conn.site
    return converge(
        lambda: False if file_changed else restart_pending(conn, host),
        lambda pending: plans.plan_restart(
            file_changed=file_changed,
            pending=pending,
            resource=f"{conn.resource}: {site.service_name}",
            service=site.service_name,
            path=site.registries_path,
        ),
        lambda change: apply_restart(conn, host, change),
        dry_run=dry_run,
        policy=ONCE,
    )


def restart_distribution(conn: SiteConnection) -> bool:
    """``systemctl restart`` K3s/RKE2 once, then wait (bounded) for the API and every node.

    False when the SSH connection dropped under the command (whether it ran is unknown)."""
    site = conn.site
    resource = f"{conn.resource}: {site.service_name}"
    started = time.monotonic()
    try:
        result = conn.ssh.run(
            ["systemctl", "restart", site.service_name],
            sudo=site.sudo,
            timeout=site.restart_timeout,
        )
    except TransientError as exc:
        # The connection dropped under the command: it may well have run. Not a second
        # restart: wait for the nodes as after any restart; verify_hosts_toml then shows
        # whether K3s loaded the file (a later run's restart_pending does too).
        log.warning("%s: %s; waiting for the nodes instead of restarting again", resource, exc)
        wait_nodes_ready(conn, max(1.0, site.restart_timeout - (time.monotonic() - started)))
        return False
    if result.exit_status != 0:
        raise PermanentError(
            f"systemctl restart {site.service_name} failed: {result.error_text()}",
            resource=resource,
            fix=f"see `journalctl -u {site.service_name}` on the node; a rejected "
            f"{site.registries_path} keeps it down (a backup sits beside it)",
        )
    remaining = max(1.0, site.restart_timeout - (time.monotonic() - started))
    wait_nodes_ready(conn, remaining)
    return True


def wait_nodes_ready(conn: SiteConnection, timeout: float, *, poll: float = 0.25) -> None:
    """Wait to the deadline for the API to list every node Ready; TransientError after it."""
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
            # 401/403 right after a restart: the API server is up before its authenticator.
            if not isinstance(err, TransientError) and api_status(exc) not in (401, 403):
                raise err from None
            last = str(err)
        if time.monotonic() >= deadline:
            raise TransientError(f"{resource}: not ready after {timeout:.0f}s: {last}")
        time.sleep(poll)


def verify_hosts_toml(conn: SiteConnection, host: str) -> None:
    """containerd's hosts.toml for ``host`` must route to the http endpoint.

    Catches K3s versions that regenerate the mirror as https despite the explicit scheme.
    """
    site = conn.site
    path = hosts_toml_path(conn, host)
    resource = f"{conn.resource}: {path}"
    raw = call_with_retry(
        lambda: conn.ssh.read_file(path, sudo=site.sudo), what=resource, attempts=3
    )
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


def hosts_toml_check(conn: SiteConnection, host: str) -> SiteCheck:
    try:
        verify_hosts_toml(conn, host)
    except PermanentError as exc:
        return SiteCheck(False, str(exc))
    return SiteCheck(True, f"hosts.toml routes {host} over http")


def mirror_check(conn: SiteConnection, host: str) -> SiteCheck:
    """site-status's mirror check, from the one reader."""
    path = conn.site.registries_path
    return plans.mirror_check(read_registries_yaml(conn), host, path=path)


def read_node_credential(conn: SiteConnection, host: str) -> PullSecretMeta | None:
    """Which client-token password ``configs.<host>.auth`` holds (node auth model), from the
    header acr-edge writes with it; None without a (trustworthy) record. No value is read out."""
    path = conn.site.registries_path
    text = read_registries_yaml(conn)
    raw = None if text is None else text.get_secret_value()
    record = registries_yaml.node_credential(raw, host, path=path)
    if record is None and raw is not None and registries_yaml.HEADER_PREFIX in raw:
        log.warning(
            "%s: %s has an acr-edge header for %s that does not match its credential; ignored",
            conn.resource,
            path,
            host,
        )
    del raw, text
    if record is None:
        return None
    return PullSecretMeta(token=record.token, slot=record.slot, created=record.created)


def read_node_password(conn: SiteConnection, host: str) -> tuple[str, SecretStr] | None:
    """(username, password) of registries.yaml ``configs.<host>.auth``; None if absent."""
    text = read_registries_yaml(conn)
    raw = None if text is None else text.get_secret_value()
    del text
    return plans.node_password(raw, host, path=conn.site.registries_path)


def service_state(site: SiteSettings) -> SiteCheck:
    """Is the distribution's service running on the site's SSH host? Asked over SSH alone, for
    when the API does not answer: a K3s that refused its registries.yaml is down, and the
    status must say that rather than only that TLS to the API failed."""
    try:
        with SshSession.for_site(site) as ssh:
            result = ssh.run(
                ["systemctl", "is-active", site.service_name], sudo=site.sudo, idempotent=True
            )
    except AcrEdgeError as exc:
        return SiteCheck(False, f"cannot ask over SSH either: {exc}")
    state = result.stdout.strip() or "unknown"
    if result.exit_status == 0 and state == "active":
        return SiteCheck(True, f"{site.service_name} is active")
    return SiteCheck(
        False,
        f"{site.service_name} is {state}: see `journalctl -u {site.service_name}` on the node "
        f"(a registries.yaml it refuses keeps it down; backups sit beside {site.registries_path})",
    )
