"""The site CA and server certificate Secrets against a simulated K3s site's Kubernetes API,
through the real kubernetes client: created once, kept after, foreign Secrets refused and
left alone, keys never in an error."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

from blocks.edge_site import EdgeSite
from model import tls
from model.errors import PermanentError, redact
from tasks.site import namespace, site_ca, tls_secrets
from tasks.site.connection import SiteConnection, open_site

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CR = "siteoneedge"
SANS = ["10.43.0.10", "connected-registry.connected-registry.svc"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from sandbox.runner import start_sandbox

    running = start_sandbox(tmp_path_factory.mktemp("sbx"), sites=1, propagation_delay=0)
    try:
        yield running
    finally:
        running.stop()


def _site(sandbox: Any, **over: Any) -> EdgeSite:
    info = sandbox.sites[0].info
    args: dict[str, Any] = {
        "name": CR,
        "ssh_host": info["ssh_host"],
        "ssh_port": info["ssh_port"],
        "ssh_user": info["ssh_user"],
        "ssh_private_key": Path(info["private_key_path"]).read_text(),
        "known_hosts": [info["known_hosts"]],
        "registries_path": info["registries_path"],
        "kubeconfig_path": info["kubeconfig_path"],
        "hosts_dir": info["hosts_dir"],
        "transport": "http",
    }
    args.update(over)
    return EdgeSite(**args)


def _secret(conn: SiteConnection, name: str) -> k8s.V1Secret | None:
    found = [
        s
        for s in conn.core.list_namespaced_secret(conn.site.namespace).items
        if s.metadata and s.metadata.name == name
    ]
    return found[0] if found else None


def _rv(conn: SiteConnection, name: str) -> str:
    secret = _secret(conn, name)
    assert secret is not None and secret.metadata is not None
    return str(secret.metadata.resource_version)


def _foreign(conn: SiteConnection, name: str, kind: str = "Opaque") -> k8s.V1Secret:
    body = k8s.V1Secret(
        metadata=k8s.V1ObjectMeta(name=name, labels={"app": "someone-else"}),
        type=kind,
        data={"tls.crt": base64.b64encode(b"theirs").decode(), "tls.key": "dGhlaXJz"},
    )
    return conn.core.create_namespaced_secret(conn.site.namespace, body)


def test_ca_is_created_once_then_kept(sandbox: Any) -> None:
    site = _site(sandbox)
    name = tls.ca_secret_name(site.release_name)
    with open_site(site) as conn:
        namespace.ensure_namespace(conn, site.namespace)
        planned, none = tls_secrets.ensure_ca(conn, CR, NOW, dry_run=True)
        assert planned.planned and planned.action == "create" and planned.writes == 0
        assert "no site CA yet" in planned.message and none is None
        assert _secret(conn, name) is None  # a dry run writes nothing

        first, ca = tls_secrets.ensure_ca(conn, CR, NOW, dry_run=False)
        assert first.changed and first.writes == 1 and first.step == "site-ca"
        assert first.message == planned.message  # the plan's row is the run's row
        assert ca is not None
        secret = _secret(conn, name)
        assert secret is not None and secret.type == "Opaque"
        assert secret.metadata is not None and secret.metadata.labels == tls.MANAGED_BY
        assert set(secret.data or {}) == {"ca.crt", "ca.key"}
        rv = _rv(conn, name)

        second, again = tls_secrets.ensure_ca(conn, CR, NOW + timedelta(days=1), dry_run=False)
        assert not second.changed and second.writes == 0 and second.action == "none"
        assert second.message.startswith("site CA valid until ")
        assert again == ca and tls_secrets.read_ca(conn) == ca
        dry, kept = tls_secrets.ensure_ca(conn, CR, NOW, dry_run=True)
        assert dry.action == "none" and kept == ca
        assert _rv(conn, name) == rv
    # Nothing secret in what a step returns.
    for result in (first, second):
        assert ca.key_pem.get_secret_value() not in repr(result)


def test_a_foreign_ca_secret_is_refused_and_left(sandbox: Any) -> None:
    site = _site(sandbox, release_name="foreignca")
    name = tls.ca_secret_name("foreignca")
    with open_site(site) as conn:
        namespace.ensure_namespace(conn, site.namespace)
        made = _foreign(conn, name)
        for dry_run in (True, False):
            with pytest.raises(PermanentError) as err:
                tls_secrets.ensure_ca(conn, CR, NOW, dry_run=dry_run)
            text = str(err.value)
            assert f"secret {site.namespace}/{name}" in text and "not made by acr-edge" in text
            assert "Fix:" in text
        left = _secret(conn, name)
    assert left is not None and left.metadata is not None and made.metadata is not None
    assert left.metadata.resource_version == made.metadata.resource_version
    assert left.data == made.data


def test_a_ca_too_close_to_its_end_is_refused(sandbox: Any) -> None:
    site = _site(sandbox, release_name="oldca")
    with open_site(site) as conn:
        namespace.ensure_namespace(conn, site.namespace)
        _, ca = tls_secrets.ensure_ca(conn, CR, NOW, dry_run=False, ca_days=100)
        assert ca is not None
        with pytest.raises(PermanentError) as err:
            tls_secrets.ensure_ca(conn, CR, NOW + timedelta(days=11), dry_run=False)
        assert "CA rotation is not built" in str(err.value)
        assert tls_secrets.read_ca(conn) == ca  # left as it was


def test_server_slots_write_read_delete(sandbox: Any) -> None:
    site = _site(sandbox, release_name="slots")
    name_a = tls.server_secret_name("slots", "a")
    with open_site(site) as conn:
        namespace.ensure_namespace(conn, site.namespace)
        _, ca = tls_secrets.ensure_ca(conn, CR, NOW, dry_run=False)
        assert ca is not None
        assert tls_secrets.read_server_slots(conn) == {"a": None, "b": None}
        cert = site_ca.issue_server_cert(ca, SANS, NOW)

        wrote = tls_secrets.write_server_secret(conn, "a", cert, ca.cert_pem)
        assert wrote.changed and wrote.writes == 1 and wrote.action == "create"
        secret = _secret(conn, name_a)
        assert secret is not None and secret.type == "kubernetes.io/tls"
        assert secret.metadata is not None and secret.metadata.labels == tls.MANAGED_BY
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        assert data == {
            "tls.crt": cert.cert_pem,
            "tls.key": cert.key_pem.get_secret_value(),
            "ca.crt": ca.cert_pem,
        }
        fact = site_ca.cert_fact(cert.cert_pem, ca.cert_pem, resource="r")
        assert secret.metadata.annotations == {
            "acr-edge.io/not-after": "2026-05-30T12:00:00Z",
            "acr-edge.io/sans": ",".join(SANS),
            "acr-edge.io/fingerprint": fact.fingerprint,
        }
        rv = _rv(conn, name_a)

        slots = tls_secrets.read_server_slots(conn)
        assert slots["b"] is None
        got = slots["a"]
        assert got is not None and got.issued_by_ca and got.key_matches
        assert got.sans == tuple(SANS) and got.fingerprint == fact.fingerprint
        change = site_ca.plan_server_cert(got, SANS, NOW, resource="r")
        assert not change.needed

        same = tls_secrets.write_server_secret(conn, "a", cert, ca.cert_pem)
        assert not same.changed and same.writes == 0 and same.action == "none"
        assert "already holds this server certificate" in same.message
        assert _rv(conn, name_a) == rv

        newer = site_ca.issue_server_cert(ca, [*SANS, "10.43.0.11"], NOW)
        replaced = tls_secrets.write_server_secret(conn, "a", newer, ca.cert_pem)
        assert replaced.changed and replaced.writes == 1 and replaced.action == "update"
        after = tls_secrets.read_server_slots(conn, ca)["a"]
        assert after is not None and "10.43.0.11" in after.sans

        # Checked against the site CA: another CA's certificate is seen as not issued by it.
        other = site_ca.new_ca("otheredge", NOW)
        stranger = site_ca.issue_server_cert(other, SANS, NOW)
        tls_secrets.write_server_secret(conn, "b", stranger, other.cert_pem)
        b = tls_secrets.read_server_slots(conn)["b"]
        assert b is not None and not b.issued_by_ca and b.key_matches

        # A certificate the given CA did not issue is refused before any write.
        rv_b = _rv(conn, tls.server_secret_name("slots", "b"))
        with pytest.raises(PermanentError):
            tls_secrets.write_server_secret(conn, "b", stranger, ca.cert_pem)
        assert _rv(conn, tls.server_secret_name("slots", "b")) == rv_b

        deleted = tls_secrets.delete_server_secret(conn, "a")
        assert deleted.changed and deleted.writes == 1 and deleted.action == "delete"
        assert _secret(conn, name_a) is None
        gone = tls_secrets.delete_server_secret(conn, "a")
        assert not gone.changed and gone.writes == 0 and "nothing to delete" in gone.message
        planned = tls_secrets.delete_server_secret(conn, "b", dry_run=True)
        assert planned.planned and planned.action == "delete"
        assert _secret(conn, tls.server_secret_name("slots", "b")) is not None


def test_a_foreign_slot_secret_is_refused_and_left(sandbox: Any) -> None:
    site = _site(sandbox, release_name="foreignslot")
    name = tls.server_secret_name("foreignslot", "a")
    with open_site(site) as conn:
        namespace.ensure_namespace(conn, site.namespace)
        _, ca = tls_secrets.ensure_ca(conn, CR, NOW, dry_run=False)
        assert ca is not None
        made = _foreign(conn, name, "kubernetes.io/tls")
        cert = site_ca.issue_server_cert(ca, SANS, NOW)
        for attempt in (
            lambda: tls_secrets.write_server_secret(conn, "a", cert, ca.cert_pem),
            lambda: tls_secrets.delete_server_secret(conn, "a"),
            lambda: tls_secrets.read_server_slots(conn, ca),
        ):
            with pytest.raises(PermanentError) as err:
                attempt()
            assert name in str(err.value) and "not made by acr-edge" in str(err.value)
        left = _secret(conn, name)
    assert left is not None and left.metadata is not None and made.metadata is not None
    assert left.metadata.resource_version == made.metadata.resource_version


def test_a_failing_write_carries_no_key_material(sandbox: Any) -> None:
    # The namespace does not exist: the API answers 404 to the create.
    site = _site(sandbox, namespace="nowhere", release_name="nowhere")
    ca = site_ca.new_ca(CR, NOW)
    cert = site_ca.issue_server_cert(ca, SANS, NOW)
    with open_site(site) as conn:
        with pytest.raises(PermanentError) as err:
            tls_secrets.write_server_secret(conn, "a", cert, ca.cert_pem)
        with pytest.raises(PermanentError) as ca_err:
            tls_secrets.ensure_ca(conn, CR, NOW, dry_run=False)
    for error in (err.value, ca_err.value):
        text = str(error)
        assert "secret nowhere/nowhere-acr-edge-" in text and "404" in text
        # The ApiException (whose text holds the HTTP body) is not chained either.
        assert error.__cause__ is None and error.__suppress_context__
    text = str(err.value)
    key = cert.key_pem.get_secret_value()
    assert redact(text, [key, ca.key_pem.get_secret_value()]) == text
    for line in key.splitlines()[1:-1]:
        assert line not in text
    assert base64.b64encode(key.encode()).decode()[:40] not in text
