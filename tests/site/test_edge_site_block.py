"""EdgeSite validation: bad input refused naming the field, secrets never echoed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from blocks.edge_site import EdgeSite

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-key-material\n-----END OPENSSH PRIVATE KEY-----"
KNOWN = (
    "[10.0.0.5]:2222 ssh-ed25519 "
    "AAAAC3NzaC1lZDI1NTE5AAAAIEvmD3fLh2MHh1yO8P0N7ZqZyZ0iFQh5oTq0bYb5Jq3f"
)


def _site(**kw: Any) -> EdgeSite:
    args: dict[str, Any] = {"name": "plant01", "ssh_host": "10.0.0.5", "ssh_private_key": KEY}
    return EdgeSite(**(args | kw))


def test_distribution_sets_path_defaults_and_paths_stay_overridable() -> None:
    k3s = _site()
    assert (k3s.registries_path, k3s.kubeconfig_path, k3s.service_name) == (
        "/etc/rancher/k3s/registries.yaml",
        "/etc/rancher/k3s/k3s.yaml",
        "k3s",
    )
    assert k3s.hosts_dir == "/var/lib/rancher/k3s/agent/etc/containerd/certs.d"
    rke2 = _site(distribution="rke2", service_name="rke2-agent")
    assert rke2.registries_path == "/etc/rancher/rke2/registries.yaml"
    assert rke2.kubeconfig_path == "/etc/rancher/rke2/rke2.yaml"
    assert rke2.service_name == "rke2-agent"
    assert k3s.namespace == k3s.release_name == "connected-registry"
    assert k3s.pull_secret_name == "acr-edge-pull" and k3s.auth_model == "pull-secret"
    assert isinstance(k3s.ssh_private_key, SecretStr)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Plant01", "name"),
        ("name", "abc", "name"),
        ("ssh_host", "bad host", "ssh_host"),
        ("ssh_port", 0, "ssh_port"),
        ("ssh_user", "Root;rm", "ssh_user"),
        ("known_hosts", ["not a known hosts line"], "known_hosts"),
        ("distribution", "microk8s", "distribution"),
        ("app_namespaces", ["Apps"], "app_namespaces"),
        ("app_namespaces", ["a", "a"], "duplicate"),
        ("namespace", "-x", "namespace"),
        ("service_cluster_ip", "10.44.0.10", "outside the service CIDR"),
        ("service_cluster_ip", "10.43.0.0", "outside the service CIDR"),
        ("service_cluster_ip", "nope", "not an IP"),
        ("chart_values", {"connectionString": "x"}, "would carry a secret"),
        ("chart_values", {"tls": {"key": "x"}}, "would carry a secret"),
        ("chart_values", {"service": {"clusterIP": "10.43.0.9"}}, "dedicated block field"),
        ("kube_access", "kubeconfig", "needs the kubeconfig"),
        ("connect_timeout", 0, "connect_timeout"),
        ("nodes", [{"name": "Agent_1"}], "not a Kubernetes node name"),
        ("nodes", [{"name": "a1"}, {"name": "a1", "ssh_port": 22}], "node a1 is given twice"),
        ("nodes", [{"name": "a1", "ssh_port": 70000}], "nodes.0.ssh_port"),
        ("nodes", [{"name": "a1", "ssh_port": "x"}], "nodes.0.ssh_port"),
        ("nodes", [{"name": "a1", "ssh_host": "bad host"}], "ssh_host"),
        ("nodes", [{"name": "a1", "ssh_user": "Root;rm"}], "nodes.0.ssh_user"),
        ("nodes", [{"name": "a1", "known_hosts": ["nope"]}], "not a known_hosts line"),
        ("nodes", [{"name": "a1", "sshhost": "10.0.0.9"}], "nodes.0.sshhost"),
        ("nodes", "a1", "nodes"),
        ("ssh_jump", "maybe", "ssh_jump"),
        ("node_order", "random", "node_order"),
        ("restart_policy", "sometimes", "restart_policy"),
        ("agent_service_name", "k3s agent; reboot", "not a systemd unit name"),
        ("service_name", "-k3s", "not a systemd unit name"),
    ],
)
def test_bad_input_is_refused_naming_the_field(field: str, value: Any, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        _site(**{field: value})
    assert message in str(info.value)


def test_cluster_ip_in_a_custom_service_cidr() -> None:
    assert _site(service_cidr="10.96.0.0/12", service_cluster_ip="10.96.0.50").service_cluster_ip
    with pytest.raises(ValidationError, match="outside"):
        _site(service_cidr="10.96.0.0/12", service_cluster_ip="10.43.0.10")


def test_validation_errors_never_echo_secrets() -> None:
    with pytest.raises(ValidationError) as info:
        _site(name="BAD", chart_values={"x": {"connectionString": "SyncTokenPassword=leak"}})
    assert "leak" not in str(info.value)
    assert "secret-key-material" not in str(info.value)
    assert "secret-key-material" not in repr(_site())


def test_known_hosts_and_block_schema() -> None:
    site = _site(known_hosts=[KNOWN, "# comment", ""])
    assert site.known_hosts == [KNOWN]
    schema = EdgeSite._to_block_schema()
    assert set(schema.fields["secret_fields"]) == {
        "ssh_private_key",
        "ssh_key_passphrase",
        "kubeconfig",
    }
    assert EdgeSite.get_block_type_slug() == "edge-site"


def test_node_fields_defaults_and_distribution() -> None:
    k3s = _site()
    assert (k3s.nodes, k3s.ssh_jump, k3s.node_order, k3s.restart_policy) == (
        [],
        True,
        "agents-first",
        "auto",
    )
    assert (k3s.service_name, k3s.agent_service_name) == ("k3s", "k3s-agent")
    rke2 = _site(distribution="rke2")
    assert (rke2.service_name, rke2.agent_service_name) == ("rke2-server", "rke2-agent")
    assert _site(distribution="rke2", agent_service_name="rke2-node").agent_service_name == (
        "rke2-node"
    )


def test_node_overrides_parse_and_survive_a_round_trip() -> None:
    site = _site(
        nodes=[
            {"name": "agent-1", "ssh_port": 2200, "known_hosts": [KNOWN, "# c"]},
            {"name": "agent-2.plant", "ssh_host": "10.0.0.9", "ssh_user": "ops"},
        ],
        node_order="servers-first",
        restart_policy="never",
        ssh_jump=False,
    )
    one, two = site.nodes
    assert (one.name, one.ssh_host, one.ssh_port, one.ssh_user) == ("agent-1", None, 2200, None)
    assert one.known_hosts == [KNOWN]
    assert (two.ssh_host, two.ssh_user, two.known_hosts) == ("10.0.0.9", "ops", [])
    # What the block stores is what it loads (Prefect saves the model's dump).
    again = EdgeSite(**(site.model_dump() | {"ssh_private_key": KEY}))
    assert again.nodes == site.nodes and again.restart_policy == "never"


def test_node_fields_have_titles_and_descriptions_in_the_schema() -> None:
    schema = EdgeSite._to_block_schema().fields
    props = schema["properties"]
    for name in ("nodes", "ssh_jump", "node_order", "restart_policy", "agent_service_name"):
        assert props[name].get("title") and props[name].get("description"), name
    override = schema["definitions"]["NodeOverride"]["properties"]
    assert set(override) == {"name", "ssh_host", "ssh_port", "ssh_user", "known_hosts"}
    for name, field in override.items():
        assert field.get("title") and field.get("description"), name


def test_bad_node_input_is_a_validation_error_never_a_traceback_of_another_type() -> None:
    # Bad base64 makes paramiko raise binascii/SSHException inside: it must surface as the
    # field's validation error, naming the override.
    bad_key = "[10.0.0.9]:22 ssh-ed25519 AAAA!!notbase64"
    with pytest.raises(ValidationError) as info:
        _site(nodes=[{"name": "a1", "known_hosts": [bad_key]}])
    assert "nodes.0.known_hosts" in str(info.value)
    with pytest.raises(ValidationError) as info:
        _site(nodes=[None])
    assert "nodes.0" in str(info.value)
