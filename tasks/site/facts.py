"""Read-only facts about a site for the status flow: release, runtime pods, mirror config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubernetes.client.exceptions import ApiException

from model.errors import AcrEdgeError, PermanentError, classify
from tasks.site import ops, registries_yaml

if TYPE_CHECKING:
    from tasks.site.connection import SiteConnection


@dataclass(frozen=True)
class Fact:
    ok: bool
    value: str


def release_status(conn: SiteConnection) -> Fact:
    try:
        status = ops.read_release_status(conn)
    except PermanentError as exc:
        return Fact(False, str(exc))
    if status is None:
        return Fact(False, "release not installed")
    return Fact(status == "deployed", f"{conn.site.release_name}: {status}")


def deployment_ready(conn: SiteConnection) -> Fact:
    site = conn.site
    try:
        dep = conn.apps.read_namespaced_deployment(site.release_name, site.namespace)
    except ApiException as exc:
        if exc.status == 404:
            return Fact(False, f"deployment {site.namespace}/{site.release_name} not found")
        raise classify(exc, resource=f"{conn.resource}: deployment") from None
    want = dep.spec.replicas if dep.spec and dep.spec.replicas is not None else 1
    ready = (dep.status.ready_replicas or 0) if dep.status else 0
    return Fact(ready >= want, f"{ready}/{want} pods ready")


def mirror_configured(conn: SiteConnection, host: str) -> Fact:
    site = conn.site
    raw = conn.ssh.read_file(site.registries_path, sudo=site.sudo)
    if raw is None:
        return Fact(False, f"{site.registries_path} missing")
    try:
        data = registries_yaml.parse(
            raw.decode("utf-8", errors="strict"), path=site.registries_path
        )
    except AcrEdgeError as exc:
        return Fact(False, str(exc))
    finally:
        del raw  # may hold node-auth passwords
    mirror = (data.get("mirrors") or {}).get(host) or {}
    endpoints = [str(e) for e in mirror.get("endpoint") or []]
    want = registries_yaml.mirror_endpoint(host)
    if want in endpoints:
        return Fact(True, f"mirror {host} -> {want}")
    return Fact(False, f"no mirror {host} -> {want} (endpoints: {endpoints or 'none'})")


def hosts_toml_ok(conn: SiteConnection, host: str) -> Fact:
    try:
        ops.verify_hosts_toml(conn, conn.site, host)
    except AcrEdgeError as exc:
        return Fact(False, str(exc))
    return Fact(True, f"hosts.toml routes {host} over http")
