"""registries.yaml teardown: acr-edge's entries come back out, the operator's file byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from model.errors import PermanentError
from model.site import NodeAuth
from tasks.site import hosts_toml
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
