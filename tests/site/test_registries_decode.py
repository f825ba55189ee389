"""registries.yaml read as K3s reads it (yaml.v2 into wharfie's types), and every refusal."""

from __future__ import annotations

import pytest

from model.errors import PermanentError
from tasks.site.registries_decode import (
    MAX_BYTES,
    Auth,
    Mirror,
    RegistryConfig,
    Tls,
    check_size,
    decode,
    decode_bytes,
)

SECRET = "hunter2-planted-secret"


def _refusal(text: str) -> str:
    with pytest.raises(PermanentError) as info:
        decode(text, "/etc/rancher/k3s/registries.yaml")
    message = str(info.value)
    assert message.startswith("/etc/rancher/k3s/registries.yaml: ") and "Fix:" in message
    return message


# -- what K3s accepts, with K3s's meaning ------------------------------------------------------


def test_yaml_v2_meaning_of_scalars_nulls_and_unknown_keys() -> None:
    registries = decode(
        "mirrors:\n"
        "  docker.io:\n"  # null entry: the zero Mirror
        "  ghcr.io: {endpoint: ~, extra: [ignored, {deep: 1}]}\n"
        "configs:\n"
        "  a.example:\n"
        "    auth: {username: 80, password: yes}\n"  # any scalar: its literal text
        "    tls: {insecure_skip_verify: yes, ca_file: 0777}\n"  # YAML 1.1 bool
        "  b.example:\n"
        "    tls: NULL\n"  # allocates the pointer: an empty TLS config
        "  c.example:\n"
        "    tls: null\n"  # a nil pointer
        "unknown: {whatever: [1, 2]}\n"
    )
    assert registries.mirror("docker.io") == Mirror()
    assert registries.mirror("ghcr.io") == Mirror()
    assert registries.config("a.example") == RegistryConfig(
        Auth("80", "yes"), Tls(ca_file="0777", insecure_skip_verify=True)
    )
    assert registries.config("b.example") == RegistryConfig(tls=Tls())
    assert registries.config("c.example") == RegistryConfig()


def test_merge_keys_and_aliases_as_yaml_v2_merges_them() -> None:
    registries = decode(
        "x-auth: &auth {username: u, password: p}\n"
        "x-mirror: &m {endpoint: [https://a.example], rewrite: {'^a/(.*)': 'b/$1'}}\n"
        "base: &base\n  mirrors: {docker.io: *m}\n"
        "<<: *base\n"
        "mirrors:\n"  # decoded into the merged map: K3s keeps docker.io (a union)
        "  quay.io:\n    <<: [*m, {endpoint: [https://ignored.example]}]\n"
        "configs:\n  a.example:\n    auth:\n      <<: *auth\n      password: own\n"
    )
    assert registries.mirror("docker.io") == Mirror(("https://a.example",), {"^a/(.*)": "b/$1"})
    assert registries.mirror("quay.io") == registries.mirror("docker.io")  # earlier merge wins
    assert registries.config("a.example") == RegistryConfig(Auth("u", "own"))


def test_empty_comment_only_and_document_marker_files_mean_nothing() -> None:
    for text in ("", "# only a comment\n", "---\n", "{}\n", "---\n...\n"):
        assert decode(text).mirrors is None


def test_credentials_never_appear_in_the_repr() -> None:
    registries = decode(f"configs:\n  a.b:\n    auth: {{username: u, password: {SECRET}}}\n")
    assert SECRET not in repr(registries)


# -- what K3s refuses (leaf and container types) -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ('configs:\n  a.b:\n    tls:\n      insecure_skip_verify: "true"\n', 4, "true or false"),
        ("configs:\n  a.b:\n    tls: {insecure_skip_verify: 1}\n", 3, "true or false"),
        (
            "mirrors:\n  a.b:\n    rewrite:\n      '^x': [y, z]\n",
            4,
            "is a list where K3s needs text",
        ),
        ("mirrors:\n  a.b:\n    endpoint:\n    - {host: x}\n", 4, "is a mapping where K3s needs"),
        ("mirrors:\n  a.b:\n    endpoint: https://x\n", 3, "a single value where K3s needs a list"),
        ("configs:\n  a.b:\n    auth: token\n", 3, "a single value where K3s needs a mapping"),
        ("configs:\n  a.b:\n    auth: !!int abc\n", 3, "does not fit its !!int tag"),
        ("mirrors: {a.b: {<<: [x]}}\n", 1, "merge in mirrors"),
        ("- mirrors\n", 1, "the top level is a list"),
    ],
)
def test_refuses_what_k3s_refuses_with_the_line(text: str, line: int, words: str) -> None:
    message = _refusal(text)
    assert f"line {line}: " in message and words in message
    assert "K3s would refuse this file" in message


def test_duplicate_keys_are_refused_saying_k3s_would_accept_them() -> None:
    message = _refusal("mirrors:\n  a.b: {endpoint: [x]}\n  a.b: {endpoint: [y]}\n")
    assert "line 3: a key appears twice in one mapping (lines 2 and 3)" in message
    assert "K3s would accept this file and silently use the last value" in message
    assert "acr-edge refuses it because" in message
    assert "K3s would refuse" not in message


def test_several_documents_bad_tags_and_surrogates_are_refused() -> None:
    assert "holds 2 YAML documents; K3s would read only the first" in _refusal("a: 1\n---\nb: 2\n")
    assert "line 2: uses a YAML tag" in _refusal("mirrors:\n  a.b: !custom {endpoint: [x]}\n")
    assert "uses a YAML tag" in _refusal("configs: !!python/object:os.system {}\n")
    assert "surrogate" in _refusal('{"configs": {"a.b": {"auth": {"password": "\\ud83d\\ude00"}}}}')
    assert "refers to its own anchor" in _refusal("a: &a [1, *a]\n")


def test_non_utf8_bytes_are_refused_with_their_line() -> None:
    assert decode_bytes(b"mirrors: {}\n", "r.yaml") == "mirrors: {}\n"
    with pytest.raises(PermanentError) as info:
        decode_bytes(
            b"mirrors:\n  a.b:\n    endpoint: [\xff\xfe" + SECRET.encode() + b"]\n", "r.yaml"
        )
    assert "line 3: holds bytes that are not UTF-8" in str(info.value)
    assert SECRET not in str(info.value)


def test_oversize_files_are_refused_before_parsing() -> None:
    check_size(MAX_BYTES, "r.yaml")
    with pytest.raises(PermanentError, match=f"over acr-edge's limit of {MAX_BYTES}"):
        check_size(MAX_BYTES + 1, "r.yaml")
    assert "over acr-edge's limit" in _refusal("# " + "x" * MAX_BYTES + "\n")


@pytest.mark.timeout(60)
def test_an_alias_bomb_is_refused_without_expanding_it() -> None:
    # Nine levels of nine aliases: 387 million nodes once expanded; refused from its graph.
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, 10):
        lines.append(f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]")
    message = _refusal("\n".join(lines) + "\n")
    assert "expands to more than 10000 YAML nodes through its aliases" in message


@pytest.mark.parametrize(
    "text",
    [
        f"configs:\n  a.b:\n    auth: {{password: {SECRET}\n",  # unclosed flow mapping
        f'configs:\n  a.b:\n    auth: {{password: "{SECRET}\\q"}}\n',  # bad escape
        f"configs:\n  a.b:\n    auth:\n      password: {SECRET}\n     bad: [\n",
        f"configs:\n  a.b:\n    auth:\n      password: [{SECRET}]\n",  # type error
        f"configs:\n  a.b:\n    auth:\n      password: *{SECRET}\n",  # undefined alias
        f"configs:\n  a.b:\n    tls: {{insecure_skip_verify: {SECRET}}}\n",
        f"configs:\n  {SECRET}:\n    auth: {{}}\n  {SECRET}:\n    auth: {{}}\n",
        f"mirrors: {{a.b: {{endpoint: [x]}}}}\n---\n{SECRET}: 1\n",
        f"configs: !{SECRET} {{}}\n",
        f"password: {SECRET}\x07\n",  # a control character
    ],
)
def test_no_refusal_quotes_the_file(text: str) -> None:
    assert SECRET not in _refusal(text)
