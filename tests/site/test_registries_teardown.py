"""registries.yaml teardown: acr-edge's entries come back out, the operator's file byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from model.errors import PermanentError
from model.site import NodeAuth
from tasks.site import hosts_toml
from tasks.site.mirror_route import route_for
from tasks.site.registries_decode import decode
from tasks.site.registries_teardown import remove_hosts_toml, remove_ours
from tasks.site.registries_yaml import HEADER_PREFIX, merge

GOLDEN = Path(__file__).parent / "golden"
HOST = "10.43.0.10:80"
AUTH = NodeAuth("site1-client", SecretStr("pw"), "password2", "2026-01-02T03:04:05.123456+00:00")


def _pristine() -> list[str]:
    """Golden inputs with nothing of acr-edge's for HOST (the operator's own files)."""
    out = []
    for p in sorted(GOLDEN.glob("*.in.yaml")):
        text = p.read_text()
        if HEADER_PREFIX in text or decode(text).mirror(HOST) is not None:
            continue
        if (decode(text).config(HOST) or None) is not None:
            continue
        out.append(p.name.removesuffix(".in.yaml"))
    return out


CASES = _pristine()


def test_there_are_cases() -> None:
    assert len(CASES) >= 3, CASES


@pytest.mark.parametrize("auth", [None, AUTH], ids=["pull-secret", "node"])
@pytest.mark.parametrize("case", CASES)
def test_merge_then_teardown_restores_the_operators_file_byte_for_byte(
    case: str, auth: NodeAuth | None
) -> None:
    source = (GOLDEN / f"{case}.in.yaml").read_text()
    try:
        merged = merge(source, HOST, auth).content.get_secret_value()
    except PermanentError:
        pytest.skip("provision refuses this file")
    result = remove_ours(merged, HOST, backups={"/x/registries.yaml.bak": source})
    assert result.changed, result.reason
    if not source.strip():
        assert result.content is None, result.reason
        return
    assert result.content is not None
    assert result.content.get_secret_value() == source
    assert result.backup == "/x/registries.yaml.bak", result.reason
    # Without a backup: the round-trip edit, meaning exactly the operator's file.
    bare = remove_ours(merged, HOST)
    assert bare.content is not None and bare.backup is None
    assert decode(bare.content.get_secret_value()) == decode(source)
    again = remove_ours(source, HOST)
    assert not again.changed and again.reason


def test_byte_identical_backup_is_named() -> None:
    source = 'mirrors:\n  docker.io:\n    endpoint:\n      - "https://m.local"\n'
    merged = merge(source, HOST, None).content.get_secret_value()
    result = remove_ours(merged, HOST, backups={"/b": source, "/a": merged})
    assert result.backup == "/b" and "byte-identical" in result.reason, result.reason


def test_a_file_acr_edge_created_is_removed() -> None:
    created = merge(None, HOST, AUTH).content.get_secret_value()
    result = remove_ours(created, HOST)
    assert result.changed and result.content is None, result.reason
    assert "removes the file" in result.reason


def test_a_foreign_mirror_under_our_host_is_left() -> None:
    text = f'mirrors:\n  "{HOST}":\n    endpoint:\n      - "https://elsewhere:5000"\n'
    result = remove_ours(text, HOST)
    assert not result.changed and "left" in result.reason
    assert result.content is not None and result.content.get_secret_value() == text


def test_other_entries_and_a_foreign_auth_are_kept() -> None:
    text = (
        "# operator notes\n"
        'mirrors:\n  docker.io:\n    endpoint:\n      - "https://mirror.local"\n'
        'configs:\n  "10.43.0.10:80":\n    auth:\n      username: op\n      password: x\n'
    )
    merged = merge(text, HOST, None).content.get_secret_value()
    result = remove_ours(merged, HOST)
    assert result.content is not None and result.content.get_secret_value() == text


def test_missing_file_is_a_noop() -> None:
    result = remove_ours(None, HOST)
    assert not result.changed and result.content is None and "does not exist" in result.reason


def test_hosts_toml_only_when_k3s_wrote_it() -> None:
    path = "/var/lib/rancher/k3s/agent/etc/containerd/certs.d/10.43.0.10:80/hosts.toml"
    ours = remove_hosts_toml(hosts_toml.HEADER + "\n[host]\n", HOST, path=path)
    assert ours.changed and ours.content is None
    theirs = remove_hosts_toml('server = "https://x"\n', HOST, path=path)
    assert not theirs.changed and "left" in theirs.reason
    assert not remove_hosts_toml(None, HOST, path=path).changed


# ---- https: the routes acr-edge writes for the registry's IP, and the CA trust ----------------

IP = "10.43.100.10"
CA_FILE = "/etc/rancher/k3s/acr-edge/connected-registry-ca.pem"
CA_TEXT = "# acr-edge: CA of connected registry x\n-----BEGIN CERTIFICATE-----\n"
HTTPS_ROUTES = {
    # an https site: pods name <ip>:443
    "https": route_for(f"{IP}:443", serving="https", wanted="https", ca_file=CA_FILE),
    # an http site migrated: pods keep <ip>:80, the endpoint moved to https
    "migrated": route_for(f"{IP}:80", serving="https", wanted="https", ca_file=CA_FILE),
    # the migration bridge (https first, http second) while the release still serves http
    "bridge": route_for(f"{IP}:80", serving="http", wanted="https", ca_file=CA_FILE),
    "bridge-back": route_for(f"{IP}:80", serving="https", wanted="http", ca_file=CA_FILE),
}


@pytest.mark.parametrize("form", sorted(HTTPS_ROUTES))
@pytest.mark.parametrize("case", CASES)
def test_https_forms_come_back_out_byte_for_byte(case: str, form: str) -> None:
    source = (GOLDEN / f"{case}.in.yaml").read_text()
    route = HTTPS_ROUTES[form]
    try:
        merged = merge(source, route, None).content.get_secret_value()
    except PermanentError:
        pytest.skip("provision refuses this file")
    assert decode(merged).config(f"{IP}:443").tls.ca_file == CA_FILE  # type: ignore[union-attr]
    result = remove_ours(
        merged, route.host, backups={"/x/registries.yaml.bak": source}, ca_file=CA_FILE
    )
    assert result.changed, result.reason
    assert "configs." in result.reason and CA_FILE in result.reason, result.reason
    if not source.strip():
        assert result.content is None, result.reason
        return
    assert result.content is not None
    assert result.content.get_secret_value() == source, result.reason
    bare = remove_ours(merged, route.host, ca_file=CA_FILE)
    assert bare.content is not None
    assert decode(bare.content.get_secret_value()) == decode(source)
    assert not remove_ours(source, route.host, ca_file=CA_FILE).changed


def test_an_https_file_acr_edge_created_is_removed() -> None:
    created = merge(None, HTTPS_ROUTES["https"], None).content.get_secret_value()
    result = remove_ours(created, f"{IP}:443", ca_file=CA_FILE)
    assert result.changed and result.content is None, result.reason


def test_a_tls_entry_naming_another_ca_file_is_left() -> None:
    text = (
        f'mirrors:\n  "{IP}:443":\n    endpoint:\n      - "https://{IP}:443"\n'
        f'configs:\n  "{IP}:443":\n    tls:\n      ca_file: "/etc/operator/ca.pem"\n'
    )
    result = remove_ours(text, f"{IP}:443", ca_file=CA_FILE)
    # The mirror is acr-edge's form and goes; the operator's CA trust stays.
    assert result.changed and result.content is not None, result.reason
    left = decode(result.content.get_secret_value())
    assert left.mirror(f"{IP}:443") is None
    assert left.config(f"{IP}:443").tls.ca_file == "/etc/operator/ca.pem"  # type: ignore[union-attr]


def test_other_fields_of_the_https_config_are_kept() -> None:
    text = (
        f'configs:\n  "{IP}:443":\n    auth:\n      username: op\n      password: x\n'
        f'    tls:\n      ca_file: "{CA_FILE}"\n'
    )
    result = remove_ours(text, f"{IP}:80", ca_file=CA_FILE)
    assert result.changed and result.content is not None, result.reason
    left = decode(result.content.get_secret_value())
    config = left.config(f"{IP}:443")
    assert config is not None and config.tls is None
    assert config.auth is not None and config.auth.username == "op"


@pytest.mark.parametrize(
    "endpoints",
    [
        [f"https://{IP}:443", "https://elsewhere:5000"],
        [f"https://{IP}:8443"],
        [f"http://{IP}:80", "http://other:80"],
        ["https://10.43.100.11:443"],
    ],
)
def test_other_endpoint_lists_under_our_host_are_left(endpoints: list[str]) -> None:
    listed = "".join(f'      - "{e}"\n' for e in endpoints)
    text = f'mirrors:\n  "{IP}:80":\n    endpoint:\n{listed}'
    result = remove_ours(text, f"{IP}:80", ca_file=CA_FILE)
    assert not result.changed and "left" in result.reason, result.reason


# ---- the TLS material's ownership rules (pure plans) -----------------------------------------


def test_tls_secrets_go_only_with_acr_edges_label() -> None:
    from model import tls
    from tasks.site.tls_teardown import plan_tls_secret_delete, tls_secret_names

    assert tls_secret_names("rel") == [
        "rel-acr-edge-ca",
        "rel-acr-edge-tls-a",
        "rel-acr-edge-tls-b",
    ]
    assert plan_tls_secret_delete(dict(tls.MANAGED_BY), resource="s").action == "delete"
    foreign = plan_tls_secret_delete({"app": "theirs"}, resource="s")
    assert foreign.action == "none" and "left" in foreign.reason
    assert plan_tls_secret_delete(None, resource="s").action == "none"


def test_a_node_ca_file_goes_only_with_our_header_for_this_cr() -> None:
    from model import tls
    from tasks.site.tls_teardown import plan_ca_file_delete

    ours = plan_ca_file_delete(tls.ca_file_header("site1"), resource="f", cr_name="site1")
    assert ours.action == "delete"
    other_cr = plan_ca_file_delete(tls.ca_file_header("site2"), resource="f", cr_name="site1")
    assert other_cr.action == "none" and "left" in other_cr.reason
    pem = plan_ca_file_delete("-----BEGIN CERTIFICATE-----", resource="f", cr_name="site1")
    assert pem.action == "none" and "left" in pem.reason
    assert plan_ca_file_delete(None, resource="f", cr_name="site1").action == "none"
