"""HTTPS by default on 2-node simulated sites: every node trusts the site CA and pulls over
https, a re-run writes nothing, an http site migrates with pulls proven at every step, and a
certificate due for renewal moves to the idle slot before the old one is dropped."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from blocks.edge_site import EdgeSite
from flows.checkpoints import on_step
from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from flows.site_status import site_status
from model import tls
from tasks.site import canary, helm_release, site_ca, tls_secrets
from tasks.site.connection import open_site
from tasks.site.plans import canary_image

pytestmark = pytest.mark.prefect

NODES = 2
IP = "10.43.100.10"
RELEASE = "connected-registry"


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("https"), sites=3, nodes_per_site=NODES)
    try:
        yield box
    finally:
        box.running.stop()


def _use(fsb: FlowSandbox, index: int, **fields: Any) -> EdgeSite:
    block: EdgeSite = EdgeSite.load(fsb.site_blocks[index])  # type: ignore[assignment]
    for key, value in fields.items():
        setattr(block, key, value)
    block.save(fsb.site_blocks[index], overwrite=True)
    return block


def _provision(fsb: FlowSandbox, index: int) -> dict[str, Any]:
    out: dict[str, Any] = provision_site(
        fsb.site_blocks[index],
        fsb.parent_block,
        ProvisionSpec(**spec(enable_data_endpoint=True)),
    )
    return out


def _ca_file(node: Any) -> Any:
    return node.registries_path.parent / "acr-edge" / f"{RELEASE}-ca.pem"


def _restarts(node: Any) -> list[dict[str, Any]]:
    return [c for c in node.commands() if c.get("event") == "k3s-restart"]


def _pull(probe: Any, site: EdgeSite, host: str) -> Any:
    image = canary_image(host, "samples/app0000")
    namespace = site.app_namespaces[0]
    return canary.run_canary(probe, namespace, image, site.pull_secret_name, timeout=60, poll=0.05)


def test_a_new_site_serves_https_every_node_trusts_its_ca_and_a_rerun_writes_nothing(
    fsb: FlowSandbox,
) -> None:
    block = _use(fsb, 0, transport="https", service_cluster_ip=IP)
    first = _provision(fsb, 0)
    assert first["outcome"] == "converged", first
    site = fsb.site(0)
    with open_site(block) as probe:
        ca = tls_secrets.read_ca(probe)
        assert ca is not None
        host = helm_release.registry_host(probe)
        assert host == f"{IP}:443"
        for node in site.nodes:
            text = _ca_file(node).read_text()
            assert site_ca.is_our_ca_file(text, block.name), node.name
            assert ca.cert_pem.strip() in text
            registries = node.registries_path.read_text()
            assert f"https://{IP}:443" in registries and "ca_file" in registries
            assert "http://" not in registries
            assert _restarts(node) == [], node.name  # hosts.toml made it live
        served = probe.core.read_namespaced_secret(
            tls.server_secret_name(RELEASE, "a"), block.namespace
        )
        assert served.type == "kubernetes.io/tls"
        pulled = _pull(probe, block, host)
        assert pulled.ok, pulled
    key_text = ca.key_pem.get_secret_value()
    assert key_text.split("\n")[1] not in json.dumps(first, default=str)

    again = _provision(fsb, 0)
    assert again["writes"] == 0 and again["outcome"] == "already converged", again

    status = site_status(fsb.site_blocks[0], fsb.parent_block)
    assert status["transport"] == "https"
    assert [n["tls"] for n in status["nodes"]] == ["ok"] * NODES, status["nodes"]
    assert status["server_certificate"]["slot"] == "a"
    assert status["server_certificate"]["days_to_expiry"] > 80
    assert IP in status["server_certificate"]["sans"]


def test_https_without_a_known_address_is_refused_before_any_write(fsb: FlowSandbox) -> None:
    from model.errors import InputError

    _use(fsb, 2, transport="https", service_cluster_ip=None)
    fsb.azure.clear_requests()
    with pytest.raises(InputError, match="service_cluster_ip"):
        _provision(fsb, 2)
    assert fsb.arm_writes() == []
    assert not any(n.registries_path.exists() for n in fsb.site(2).nodes)


def test_an_http_site_migrates_to_https_with_pulls_proven_at_every_step(
    fsb: FlowSandbox,
) -> None:
    block = _use(fsb, 1, transport="http")
    assert _provision(fsb, 1)["outcome"] == "converged"
    with open_site(block) as probe:
        host = helm_release.registry_host(probe)
        assert host.endswith(":80")
        assert _pull(probe, block, host).ok
        block = _use(fsb, 1, transport="https")  # the running service's address is kept
        seen: list[str] = []

        def boundary(flow: str, _site: str, step: str) -> None:
            if flow != "provision-site":
                return
            seen.append(step)
            pulled = _pull(probe, block, host)
            assert pulled.ok, f"pull failed after {step}: {pulled}"

        with on_step(boundary):
            out = _provision(fsb, 1)
        assert out["outcome"] == "converged", out
        assert "helm-release" in seen and seen.count("node-mirror") == 2 * NODES, seen
        # the name pods use is unchanged; its endpoint is https now
        assert helm_release.registry_host(probe) == host
        ip = host.rsplit(":", 1)[0]
        for node in fsb.site(1).nodes:
            registries = node.registries_path.read_text()
            assert f"https://{ip}:443" in registries and f"http://{ip}:80" not in registries
            assert _ca_file(node).exists()
        assert _pull(probe, block, host).ok
    again = _provision(fsb, 1)
    assert again["writes"] == 0, again


def test_a_certificate_due_for_renewal_moves_to_the_idle_slot_and_the_old_one_goes(
    fsb: FlowSandbox,
) -> None:
    block: EdgeSite = EdgeSite.load(fsb.site_blocks[0])  # type: ignore[assignment]
    with open_site(block) as probe:
        ca = tls_secrets.read_ca(probe)
        assert ca is not None
        slots = tls_secrets.read_server_slots(probe, ca)
        served = slots["a"]
        assert served is not None and slots["b"] is None
        # The served certificate, as if issued 70 of its 90 days ago (past two thirds).
        old = site_ca.issue_server_cert(
            ca, list(served.sans), datetime.now(UTC) - timedelta(days=70)
        )
        name = tls.server_secret_name(RELEASE, "a")
        body = probe.core.read_namespaced_secret(name, block.namespace)
        body.data["tls.crt"] = base64.b64encode(old.cert_pem.encode()).decode()
        body.data["tls.key"] = base64.b64encode(old.key_pem.get_secret_value().encode()).decode()
        probe.core.replace_namespaced_secret(name, block.namespace, body)
        host = helm_release.registry_host(probe)
        seen: list[str] = []

        def boundary(flow: str, _site: str, step: str) -> None:
            if flow == "provision-site":
                seen.append(step)
                assert _pull(probe, block, host).ok, f"pull failed after {step}"

        with on_step(boundary):
            out = _provision(fsb, 0)
        assert out["outcome"] == "converged", out
        after = tls_secrets.read_server_slots(probe, ca)
        assert after["a"] is None, "the old slot is deleted once pulls through b are proven"
        renewed = after["b"]
        assert renewed is not None and not site_ca.renewal_due(renewed, datetime.now(UTC))
        values = helm_release._release_values(probe)
        assert values["tls"]["secret"] == tls.server_secret_name(RELEASE, "b")
        assert _pull(probe, block, host).ok


def _age_served_certificate(probe: Any, block: EdgeSite, slot: str) -> None:
    """The served certificate of ``slot``, as if issued 70 of its 90 days ago (past 2/3)."""
    ca = tls_secrets.read_ca(probe)
    assert ca is not None
    served = tls_secrets.read_server_slots(probe, ca)[slot]
    assert served is not None
    old = site_ca.issue_server_cert(ca, list(served.sans), datetime.now(UTC) - timedelta(days=70))
    name = tls.server_secret_name(RELEASE, slot)
    body = probe.core.read_namespaced_secret(name, block.namespace)
    body.data["tls.crt"] = base64.b64encode(old.cert_pem.encode()).decode()
    body.data["tls.key"] = base64.b64encode(old.key_pem.get_secret_value().encode()).decode()
    probe.core.replace_namespaced_secret(name, block.namespace, body)


def test_the_rotation_schedule_renews_a_due_certificate_when_the_sync_password_is_not_due(
    fsb: FlowSandbox,
) -> None:
    from flows.rotate_sync_credential import rotate_sync_credential

    block: EdgeSite = EdgeSite.load(fsb.site_blocks[0])  # type: ignore[assignment]
    with open_site(block) as probe:
        values = helm_release._release_values(probe)
        slot = values["tls"]["secret"].rsplit("-", 1)[1]
        quiet = rotate_sync_credential(fsb.site_blocks[0], fsb.parent_block)
        assert quiet["outcome"] == "not due" and quiet["writes"] == 0, quiet
        _age_served_certificate(probe, block, slot)
        out = rotate_sync_credential(fsb.site_blocks[0], fsb.parent_block)
        assert out["outcome"].startswith("not due; certificate renewed"), out
        other = "a" if slot == "b" else "b"
        after = tls_secrets.read_server_slots(probe)
        assert after[slot] is None and after[other] is not None
        values = helm_release._release_values(probe)
        assert values["tls"]["secret"] == tls.server_secret_name(RELEASE, other)
        assert _pull(probe, block, helm_release.registry_host(probe)).ok
