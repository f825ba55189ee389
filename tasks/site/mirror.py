"""The node's registry mirror as read: registries.yaml, its hosts.toml, the service.

One reader of registries.yaml (:func:`read_registries_yaml`) for rotation, status and the node
step; the change itself (write, hosts.toml, restart, proof, rollback) is one step per node,
:mod:`tasks.site.node_mirror`. These are the reads and checks it and site-status share.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from pydantic import SecretStr

from model.errors import AcrEdgeError, PermanentError, TransientError
from model.retry import call_with_retry
from model.site import MirrorRoute, PullSecretMeta, SiteCheck, SiteSettings, as_route
from tasks.site import hosts_toml, node_files, plans, registries_yaml
from tasks.site.connection import SiteConnection
from tasks.site.ssh import SshSession

log = logging.getLogger(__name__)


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


def hosts_toml_path(conn: SiteConnection, host: str) -> str:
    return f"{conn.site.hosts_dir.rstrip('/')}/{host}/hosts.toml"


def read_hosts_toml(conn: SiteConnection, host: str) -> str | None:
    """The hosts.toml containerd reads for ``host`` on this node (None: there is none)."""
    site = conn.site
    path = hosts_toml_path(conn, host)
    raw = call_with_retry(
        lambda: conn.ssh.read_file(path, sudo=site.sudo), what=f"{conn.resource}: {path}"
    )
    return raw.decode(errors="replace") if raw is not None else None


def restart_pending(conn: SiteConnection, host: str) -> bool:
    """True when registries.yaml is newer than the hosts.toml K3s generated for ``host`` at its
    last start (K3s regenerates certs.d at every start), or that hosts.toml is missing."""
    site = conn.site
    hosts = hosts_toml_path(conn, host)

    def compare() -> bool:
        # Two mtimes from `stat`, not `find -newer`: find can run programs (-exec), so a
        # sudoers rule for it would be root for anyone holding the SSH key.
        result = conn.ssh.run(
            ["stat", "-c", "%.9Y", "--", site.registries_path, hosts],
            sudo=site.sudo,
            timeout=site.command_timeout,
            idempotent=True,
        )
        lines = result.stdout.split()
        if result.exit_status != 0:
            if "no such file" in result.stderr.lower() and len(lines) == 1:
                return True  # registries.yaml is there, the generated hosts.toml is not
            raise TransientError(
                f"{conn.resource}: cannot compare {site.registries_path} with {hosts}: "
                f"{result.error_text()}"
            )
        try:
            written, generated = (float(x) for x in lines)
        except ValueError:
            raise PermanentError(
                f"unexpected `stat` output comparing {site.registries_path} with {hosts}",
                resource=_resource(conn),
                fix="the node needs GNU coreutils stat (8.26 or newer)",
            ) from None
        return written > generated

    return call_with_retry(compare, what=_resource(conn), attempts=3)


def verify_hosts_toml(conn: SiteConnection, route: MirrorRoute | str) -> None:
    """containerd's hosts.toml for the route's host must route to its first endpoint (over
    https trusting the site CA file).

    Catches K3s versions that regenerate an http mirror as https despite the explicit scheme.
    """
    site, route = conn.site, as_route(route)
    host = route.host
    resource = f"{conn.resource}: {hosts_toml_path(conn, host)}"
    text = read_hosts_toml(conn, host)
    if text is None:
        raise PermanentError(
            "hosts.toml was not generated after the restart",
            resource=resource,
            fix=f"check that {site.registries_path} has the mirror and that {conn.service} "
            "really restarted",
        )
    found = hosts_toml.effective_routes(text, host)
    first = urlsplit(route.endpoints[0])
    # K3s writes endpoints with their /v2 path ("http://10.43.0.10:80/v2").
    for url, cas in found:
        parts = urlsplit(url)
        if (parts.scheme, parts.netloc) != (first.scheme, first.netloc):
            continue
        if not route.https or route.ca_file in cas:
            return
        raise PermanentError(
            f"hosts.toml routes {host} to {route.endpoints[0]} without trusting the site CA "
            f"{route.ca_file} (ca: {', '.join(cas) or 'none'})",
            resource=resource,
            fix=f"re-run provision-site; check configs.{route.ca_host}.tls in "
            f"{site.registries_path}",
        )
    schemes = {urlsplit(url).scheme for url, _ in found if urlsplit(url).netloc == host}
    regression = (
        " (K3s rewrote the endpoint to https)" if not route.https and "https" in schemes else ""
    )
    raise PermanentError(
        f"hosts.toml does not route {host} to {route.endpoints[0]}{regression}",
        resource=resource,
        fix="use a K3s version that keeps explicit http:// mirror endpoints"
        if regression
        else "re-run provision-site (it writes the hosts.toml K3s renders)",
    )


def hosts_toml_check(conn: SiteConnection, route: MirrorRoute | str) -> SiteCheck:
    route = as_route(route)
    try:
        verify_hosts_toml(conn, route)
    except PermanentError as exc:
        return SiteCheck(False, str(exc))
    how = "https, trusting the site CA" if route.https else "http"
    return SiteCheck(True, f"hosts.toml routes {route.host} over {how}")


def ca_file_check(conn: SiteConnection, route: MirrorRoute | str) -> SiteCheck:
    """The node's copy of the site CA is the cluster's (``tls`` in site-status)."""
    route = as_route(route)
    if not route.https or not route.ca_file:
        return SiteCheck(True, "not used: the site serves plain http")
    file = node_files.read_node_file(
        conn.ssh, route.ca_file, sudo=conn.site.sudo, resource=conn.resource
    )
    if file.text is None:
        return SiteCheck(False, f"{route.ca_file} is missing: re-run provision-site")
    same = file.text.get_secret_value() == route.ca_text
    if not route.ca_text:
        return SiteCheck(False, "the site CA secret is missing from the cluster")
    if not same:
        return SiteCheck(False, f"{route.ca_file} is not the site CA: re-run provision-site")
    return SiteCheck(True, f"{route.ca_file} is the site CA")


def mirror_check(conn: SiteConnection, route: MirrorRoute | str) -> SiteCheck:
    """site-status's mirror check, from the one reader."""
    path = conn.site.registries_path
    return plans.mirror_check(read_registries_yaml(conn), route, path=path)


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
