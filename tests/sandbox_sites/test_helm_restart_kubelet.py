"""helm over SSH with values on stdin, the runtime against the real Azure sandbox, K3s restarts
regenerating hosts.toml, and the kubelet's pull paths."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import paramiko
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import MaxRetryError

from sandbox.sites import SimulatedSite
from sandbox.sites.testing import kube_client, provision_connected_registry, run

CHART = "oci://mcr.microsoft.com/acr/connected-registry/chart"
HELM = f"helm upgrade --install cr {CHART} -n conreg --create-namespace -f - --wait --timeout 5s"


def _wait(predicate: Any, timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def _values(conn: str, cluster_ip: str = "10.43.7.7") -> bytes:
    return (
        f"connectionString: {conn}\nhttpEnabled: true\nservice:\n  clusterIP: {cluster_ip}\n"
        "pvc:\n  storageClassName: local-path\n  storageRequest: 10Gi\n"
    ).encode()


def _install(ssh: paramiko.SSHClient, mgmt: Any, azure: Any, name: str) -> Any:
    reg = provision_connected_registry(mgmt, azure.info, name, ["edge/app1"])
    rc, _, err = run(ssh, HELM, stdin=_values(reg.connection_string))
    assert rc == 0, err
    return reg


def _registries(site: SimulatedSite, ssh: paramiko.SSHClient, text: str) -> tuple[int, str]:
    Path(site.info["registries_path"]).write_text(text)
    rc, _, err = run(ssh, "sudo systemctl restart k3s")
    return rc, err


def test_helm_install_activates_and_upgrades_count(
    ssh: paramiko.SSHClient, site: SimulatedSite, mgmt: Any, azure: Any, cr_name: str
) -> None:
    reg = _install(ssh, mgmt, azure, cr_name)
    apps, core = client.AppsV1Api(kube_client(site.info)), client.CoreV1Api(kube_client(site.info))
    assert apps.read_namespaced_deployment("cr", "conreg").status.available_replicas == 1
    svc = core.read_namespaced_service("cr", "conreg")
    assert svc.spec.cluster_ip == "10.43.7.7" and svc.spec.ports[0].port == 80
    pvc = core.read_namespaced_persistent_volume_claim("cr-pvc", "conreg")
    assert pvc.spec.resources.requests["storage"] == "10Gi"
    cr = mgmt.connected_registries.get(
        azure.info["resource_group"], azure.info["registry"], cr_name
    )
    assert cr.connection_state == "Online"
    assert site.helm_revision("conreg", "cr") == 1
    assert run(ssh, HELM, stdin=_values(reg.connection_string))[0] == 0
    assert site.helm_revision("conreg", "cr") == 2
    rc, out, _ = run(ssh, "helm status cr -n conreg -o json")
    assert (
        rc == 0
        and json.loads(out)["version"] == 2
        and json.loads(out)["info"]["status"] == ("deployed")
    )
    rc, out, _ = run(ssh, "helm list -n conreg -o json")
    assert [(r["name"], r["revision"]) for r in json.loads(out)] == [("cr", "2")]
    rc, out, _ = run(ssh, "helm get values cr -n conreg -o json")
    assert json.loads(out)["httpEnabled"] is True
    assert reg.connection_string not in site.command_log.read_text()
    assert site.runtime.states[("conreg", "cr")].activations == 1  # same string: no re-activation


def test_helm_refuses_bad_values_without_echoing_secrets(
    ssh: paramiko.SSHClient, site: SimulatedSite
) -> None:
    rc, _, err = run(ssh, HELM, stdin=b"httpEnabled: true\n")
    assert rc != 0 and "connectionString is required" in err
    bad = "ConnectedRegistryName=x;SyncTokenPassword=hunter2-secret;SyncTokenName=y"
    rc, out, err = run(ssh, HELM, stdin=f"connectionString: {bad}\n".encode())
    assert rc != 0 and "malformed" in err and "hunter2-secret" not in err + out
    good = (
        "ConnectedRegistryName=edgecr;SyncTokenName=edgecr;SyncTokenPassword=pw-secret-9;"
        "ParentGatewayEndpoint=r.eastus.data.azurecr.io;ParentEndpointProtocol=https"
    )
    rc, out, err = run(ssh, HELM, stdin=_values(good, cluster_ip="172.16.0.9"))
    assert rc != 0 and "10.43.0.0/16" in err and "pw-secret-9" not in err + out


def test_wrong_password_leaves_pod_unready_with_runtime_error(
    ssh: paramiko.SSHClient, site: SimulatedSite, mgmt: Any, azure: Any, cr_name: str
) -> None:
    reg = provision_connected_registry(mgmt, azure.info, cr_name, ["edge/app1"])
    wrong = reg.connection_string.replace("SyncTokenPassword=", "SyncTokenPassword=x")
    rc, _, err = run(ssh, HELM.replace(" --wait --timeout 5s", ""), stdin=_values(wrong))
    assert rc == 0, err
    core = client.CoreV1Api(kube_client(site.info))

    def failed_pod() -> Any:
        pods = core.list_namespaced_pod("conreg", label_selector="app=cr").items
        return pods and pods[0].status.container_statuses[0].state.waiting and pods[0]

    pod = _wait(failed_pod)
    assert "Unauthorized" in pod.status.container_statuses[0].state.waiting.message
    dep = client.AppsV1Api(kube_client(site.info)).read_namespaced_deployment("cr", "conreg")
    assert not dep.status.available_replicas
    rc, _, err = run(ssh, HELM.replace("--timeout 5s", "--timeout 1s"), stdin=_values(wrong))
    assert rc != 0 and "context deadline exceeded" in err  # --wait times out on an unready CR


def test_restart_regenerates_hosts_toml_and_removes_stale_dirs(
    ssh: paramiko.SSHClient, site: SimulatedSite
) -> None:
    rc, err = _registries(
        site, ssh, 'mirrors:\n  "10.43.7.7:80":\n    endpoint:\n      - "http://10.43.7.7:80"\n'
    )
    assert rc == 0, err
    hosts = Path(site.info["hosts_dir"])
    # HostsTomlTemplate as text/template renders it, then trimEmpty (k3s-io/k3s
    # pkg/agent/templates): no blank lines but one before each table.
    assert (hosts / "10.43.7.7:80/hosts.toml").read_text() == (
        "# File generated by k3s. DO NOT EDIT.\n"
        'server = "https://10.43.7.7:80/v2"\n'
        'capabilities = ["pull", "resolve", "push"]\n'
        "\n"
        "[host]\n"
        "\n"
        '[host."http://10.43.7.7:80/v2"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    rc, err = _registries(
        site, ssh, 'mirrors:\n  "10.43.8.8:80":\n    endpoint:\n      - "http://10.43.8.8:80"\n'
    )
    assert rc == 0
    assert sorted(p.name for p in hosts.iterdir()) == ["10.43.8.8:80"]
    assert site.restart_count == 2
    events = [e for e in site.commands() if e.get("event") == "k3s-restart"]
    assert [e["ok"] for e in events] == [True, True]
    assert client.CoreV1Api(kube_client(site.info)).list_node().items


def test_broken_registries_yaml_fails_restart_and_keeps_api_down(
    ssh: paramiko.SSHClient, site: SimulatedSite
) -> None:
    rc, err = _registries(site, ssh, "mirrors: [this is: not valid\n")
    assert rc != 0 and "k3s.service failed" in err
    rc, out, _ = run(ssh, "systemctl is-active k3s")
    assert (rc, out) == (3, "failed\n")
    core = client.CoreV1Api(kube_client(site.info))
    with pytest.raises(MaxRetryError):
        core.list_namespace(_request_timeout=2)
    rc, err = _registries(site, ssh, "mirrors:\n  - not-a-map\n")  # parses, wrong shape
    assert rc != 0
    rc, err = _registries(site, ssh, "mirrors: {}\n")
    assert rc == 0 and core.list_namespace().items
    assert site.k3s.failed_restarts == 2


def _pod(core: Any, name: str, image: str, secret: str | None = None) -> None:
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "canary", "image": image}],
    }
    if secret:
        spec["imagePullSecrets"] = [{"name": secret}]
    core.create_namespaced_pod("conreg", {"metadata": {"name": name}, "spec": spec})


def _settled(core: Any, name: str) -> Any:
    def check() -> Any:
        pod = core.read_namespaced_pod(name, "conreg")
        statuses = pod.status.container_statuses or []
        waiting = statuses and statuses[0].state.waiting
        if pod.status.phase == "Succeeded" or (
            waiting and waiting.reason in ("ErrImagePull", "ImagePullBackOff")
        ):
            return pod
        return None

    return _wait(check)


def test_kubelet_pulls_through_the_mirror_only_with_valid_credentials(
    ssh: paramiko.SSHClient, site: SimulatedSite, mgmt: Any, azure: Any, cr_name: str
) -> None:
    reg = _install(ssh, mgmt, azure, cr_name)
    core = client.CoreV1Api(kube_client(site.info))
    image = "10.43.7.7:80/edge/app1:v1"
    # no hosts.toml yet: containerd goes to https://10.43.7.7:80 and fails
    _pod(core, "before", image)
    pod = _settled(core, "before")
    assert "HTTP response to HTTPS client" in pod.status.container_statuses[0].state.waiting.message

    mirror = (
        'mirrors:\n  "10.43.7.7:80":\n    endpoint:\n      - "http://10.43.7.7:80"\n'
        f'configs:\n  "10.43.7.7:80":\n    auth:\n      username: {reg.client_username}\n'
        f"      password: {reg.client_password}\n"
    )
    assert _registries(site, ssh, mirror)[0] == 0
    _pod(core, "ok", image)
    pod = _settled(core, "ok")
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].image_id.startswith("10.43.7.7:80/edge/app1@sha256:")

    _pod(core, "unsynced", "10.43.7.7:80/other/tool:v1")
    pod = _settled(core, "unsynced")
    assert "insufficient scopes" in pod.status.container_statuses[0].state.waiting.message
    events = core.list_namespaced_event("conreg", field_selector="involvedObject.name=unsynced")
    assert any(e.reason == "Failed" and e.type == "Warning" for e in events.items)

    # a pod pull secret for the image's own host wins over registries.yaml: a wrong one fails
    auth = base64.b64encode(f"{reg.client_username}:wrong".encode()).decode()
    dockercfg = json.dumps({"auths": {"10.43.7.7:80": {"auth": auth}}})
    core.create_namespaced_secret(
        "conreg",
        {
            "metadata": {"name": "bad"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": dockercfg},
        },
    )
    _pod(core, "badsecret", image, secret="bad")
    pod = _settled(core, "badsecret")
    assert "401 Unauthorized" in pod.status.container_statuses[0].state.waiting.message

    # a secret for another host is not sent: registries.yaml credentials apply again
    other = json.dumps({"auths": {"elsewhere.example:80": {"auth": auth}}})
    core.create_namespaced_secret(
        "conreg",
        {
            "metadata": {"name": "other"},
            "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": other},
        },
    )
    _pod(core, "otherhost", image, secret="other")
    assert _settled(core, "otherhost").status.phase == "Succeeded"
    with pytest.raises(ApiException):
        core.read_namespaced_pod("missing", "conreg")
