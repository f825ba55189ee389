"""registries.yaml merge: golden files for each shape K3s accepts, refusals, idempotence, and
that everything the operator wrote survives the edit."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from model.errors import PermanentError
from model.site import NodeAuth
from tasks.site.registries_decode import Auth, Mirror, decode
from tasks.site.registries_yaml import NodeCredential, merge, node_credential, parse

GOLDEN = Path(__file__).parent / "golden"
HOST = "10.43.0.10:80"
CASES = sorted(p.name.removesuffix(".in.yaml") for p in GOLDEN.glob("*.in.yaml"))
# Files whose content already means the desired state: they must not be rewritten.
UNCHANGED = {"quoted_same_host_correct", "pull_secret_keeps_foreign_auth"}


HEADER_AUTH = NodeAuth(
    "site1-client", SecretStr("golden-password"), "password2", "2026-01-02T03:04:05.123456+00:00"
)


def _auth_for(case: str) -> NodeAuth | None:
    if case.startswith("node_header"):
        return HEADER_AUTH
    if case.startswith("node_auth"):
        return NodeAuth("client-token", SecretStr("golden-password"))
    return None


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    source = (GOLDEN / f"{case}.in.yaml").read_text()
    result = merge(source, HOST, _auth_for(case))
    out = result.content.get_secret_value()
    expected_path = GOLDEN / f"{case}.out.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        expected_path.write_text(out)
    assert out == expected_path.read_text()
    assert result.changed is (case not in UNCHANGED), result.reason
    # K3s's reading of the output: the mirror routes over plain http to the CR.
    assert yaml.safe_load(out)["mirrors"][HOST]["endpoint"] == [f"http://{HOST}"]
    again = merge(out, HOST, _auth_for(case))
    assert again.changed is False
    assert again.content.get_secret_value() == out


def test_golden_keeps_meaning_of_other_entries() -> None:
    source = (GOLDEN / "anchors_merge.in.yaml").read_text()
    before = parse(source)
    after = parse(merge(source, HOST).content.get_secret_value())
    assert after["mirrors"]["docker.io"] == before["mirrors"]["docker.io"]
    assert after["mirrors"]["quay.io"]["endpoint"] == ["https://quay-mirror.corp.example"]
    assert after["mirrors"]["quay.io"]["rewrite"] == {"^library/(.*)": "proxy/$1"}
    assert after["configs"] == before["configs"]


def test_absent_file_is_created() -> None:
    result = merge(None, HOST)
    assert result.changed
    assert result.content.get_secret_value() == (
        f'mirrors:\n  "{HOST}":\n    endpoint:\n    - "http://{HOST}"\n'
    )


def test_node_auth_replaces_password_and_result_repr_hides_it() -> None:
    result = merge(None, HOST, NodeAuth("client-token", SecretStr("s3cr3t-pw")))
    assert "s3cr3t-pw" in result.content.get_secret_value()
    assert "s3cr3t-pw" not in repr(result)
    new_auth = NodeAuth("client-token", SecretStr("n"))
    rotated = merge(result.content.get_secret_value(), HOST, new_auth)
    assert rotated.changed
    assert parse(rotated.content.get_secret_value())["configs"][HOST]["auth"]["password"] == "n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("mirrors: [docker.io]\n", "line 1: mirrors is a list where K3s needs a mapping"),
        ("mirrors:\n  docker.io: http://x\n", "line 2: mirrors.<host> is a single value"),
        ("mirrors:\n  docker.io:\n    endpoint: http://x\n", "endpoint is a single value"),
        ("configs:\n  a.b:\n    auth: [u, p]\n", "configs.<host>.auth is a list"),
        ("configs: 3\n", "configs is a single value where K3s needs a mapping"),
        ("- mirrors\n", "the top level is a list"),
        ("mirrors:\n  docker.io:\n    endpoint: [\n", "does not parse as YAML (line 4"),
        ("mirrors: {a: 1}: 2\n", "does not parse as YAML (line 1"),
        ('{"configs": {"a.b": {"auth": {"password": "\\ud800\\udc00"}}}}', "surrogate"),
        # Leaf types: yaml.v2 fails the whole file, so K3s does not start.
        ('configs:\n  a.b:\n    tls:\n      insecure_skip_verify: "true"\n', "needs true or false"),
        ("configs:\n  a.b:\n    tls: {insecure_skip_verify: 1}\n", "needs true or false"),
        (
            "mirrors:\n  a.b:\n    rewrite:\n      x: [y]\n",
            "<host> is a list where K3s",
        ),
        ("mirrors:\n  a.b:\n    endpoint:\n    - {url: x}\n", "endpoint[0] is a mapping"),
        ("configs:\n  a.b:\n    auth: {username: [u]}\n", "auth.username is a list"),
    ],
)
def test_refuses_what_k3s_rejects(text: str, message: str) -> None:
    with pytest.raises(PermanentError, match=r"registries\.yaml") as info:
        merge(text, HOST)
    assert message in str(info.value)
    assert "Fix:" in str(info.value)
    if "does not parse" not in message and "surrogate" not in message:
        assert "K3s would refuse this file" in str(info.value)


def test_parse_error_does_not_echo_file_content() -> None:
    text = "configs:\n  a.b:\n    auth: {username: u, password: hunter2hunter2\n"
    with pytest.raises(PermanentError) as info:
        merge(text, HOST)
    assert "hunter2" not in str(info.value)


def test_refuses_a_host_k3s_would_not_treat_as_registry() -> None:
    with pytest.raises(PermanentError, match="needs a"):
        merge(None, "localhost")


_hosts = st.from_regex(r"[a-z][a-z0-9]{0,8}\.[a-z]{2,4}(:[1-9][0-9]{1,4})?", fullmatch=True)
_endpoints = st.lists(
    st.builds(lambda s, h: f"{s}://{h}", st.sampled_from(["http", "https"]), _hosts), max_size=3
)
_mirror = st.one_of(st.none(), st.fixed_dictionaries({"endpoint": _endpoints}))
_scalars = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=8),
    st.booleans(),
    st.integers(),
    st.none(),
)
_config = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "tls": st.fixed_dictionaries({"insecure_skip_verify": st.booleans()}),
            "auth": st.fixed_dictionaries({"username": _scalars, "password": _scalars}),
        },
    ),
)
_registries = st.fixed_dictionaries(
    {},
    optional={
        "mirrors": st.one_of(st.none(), st.dictionaries(_hosts, _mirror, max_size=4)),
        "configs": st.one_of(st.none(), st.dictionaries(_hosts, _config, max_size=4)),
    },
)


@settings(max_examples=60, deadline=None)
@given(data=_registries, host=_hosts, node=st.booleans(), as_json=st.booleans())
def test_merge_is_idempotent_and_keeps_other_entries(
    data: dict, host: str, node: bool, as_json: bool
) -> None:
    import json

    source = json.dumps(data, ensure_ascii=False) if as_json else yaml.safe_dump(data)
    auth = NodeAuth("client-token", SecretStr("pw")) if node else None
    first = merge(source, host, auth)
    out = first.content.get_secret_value()
    second = merge(out, host, auth)
    assert second.changed is False
    assert second.content.get_secret_value() == out
    before, merged = decode(source), decode(out)
    assert merged.mirror(host) == Mirror((f"http://{host}",), None)
    for other in before.mirrors or {}:
        if other != host:
            assert merged.mirror(other) == before.mirror(other)
    for other in before.configs or {}:
        if other != host:
            assert merged.config(other) == before.config(other)


# -- the node credential header (node auth model) ---------------------------------------------

HEADER = (
    '# acr-edge: auth for "10.43.0.10:80" is token site1-client password2 '
    "created 2026-01-02T03:04:05.123456+00:00\n"
)


def test_header_is_written_with_the_credential_and_parsed_back() -> None:
    out = merge(None, HOST, HEADER_AUTH).content.get_secret_value()
    assert out.startswith(HEADER)
    assert parse(out)["configs"][HOST]["auth"]["password"] == "golden-password"
    assert node_credential(out, HOST) == NodeCredential(
        HOST, "site1-client", "password2", "2026-01-02T03:04:05.123456+00:00"
    )
    assert "golden-password" not in out.splitlines()[0]  # the record never holds the value


def test_header_is_stable_on_rerun_and_changes_with_the_slot() -> None:
    out = merge(None, HOST, HEADER_AUTH).content.get_secret_value()
    again = merge(out, HOST, HEADER_AUTH)
    assert not again.changed and again.content.get_secret_value() == out
    assert "password2" in again.reason
    newer = NodeAuth("site1-client", SecretStr("n"), "password1", "2026-03-01T00:00:00+00:00")
    rotated = merge(out, HOST, newer)
    assert rotated.changed
    record = node_credential(rotated.content.get_secret_value(), HOST)
    assert record is not None and (record.slot, record.created) == (
        "password1",
        "2026-03-01T00:00:00+00:00",
    )


def test_only_the_header_differs_is_a_change_that_records_the_slot() -> None:
    legacy = (
        (GOLDEN / "node_header_written.in.yaml")
        .read_text()
        .replace("legacy-password-without-record", "golden-password")
    )
    assert node_credential(legacy, HOST) is None  # written before the header existed
    result = merge(legacy, HOST, HEADER_AUTH)
    assert result.changed and "records that site1-client password2" in result.reason
    assert parse(result.content.get_secret_value()) == parse(legacy)


def test_no_header_in_the_pull_secret_model() -> None:
    out = merge(None, HOST).content.get_secret_value()
    assert "acr-edge" not in out
    assert node_credential(out, HOST) is None
    # Auth without slot metadata (a caller that does not know the slot) records nothing.
    plain = merge(None, HOST, NodeAuth("site1-client", SecretStr("p"))).content
    assert node_credential(plain.get_secret_value(), HOST) is None


@pytest.mark.parametrize(
    "edit",
    [
        lambda h, b: h.replace("password2", "password3") + b,
        lambda h, b: h.replace(" created", "  created") + b,
        lambda h, b: h.replace("site1-client", "other-client") + b,  # not the file's username
        lambda h, b: h.replace("2026-01-02T03:04:05.123456+00:00", "yesterday") + b,
        lambda h, b: h.replace('"10.43.0.10:80"', '"10.43.0.11:80"') + b,
        lambda h, b: b + h,  # below the YAML: not the header acr-edge writes
    ],
)
def test_hand_edited_header_is_ignored_and_replaced_at_the_next_write(
    edit: Callable[[str, str], str],
) -> None:
    out = merge(None, HOST, HEADER_AUTH).content.get_secret_value()
    header, body = out.split("\n", 1)
    edited = edit(header + "\n", body)
    assert parse(edited) == parse(out)  # same meaning for K3s
    assert node_credential(edited, HOST) is None
    fixed = merge(edited, HOST, HEADER_AUTH)
    assert fixed.changed
    assert fixed.content.get_secret_value() == out


# -- what the operator wrote survives (round trip) ---------------------------------------------

OPERATOR = """\
# Site 12 mirrors -- ask ops@example before editing
x-tls: &corp-tls
    ca_file: "/etc/ssl/corp-ca.pem" # the corporate root
mirrors:
    docker.io:                      # Docker Hub through the corp cache
        endpoint:
            - 'https://cache.corp.example'
configs:
    cache.corp.example:
        tls: *corp-tls
    registry.corp.example:
        auth: {username: "corp-puller", password: "corp-password"}
"""


def test_comments_anchors_quoting_and_indentation_are_kept() -> None:
    result = merge(OPERATOR, HOST)
    out = result.content.get_secret_value()
    assert result.changed and result.mirror_changed and not result.auth_changed
    # Everything the operator wrote is still there, byte for byte; ours follows docker.io.
    at = OPERATOR.index("configs:")
    ours = f'    "{HOST}":\n        endpoint:\n            - "http://{HOST}"\n'
    assert out == OPERATOR[:at] + ours + OPERATOR[at:]
    assert decode(out).config("cache.corp.example") == decode(OPERATOR).config("cache.corp.example")


def test_our_own_output_merged_again_is_byte_identical() -> None:
    for auth in (None, HEADER_AUTH):
        out = merge(OPERATOR, HOST, auth).content.get_secret_value()
        again = merge(out, HOST, auth)
        assert not again.changed and again.content.get_secret_value() == out
        assert not again.mirror_changed and not again.auth_changed


def test_rancher_one_line_json_stays_one_line() -> None:
    source = '{"mirrors":{"docker.io":{"endpoint":["https://mirror.gcr.io"]}}}\n'
    out = merge(source, HOST, NodeAuth("client-token", SecretStr("pw"))).content
    text = out.get_secret_value()
    assert text.count("\n") == 1 and text.startswith('{"mirrors": {"docker.io"')
    assert '"username": "client-token"' in text and '"password": "pw"' in text
    assert parse(text)["configs"][HOST]["auth"]["password"] == "pw"


def test_document_start_and_comments_above_it_are_kept() -> None:
    source = "# managed by hand\n---\n# mirrors below\nmirrors: {}\n"
    out = merge(source, HOST).content.get_secret_value()
    assert out.startswith("# managed by hand\n---\n# mirrors below\nmirrors:")


def test_another_owners_auth_is_kept_in_the_pull_secret_model() -> None:
    source = (
        f'mirrors:\n  "{HOST}":\n    endpoint: ["http://{HOST}"]\n'
        f'configs:\n  "{HOST}":\n    auth: {{username: ops, password: ops-pw}}\n'
    )
    result = merge(source, HOST)
    assert not result.changed and result.content.get_secret_value() == source
    # The same entry written by acr-edge (its header says so) is removed, with a restart.
    ours = merge(None, HOST, HEADER_AUTH).content.get_secret_value()
    dropped = merge(ours, HOST)
    assert dropped.changed and dropped.auth_changed and not dropped.mirror_changed
    assert decode(dropped.content.get_secret_value()).config(HOST) is None


def test_a_shared_anchor_is_copied_not_edited() -> None:
    source = (
        f'base: &m\n  endpoint: [https://a.example]\nmirrors:\n  docker.io: *m\n  "{HOST}": *m\n'
    )
    out = merge(source, HOST).content.get_secret_value()
    assert decode(out).mirror("docker.io") == Mirror(("https://a.example",), None)
    assert decode(out).mirror(HOST) == Mirror((f"http://{HOST}",), None)
    assert "base: &m" in out and "docker.io: *m" in out


def test_flags_and_hosts_toml_say_whether_a_restart_is_needed() -> None:
    mirror_only = merge("mirrors: {}\n", HOST)
    assert (mirror_only.mirror_changed, mirror_only.auth_changed) == (True, False)
    assert mirror_only.hosts_toml is not None
    assert f'[host."http://{HOST}/v2"]' in mirror_only.hosts_toml
    text = mirror_only.content.get_secret_value()
    credential = merge(text, HOST, NodeAuth("client-token", SecretStr("pw")))
    assert (credential.mirror_changed, credential.auth_changed) == (False, True)
    assert credential.hosts_toml == mirror_only.hosts_toml  # credentials never reach hosts.toml
    assert "pw" not in (credential.hosts_toml or "")


def test_node_auth_keeps_other_auth_fields_out() -> None:
    source = f'configs:\n  "{HOST}":\n    auth:\n      auth: dXNlcjpwdw==\n      username: x\n'
    out = merge(source, HOST, NodeAuth("client-token", SecretStr("pw"))).content
    assert decode(out.get_secret_value()).config(HOST).auth == Auth("client-token", "pw")  # type: ignore[union-attr]
