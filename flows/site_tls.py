"""HTTPS for a site: the site CA, the server certificate slot the release serves, and the route
every node needs. Composition of the TLS steps for provision-site and the rotation schedule.

Order, so that pulls never fail: the CA and a valid server certificate exist (in the idle slot
when the served one is due for renewal) before the Helm release is told to serve them; nodes
that still pull over http get a *bridge* route (https first, http second) before the release
switches; after the switch and a proven pull, the route drops the old endpoint and the slot
the release no longer serves is deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from model import tls
from model.azure import ConnectedRegistryInfo
from model.errors import InputError
from model.plan import Change
from model.result import StepResult
from model.site import MirrorRoute, ReleaseFact, SiteCheck, SiteSettings
from tasks.site import helm_values, mirror_route, site_ca
from tasks.site import steps as st
from tasks.site import tls_steps as ts
from tasks.site.connection import SiteConnection

Done = Callable[[StepResult], StepResult]
DRY_CA = "# acr-edge: the site CA (created by this run)\n"


@dataclass(frozen=True)
class SiteTls:
    """What the release should serve and the nodes trust (no secret: the CA certificate is
    public; keys stay in the cluster's Secrets)."""

    tls_secret: str
    ca_file: str
    ca_text: str


def serving_transport(release: ReleaseFact) -> str | None:
    """What the release serves now (None: no release)."""
    if not release.exists:
        return None
    return "https" if helm_values.recorded_tls_secret(release.values) else "http"


def _slot_of(site: SiteSettings, secret: str | None) -> str | None:
    for slot in tls.SERVER_SLOTS:
        if secret == tls.server_secret_name(site.release_name, slot):
            return slot
    return None


def _other(slot: str) -> str:
    return tls.SERVER_SLOTS[1] if slot == tls.SERVER_SLOTS[0] else tls.SERVER_SLOTS[0]


def service_ip(site: SiteSettings, current_host: str | None) -> str:
    """The address the certificate names: the block's fixed cluster IP, else the running
    service's (an existing release). Refused before any write when neither is known."""
    if site.service_cluster_ip:
        return site.service_cluster_ip
    if current_host:
        return current_host.rsplit(":", 1)[0]
    raise InputError(
        "transport 'https' needs service_cluster_ip: the server certificate names the "
        "service's address, so it must be known before the first install",
        resource=site.resource,
        fix="set service_cluster_ip in the site block to a free address of service_cidr "
        "(e.g. 10.43.100.10), or use transport 'http'",
    )


def prepare(
    conn: SiteConnection,
    cr_name: str,
    release: ReleaseFact,
    info: ConnectedRegistryInfo | None,
    ip: str,
    dry: bool,
    done: Done,
) -> SiteTls:
    """The site CA and a server certificate valid for ``ip`` (renewed into the idle slot at two
    thirds of its lifetime); returns which Secret the release should serve."""
    site = conn.site
    now = datetime.now(UTC)
    ca_result, ca = ts.ensure_ca_task(conn, cr_name, now, dry_run=dry)
    done(ca_result)
    slots = ts.read_server_slots_task(conn)
    in_use = _slot_of(site, helm_values.recorded_tls_secret(release.values))
    current = in_use or tls.SERVER_SLOTS[0]
    sans = mirror_route.server_sans(
        ip, site.namespace, site.release_name, info.login_host if info else None
    )
    resource = f"secrets/{site.namespace}/{tls.server_secret_name(site.release_name, current)}"
    change = site_ca.plan_server_cert(slots.get(current), sans, now, resource=resource)
    serve = current
    if change.action != "none":
        # A certificate the release serves is never overwritten: the new one goes to the other
        # slot and the release moves to it once it is written.
        serve = _other(current) if in_use else current
        target = tls.server_secret_name(site.release_name, serve)
        change = Change(
            change.step,
            f"secrets/{site.namespace}/{target}",
            change.action,
            f"{change.reason}: issue a certificate into slot {serve}",
            shown=change.shown,
        )
        if dry or ca is None:
            done(StepResult.of_plan(change))
        else:
            cert = site_ca.issue_server_cert(ca, sans, now)
            done(ts.write_server_secret_task(conn, serve, cert, ca.cert_pem))
            del cert
    else:
        done(StepResult.from_change(change, writes=0))
    ca_text = site_ca.ca_file_text(ca.cert_pem, cr_name) if ca is not None else DRY_CA
    return SiteTls(
        tls_secret=tls.server_secret_name(site.release_name, serve),
        ca_file=tls.node_ca_path(site.registries_path, site.release_name),
        ca_text=ca_text,
    )


def route(
    host: str, site: SiteSettings, release: ReleaseFact, state: SiteTls | None
) -> MirrorRoute:
    """The route for what the release serves now and what the site wants."""
    serving = serving_transport(release) or site.transport
    ca_file = state.ca_file if state else tls.node_ca_path(site.registries_path, site.release_name)
    return mirror_route.route_for(
        host,
        serving=serving,
        wanted=site.transport,
        ca_file=ca_file,
        ca_text=state.ca_text if state else None,
    )


def retire_idle_slot(conn: SiteConnection, serving: str | None, dry: bool, done: Done) -> None:
    """After the release serves ``serving`` and a pull through it is proven: the other slot's
    certificate is no longer needed (a renewal's old one, or a crashed run's unused one)."""
    site = conn.site
    keep = _slot_of(site, serving)
    if keep is None:
        return
    idle = _other(keep)
    done(ts.delete_server_secret_task(conn, idle, dry_run=dry))


# Past the renewal point the rotation schedule renews it within a week; this much later the
# schedule is not running and the status says so.
OVERDUE_DAYS = 14


def current_route(conn: SiteConnection, host: str) -> tuple[MirrorRoute, ReleaseFact]:
    """The route the nodes should have now, for site-status and the rotation (no writes)."""
    site = conn.site
    release = st.read_helm_release_task(conn)
    serving = serving_transport(release) or site.transport
    if serving == "http" and site.transport == "http":
        return mirror_route.route_for(host, serving="http", wanted="http"), release
    ca = ts.read_ca_task(conn)
    ca_text = site_ca.ca_file_text(ca.cert_pem, site.name) if ca is not None else None
    state = SiteTls(
        tls_secret=helm_values.recorded_tls_secret(release.values) or "",
        ca_file=tls.node_ca_path(site.registries_path, site.release_name),
        ca_text=ca_text or "",
    )
    return route(host, site, release, state), release


def server_cert_check(
    conn: SiteConnection, release: ReleaseFact
) -> tuple[SiteCheck, dict[str, Any]]:
    """The served certificate: issued by the site CA, valid, and renewed on time."""
    site = conn.site
    secret = helm_values.recorded_tls_secret(release.values)
    slot = _slot_of(site, secret)
    if slot is None:
        return SiteCheck(False, "the release serves no acr-edge server certificate"), {}
    fact = ts.read_server_slots_task(conn).get(slot)
    if fact is None:
        return SiteCheck(False, f"secret {secret} is missing or unreadable"), {}
    now = datetime.now(UTC)
    days_left = (fact.not_after - now).total_seconds() / 86400
    facts = {
        "slot": slot,
        "not_after": fact.not_after.isoformat(),
        "days_to_expiry": round(days_left, 1),
        "sans": list(fact.sans),
        "renewal_due": site_ca.renewal_due(fact, now),
    }
    lifetime = (fact.not_after - fact.not_before).total_seconds() / 86400
    if not fact.issued_by_ca or not fact.key_matches:
        return SiteCheck(False, f"{secret} is not a certificate of the site CA with its key"), facts
    if days_left <= 0:
        return SiteCheck(False, f"{secret} expired {-days_left:.0f} day(s) ago"), facts
    if days_left < lifetime * (1 - tls.RENEW_AT) - OVERDUE_DAYS:
        return SiteCheck(
            False, f"{secret} expires in {days_left:.0f} day(s); renewal overdue"
        ), facts
    return SiteCheck(True, f"{secret} valid for {days_left:.0f} more day(s)"), facts
