"""HTTPS for the connected registry on a simulated site, as the chart + K3s + containerd do it:
the release mounts a kubernetes.io/tls Secret, each node trusts the site CA through the
``ca_file`` of registries.yaml (rendered by K3s into hosts.toml ``ca = [...]``), and containerd
verifies the served certificate for real at every pull, failing in Go's words otherwise."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from kubernetes import client

from sandbox.sites import SimulatedSite
from sandbox.sites.node import SimulatedNode
from sandbox.sites.testing import kube_client, provision_connected_registry, run, ssh_client

CHART = "oci://mcr.microsoft.com/acr/connected-registry/chart"
HELM = f"helm upgrade --install cr {CHART} -n conreg --create-namespace -f - --wait --timeout 3s"
IP = "10.43.200.10"  # (10.43.0.10 is kube-dns on K3s)
HTTPS_IMAGE = f"{IP}:443/edge/app1:v1"
HTTP_IMAGE = f"{IP}:80/edge/app1:v1"
NOW = datetime.datetime.now(datetime.UTC)


# --- certificates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def make_ca(name: str = "site CA") -> Ca:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return Ca(key, cert)


@dataclass(frozen=True)
class ServerCert:
    cert: x509.Certificate
    crt: bytes  # leaf + CA, PEM
    key: bytes


def server_cert(
    ca: Ca,
    ip: str = IP,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> ServerCert:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - datetime.timedelta(hours=1))
        .not_valid_after(not_after or NOW + datetime.timedelta(days=90))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return ServerCert(cert, pem + ca.pem, key_pem)


# --- the site ----------------------------------------------------------------------------------


def wait(predicate: Any, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


@dataclass
class Harness:
    site: SimulatedSite
    core: Any
    conn: str
    auth: str

    def helm(self, values: dict[str, Any], helm: str = HELM) -> tuple[int, str, str]:
        body = {
            "connectionString": self.conn,
            "service": {"clusterIP": IP},
            "pvc": {"storageClassName": "local-path"},
            **values,
        }
        ssh = ssh_client(self.site.info)
        try:
            return run(ssh, helm, stdin=yaml.safe_dump(body).encode())
        finally:
            ssh.close()

    def install_https(self, secret: str = "cr-tls-a", helm: str = HELM) -> tuple[int, str, str]:
        return self.helm(
            {"httpEnabled": False, "tls": {"secret": secret}, "cert-manager": {"enabled": False}},
            helm,
        )

    def tls_secret(
        self, name: str, cert: ServerCert, ca: Ca, kind: str = "kubernetes.io/tls"
    ) -> None:
        data = {"tls.crt": cert.crt, "tls.key": cert.key, "ca.crt": ca.pem}
        self.core.create_namespaced_secret(
            "conreg",
            {
                "metadata": {"name": name},
                "type": kind,
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
            },
        )

    def pod(self, name: str, image: str = HTTPS_IMAGE, node: str | None = None) -> Any:
        host = image.split("/", 1)[0]
        self.core.create_namespaced_secret(
            "conreg",
            {
                "metadata": {"name": f"{name}-creds"},
                "type": "kubernetes.io/dockerconfigjson",
                "stringData": {
                    ".dockerconfigjson": json.dumps({"auths": {host: {"auth": self.auth}}})
                },
            },
        )
        spec: dict[str, Any] = {
            "restartPolicy": "Never",
            "imagePullSecrets": [{"name": f"{name}-creds"}],
            "containers": [{"name": "canary", "image": image}],
        }
        if node:
            spec["nodeSelector"] = {"kubernetes.io/hostname": node}
        self.core.create_namespaced_pod("conreg", {"metadata": {"name": name}, "spec": spec})

        def check() -> Any:
            p = self.core.read_namespaced_pod(name, "conreg")
            statuses = p.status.container_statuses or []
            waiting = statuses and statuses[0].state.waiting
            if p.status.phase == "Succeeded" or (
                waiting and waiting.reason in ("ErrImagePull", "ImagePullBackOff")
            ):
                return p
            return None

        return wait(check)

    def served(self) -> x509.Certificate:
        state = self.site.runtime.ready_release_for("conreg", "cr")
        assert state is not None
        chain = self.site.runtime.served_chain(state)
        assert chain is not None
        return chain.leaf

    def registry_pod(self) -> Any:
        (p,) = self.core.list_namespaced_pod("conreg", label_selector="app=cr").items
        return p


def failure(p: Any) -> str:
    if p.status.phase == "Succeeded":
        return ""
    return str(p.status.container_statuses[0].state.waiting.message)


def ca_path(node: SimulatedNode) -> str:
    return str(node.registries_path.parent / "acr-edge" / "cr-ca.pem")


def trust(node: SimulatedNode, ca: Ca, *, path: str | None = None) -> str:
    """The site CA file as acr-edge writes it: a comment line, then the PEM."""
    where = path or ca_path(node)
    target = Path(where) if Path(where).is_absolute() else node.root / where
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"# acr-edge: site CA of connected registry cr\n" + ca.pem)
    return where


def registries(
    node: SimulatedNode, mirrors: dict[str, list[str]], ca_file: str | None = None
) -> None:
    """registries.yaml, then a K3s restart: K3s renders certs.d from it."""
    doc: dict[str, Any] = {"mirrors": {h: {"endpoint": e} for h, e in mirrors.items()}}
    if ca_file is not None:
        doc["configs"] = {f"{IP}:443": {"tls": {"ca_file": ca_file}}}
    node.registries_path.write_text(yaml.safe_dump(doc))
    ssh = ssh_client(node.info)
    try:
        rc, _, err = run(ssh, f"sudo systemctl restart {node.service}")
        assert rc == 0, err
    finally:
        ssh.close()


def hosts_toml(node: SimulatedNode, host: str) -> str:
    path = node.hosts_dir / host / "hosts.toml"
    return path.read_text() if path.exists() else ""


def harness(site: SimulatedSite, mgmt: Any, azure: Any, cr_name: str) -> Harness:
    reg = provision_connected_registry(mgmt, azure.info, cr_name, ["edge/app1"])
    core = client.CoreV1Api(kube_client(site.info))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="conreg")))
    auth = base64.b64encode(f"{reg.client_username}:{reg.client_password}".encode()).decode()
    return Harness(site, core, reg.connection_string, auth)


@pytest.fixture
def h(site: SimulatedSite, mgmt: Any, azure: Any, cr_name: str) -> Harness:
    return harness(site, mgmt, azure, cr_name)


# --- tests -------------------------------------------------------------------------------------


def test_pull_verifies_the_served_certificate_against_the_node_ca_file(h: Harness) -> None:
    ca = make_ca()
    cert = server_cert(ca)
    h.tls_secret("cr-tls-a", cert, ca)
    rc, _, err = h.install_https()
    assert rc == 0, err
    svc = h.core.read_namespaced_service("cr", "conreg")
    assert [(p.port, p.name) for p in svc.spec.ports] == [(443, "https")]
    node = h.site.server
    registries(node, {f"{IP}:443": [f"https://{IP}:443"]}, trust(node, ca))
    assert f'ca = ["{ca_path(node)}"]' in hosts_toml(node, f"{IP}:443")
    assert h.served() == cert.cert

    assert failure(h.pod("right-ca")) == ""

    # no CA for the host (K3s writes no file: the default endpoint, the system roots only)
    registries(node, {f"{IP}:443": [f"https://{IP}:443"]})
    assert hosts_toml(node, f"{IP}:443") == ""
    assert failure(h.pod("no-ca")).endswith(
        f'Head "https://{IP}:443/v2/edge/app1/manifests/v1": tls: failed to verify '
        "certificate: x509: certificate signed by unknown authority"
    )

    # the file is read at each pull: another CA in it is not trusted, a gone file fails
    registries(node, {f"{IP}:443": [f"https://{IP}:443"]}, trust(node, ca))
    trust(node, make_ca("another CA"))
    assert "x509: certificate signed by unknown authority" in failure(h.pod("wrong-ca"))
    Path(ca_path(node)).unlink()
    assert f'unable to read CA cert "{ca_path(node)}": open {ca_path(node)}: no such file' in (
        failure(h.pod("gone-ca"))
    )
    Path(ca_path(node)).write_text("# acr-edge: not a certificate\n")
    assert f'unable to load CA cert "{ca_path(node)}"' in failure(h.pod("empty-ca"))

    trust(node, ca)
    assert failure(h.pod("right-again")) == ""
    h.site.knobs.tls_serve_wrong_cert = True
    assert "x509: certificate signed by unknown authority" in failure(h.pod("stranger"))
    # skip_verify (which acr-edge never writes) is honoured as containerd does
    (node.hosts_dir / f"{IP}:443/hosts.toml").write_text(
        f'[host."https://{IP}:443/v2"]\n  capabilities = ["pull", "resolve"]\n'
        "  skip_verify = true\n"
    )
    assert failure(h.pod("skip-verify")) == ""
    h.site.knobs.tls_serve_wrong_cert = False


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda ca: server_cert(ca, "10.43.200.11"),
            "tls: failed to verify certificate: x509: certificate is valid for 10.43.200.11, "
            f"not {IP}",
        ),
        (
            lambda ca: server_cert(
                ca,
                not_before=NOW - datetime.timedelta(days=30),
                not_after=NOW - datetime.timedelta(days=1),
            ),
            "tls: failed to verify certificate: x509: certificate has expired or is not yet "
            "valid: current time ",
        ),
    ],
    ids=["san-mismatch", "expired"],
)
def test_a_certificate_go_refuses_fails_the_pull(h: Harness, make: Any, expected: str) -> None:
    ca = make_ca()
    h.tls_secret("cr-tls-a", make(ca), ca)
    rc, _, err = h.install_https()
    assert rc == 0, err
    node = h.site.server
    registries(node, {f"{IP}:443": [f"https://{IP}:443"]}, trust(node, ca))
    assert expected in failure(h.pod("refused"))


def test_a_missing_secret_keeps_the_pod_creating_until_it_exists(h: Harness) -> None:
    rc, _, err = h.install_https()
    assert rc != 0 and "context deadline exceeded" in err
    p = h.registry_pod()
    waiting = p.status.container_statuses[0].state.waiting
    assert waiting.reason == "ContainerCreating"
    wanted = 'MountVolume.SetUp failed for volume "tls" : secret "cr-tls-a" not found'
    assert waiting.message == wanted
    events = h.core.list_namespaced_event(
        "conreg", field_selector=f"involvedObject.name={p.metadata.name}"
    )
    assert [(e.reason, e.message) for e in events.items] == [("FailedMount", wanted)]
    ca = make_ca()
    node = h.site.server
    registries(node, {f"{IP}:443": [f"https://{IP}:443"]}, trust(node, ca))
    assert f"dial tcp {IP}:443: connect: connection refused" in failure(h.pod("no-secret"))
    h.tls_secret("cr-tls-a", server_cert(ca), ca)
    wait(lambda: h.site.runtime.ready_release_for("conreg", "cr"))  # the kubelet retries
    assert failure(h.pod("mounted")) == ""


@pytest.mark.parametrize(
    ("kind", "swap_key", "expected"),
    [
        ("Opaque", False, "not kubernetes.io/tls"),
        ("kubernetes.io/tls", True, "tls: private key does not match public key"),
    ],
)
def test_a_secret_the_server_cannot_load_crash_loops_it(
    h: Harness, kind: str, swap_key: bool, expected: str
) -> None:
    ca = make_ca()
    cert = server_cert(ca)
    if swap_key:
        cert = ServerCert(cert.cert, cert.crt, server_cert(ca).key)
    h.tls_secret("cr-tls-a", cert, ca, kind)
    rc, _, _ = h.install_https()
    assert rc != 0
    waiting = h.registry_pod().status.container_statuses[0].state.waiting
    assert waiting.reason == "CrashLoopBackOff" and expected in waiting.message


def test_unparsable_pem_and_no_certificate_at_all_crash_loop(h: Harness) -> None:
    h.core.create_namespaced_secret(
        "conreg",
        {
            "metadata": {"name": "cr-tls-a"},
            "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": "garbage", "tls.key": "garbage"},
        },
    )
    assert h.install_https()[0] != 0
    waiting = h.registry_pod().status.container_statuses[0].state.waiting
    assert "failed to find any PEM data in certificate input" in waiting.message
    rc, _, _ = h.helm({"httpEnabled": False, "cert-manager": {"enabled": False}})
    assert rc != 0
    waiting = h.registry_pod().status.container_statuses[0].state.waiting
    assert waiting.reason == "CrashLoopBackOff" and "no server certificate" in waiting.message


@pytest.mark.parametrize("cert_manager", [{"enabled": True}, None])
def test_cert_manager_values_fail_without_its_crds(
    h: Harness, cert_manager: dict[str, Any] | None
) -> None:
    values: dict[str, Any] = {"httpEnabled": False, "tls": {"secret": "cr-tls-a"}}
    if cert_manager is not None:
        values["cert-manager"] = cert_manager
    rc, _, err = h.helm(values)
    assert rc != 0
    assert (
        "INSTALLATION FAILED: unable to build kubernetes objects from release manifest: resource "
        'mapping not found for name: "cr-tls" namespace: "conreg" from "": no matches for kind '
        '"Certificate" in version "cert-manager.io/v1"\nensure CRDs are installed first'
    ) in err
    apps = client.AppsV1Api(kube_client(h.site.info))
    assert apps.list_namespaced_deployment("conreg").items == []  # nothing applied

    # an upgrade of a working http release to such values fails the same way
    assert h.helm({"httpEnabled": True})[0] == 0
    rc, _, err = h.helm(values)
    assert rc != 0 and "UPGRADE FAILED: unable to build kubernetes objects from new" in err
    ssh = ssh_client(h.site.info)
    try:
        out = run(ssh, "helm history cr -n conreg -o json")[1]
    finally:
        ssh.close()
    assert [r["status"] for r in json.loads(out)] == ["failed", "deployed", "failed"]
    svc = h.core.read_namespaced_service("cr", "conreg")
    assert [p.port for p in svc.spec.ports] == [80]


def test_the_bridge_pulls_before_and_after_the_switch_to_https(h: Harness) -> None:
    ca = make_ca()
    h.tls_secret("cr-tls-a", server_cert(ca), ca)
    node = h.site.server
    bridge = {
        f"{IP}:443": [f"https://{IP}:443"],
        f"{IP}:80": [f"https://{IP}:443", f"http://{IP}:80"],
    }
    registries(node, bridge, trust(node, ca))
    assert h.helm({"httpEnabled": True})[0] == 0
    before = h.pod("before", HTTP_IMAGE)
    assert failure(before) == ""
    # nothing listens on :443 yet
    assert f"dial tcp {IP}:443: connect: connection refused" in failure(h.pod("https-before"))

    rc, _, err = h.install_https()
    assert rc == 0, err
    svc = h.core.read_namespaced_service("cr", "conreg")
    assert svc.spec.cluster_ip == IP and [p.port for p in svc.spec.ports] == [443]
    assert failure(h.pod("after", HTTP_IMAGE)) == ""
    assert failure(h.pod("https-after")) == ""

    # once migrated, plain http finds nothing on :80, and gets a 400 on the TLS port
    (node.hosts_dir / f"{IP}:80/hosts.toml").write_text(
        f'[host."http://{IP}:80/v2"]\n  capabilities = ["pull", "resolve"]\n'
    )
    assert f"dial tcp {IP}:80: connect: connection refused" in failure(h.pod("http-80", HTTP_IMAGE))
    (node.hosts_dir / f"{IP}:80/hosts.toml").write_text(
        f'[host."http://{IP}:443/v2"]\n  capabilities = ["pull", "resolve"]\n'
    )
    msg = failure(h.pod("http-443", HTTP_IMAGE))
    assert "400 Bad Request" in msg and "Client sent an HTTP request to an HTTPS server." in msg


def test_renewal_serves_the_new_certificate_only_after_the_upgrade(h: Harness) -> None:
    ca = make_ca()
    first, second, third = server_cert(ca), server_cert(ca), server_cert(ca)
    h.tls_secret("cr-tls-a", first, ca)
    assert h.install_https()[0] == 0
    node = h.site.server
    registries(node, {f"{IP}:443": [f"https://{IP}:443"]}, trust(node, ca))
    assert h.served() == first.cert
    pod_before = h.registry_pod().metadata.name

    # the mounted Secret changes in place and helm sees the same values: no new pod, no reload
    h.core.patch_namespaced_secret(
        "cr-tls-a",
        "conreg",
        {"data": {"tls.crt": base64.b64encode(third.crt).decode()}},
    )
    h.core.patch_namespaced_secret(
        "cr-tls-a", "conreg", {"data": {"tls.key": base64.b64encode(third.key).decode()}}
    )
    assert h.install_https()[0] == 0
    assert h.registry_pod().metadata.name == pod_before and h.served() == first.cert

    # the other slot, then the upgrade that points the release at it
    h.tls_secret("cr-tls-b", second, ca)
    rc, _, err = h.install_https("cr-tls-b")
    assert rc == 0, err
    assert h.registry_pod().metadata.name != pod_before
    assert h.served() == second.cert and h.served() != first.cert
    assert failure(h.pod("renewed")) == ""


def test_each_node_verifies_with_its_own_ca_file(
    cluster: SimulatedSite, mgmt: Any, azure: Any, cr_name: str
) -> None:
    hh = harness(cluster, mgmt, azure, cr_name)
    ca = make_ca()
    hh.tls_secret("cr-tls-a", server_cert(ca), ca)
    assert hh.install_https()[0] == 0
    n2, n3 = cluster.node("site1-n2"), cluster.node("site1-n3")
    relative = "etc/rancher/k3s/acr-edge/cr-ca.pem"  # relative to the node's root
    for node in (n2, n3):
        registries(node, {f"{IP}:443": [f"https://{IP}:443"]}, relative)
    trust(n2, ca, path=relative)
    assert failure(hh.pod("n2", node="site1-n2")) == ""
    assert f'unable to read CA cert "{relative}"' in failure(hh.pod("n3", node="site1-n3"))
