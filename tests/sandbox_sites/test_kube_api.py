"""The kubernetes python client against a node's API, directly and through an SSH forward."""

from __future__ import annotations

import json
from typing import Any

import paramiko
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox.sites import SimulatedSite
from sandbox.sites.testing import kube_client
from tasks.site.ssh import SshSession


def _reason(exc: ApiException) -> str:
    return str(json.loads(exc.body)["reason"])


def _deployment(name: str, pod_spec: dict[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }


def test_direct_crud_statuses_and_conflicts(site: SimulatedSite) -> None:
    api = kube_client(site.info)
    core = client.CoreV1Api(api)
    assert client.VersionApi(api).get_code().git_version.endswith("+k3s1")
    (node,) = core.list_node().items
    assert node.metadata.name == site.name
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"

    core.create_namespace({"metadata": {"name": "conreg"}})
    assert core.read_namespaced_service_account("default", "conreg").metadata.uid
    with pytest.raises(ApiException) as exc:
        core.create_namespace({"metadata": {"name": "conreg"}})
    assert exc.value.status == 409 and _reason(exc.value) == "AlreadyExists"
    with pytest.raises(ApiException) as exc:
        core.create_namespace({"metadata": {"name": "Bad_Name"}})
    assert exc.value.status == 422 and _reason(exc.value) == "Invalid"

    body = {
        "metadata": {"name": "pull", "labels": {"app": "edge"}},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": '{"auths": {}}'},
    }
    created = core.create_namespaced_secret("conreg", body)
    assert created.metadata.resource_version and created.metadata.creation_timestamp
    stale = created.metadata.resource_version
    core.patch_namespaced_secret("pull", "conreg", {"metadata": {"labels": {"v": "2"}}})
    created.metadata.resource_version = stale
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_secret("pull", "conreg", created)
    assert exc.value.status == 409 and _reason(exc.value) == "Conflict"
    core.patch_namespaced_secret(
        "pull", "conreg", [{"op": "add", "path": "/metadata/labels/json", "value": "yes"}]
    )
    core.patch_namespaced_secret(
        "pull",
        "conreg",
        {"metadata": {"labels": {"v": None}}},
        _content_type="application/merge-patch+json",
    )
    labels = core.read_namespaced_secret("pull", "conreg").metadata.labels
    assert labels == {"app": "edge", "json": "yes"}
    assert [
        s.metadata.name
        for s in core.list_namespaced_secret(
            "conreg", label_selector="app=edge,json in (yes)"
        ).items
    ] == ["pull"]
    assert core.list_namespaced_secret("conreg", field_selector="metadata.name=nope").items == []
    core.delete_namespaced_secret("pull", "conreg")
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_secret("pull", "conreg")
    assert exc.value.status == 404 and _reason(exc.value) == "NotFound"

    svc = core.create_namespaced_service(
        "conreg",
        {
            "metadata": {"name": "web"},
            "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}},
        },
    )
    assert svc.spec.cluster_ip.startswith("10.43.")
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_service(
            "conreg",
            {
                "metadata": {"name": "far"},
                "spec": {"clusterIP": "192.168.1.5", "ports": [{"port": 80}]},
            },
        )
    assert exc.value.status == 422 and "10.43.0.0/16" in json.loads(exc.value.body)["message"]

    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(
        "conreg", _deployment("web", {"containers": [{"name": "c", "image": "nginx"}]})
    )
    assert apps.read_namespaced_deployment("web", "conreg").metadata.generation == 1


SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"


def test_strategic_merge_patches_merge_lists_by_their_merge_key(site: SimulatedSite) -> None:
    """A dict patch from the kubernetes client is sent as a strategic merge patch; the API
    server merges patchStrategy=merge lists by key (JSON merge patch would replace them)."""
    api = kube_client(site.info)
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    core.create_namespace({"metadata": {"name": "smp"}})

    def sa_secrets() -> list[str]:
        sa = core.read_namespaced_service_account("default", "smp")
        return [ref.name for ref in sa.secrets or []]

    # ServiceAccount.secrets: patchStrategy=merge, patchMergeKey=name.
    core.patch_namespaced_service_account("default", "smp", {"secrets": [{"name": "a"}]})
    core.patch_namespaced_service_account(
        "default", "smp", {"secrets": [{"name": "b"}]}, _content_type=SMP
    )
    assert sa_secrets() == ["a", "b"]
    core.patch_namespaced_service_account("default", "smp", {"secrets": [{"name": "b"}]})
    assert sa_secrets() == ["a", "b"]  # the default content type for a dict is strategic too
    core.patch_namespaced_service_account(
        "default", "smp", {"secrets": [{"$patch": "delete", "name": "a"}]}
    )
    assert sa_secrets() == ["b"]
    core.patch_namespaced_service_account(
        "default", "smp", {"secrets": [{"name": "c"}]}, _content_type=MERGE
    )
    assert sa_secrets() == ["c"]  # JSON merge patch replaces lists

    # ServiceAccount.imagePullSecrets has no patch strategy in Kubernetes: replaced, even by a
    # strategic merge patch (PodSpec.imagePullSecrets, by contrast, merges by name).
    for name in ("w", "x"):
        core.patch_namespaced_service_account(
            "default", "smp", {"imagePullSecrets": [{"name": name}]}, _content_type=SMP
        )
    sa = core.read_namespaced_service_account("default", "smp")
    assert [ref.name for ref in sa.image_pull_secrets] == ["x"]

    # Containers merge by name, and a container's own fields merge too.
    pod_spec = {
        "containers": [
            {"name": "app", "image": "nginx:1", "ports": [{"containerPort": 80}]},
            {"name": "side", "image": "busybox"},
        ],
        "imagePullSecrets": [{"name": "p1"}],
    }
    apps.create_namespaced_deployment("smp", _deployment("web", pod_spec))
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "app", "image": "nginx:2"}],
                    "imagePullSecrets": [{"name": "p2"}],
                }
            }
        }
    }
    apps.patch_namespaced_deployment("web", "smp", patch, _content_type=SMP)
    pod = apps.read_namespaced_deployment("web", "smp").spec.template.spec
    assert [(c.name, c.image) for c in pod.containers] == [
        ("app", "nginx:2"),
        ("side", "busybox"),
    ]
    assert pod.containers[0].ports[0].container_port == 80
    assert [ref.name for ref in pod.image_pull_secrets] == ["p1", "p2"]
    apps.patch_namespaced_deployment("web", "smp", patch, _content_type=MERGE)
    pod = apps.read_namespaced_deployment("web", "smp").spec.template.spec
    assert [c.name for c in pod.containers] == ["app"]


def test_anonymous_client_gets_401(site: SimulatedSite) -> None:
    api = kube_client(site.info)
    api.configuration.cert_file = None
    api.configuration.key_file = None
    anon = client.ApiClient(api.configuration)
    with pytest.raises(ApiException) as exc:
        client.CoreV1Api(anon).list_namespace()
    assert exc.value.status == 401


def test_through_ssh_direct_tcpip_forward(ssh: paramiko.SSHClient, site: SimulatedSite) -> None:
    # Production's one port-forward pump carries the API (the sandbox has no copy of it).
    session = SshSession(ssh, resource=f"site {site.name}")
    port = session.forward("127.0.0.1", int(site.info["kube_api_port"]))
    try:
        api = kube_client(site.info, host=f"https://127.0.0.1:{port}")
        names = [n.metadata.name for n in client.CoreV1Api(api).list_namespace().items]
        assert {"default", "kube-system"} <= set(names)
    finally:
        session.close_forwards()


def test_api_unavailable_knob_answers_503(site: SimulatedSite) -> None:
    core = client.CoreV1Api(kube_client(site.info))
    site.knobs.api_unavailable = True
    with pytest.raises(ApiException) as exc:
        core.list_namespace()
    assert exc.value.status == 503
    site.knobs.api_unavailable = False
    assert core.list_namespace().items
