"""plan_node_mirror (pure): when a node's mirror change is live without a restart, and when not."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from model.site import NodeAuth
from tasks.site import hosts_toml, registries_decode, registries_yaml
from tasks.site.node_mirror_plan import NodeMirrorFact, masked_diff, plan_node_mirror, routes_http

HOST = "10.43.0.10:80"
PATH = "/etc/rancher/k3s/registries.yaml"
PASSWORD = "s3cr3t-Pa55word-value"
AUTH = NodeAuth("site1-client", SecretStr(PASSWORD), "password1", "2026-12-01T00:00:00+00:00")


def _fact(text: str | None, *, hosts: str | None = None, pending: bool = False) -> NodeMirrorFact:
    return NodeMirrorFact(
        text=None if text is None else SecretStr(text),
        exists=text is not None,
        hosts_toml=hosts,
        pending=pending,
    )


def _plan(fact: NodeMirrorFact, auth: NodeAuth | None = None, **kw: object) -> object:
    return plan_node_mirror(
        fact,
        HOST,
        auth,
        node="n1",
        service="k3s-agent",
        path=PATH,
        node_model=auth is not None,
        **kw,  # type: ignore[arg-type]
    )


def _converged(auth: NodeAuth | None = None) -> tuple[str, str]:
    text = registries_yaml.merge(None, HOST, auth, path=PATH).content.get_secret_value()
    rendered = hosts_toml.render(registries_decode.decode(text), HOST)
    assert rendered is not None
    return text, rendered


def test_a_new_mirror_is_made_live_by_hosts_toml_without_a_restart() -> None:
    change = _plan(_fact(None))
    assert change.action == "write"  # type: ignore[attr-defined]
    shown = change.shown  # type: ignore[attr-defined]
    assert shown["write_file"] and not shown["restart"] and not shown["restart_pending"]
    assert routes_http(shown["hosts_toml"], HOST)
    assert "no restart" in change.reason  # type: ignore[attr-defined]


def test_node_credentials_need_the_restart_and_no_hosts_toml_is_written() -> None:
    change = _plan(_fact(None), AUTH)
    shown = change.shown  # type: ignore[attr-defined]
    assert shown["restart"] and shown["hosts_toml"] is None
    assert "node credentials load only when K3s starts" in change.reason  # type: ignore[attr-defined]
    assert PASSWORD not in change.reason  # type: ignore[attr-defined]


def test_restart_policy_always_restarts_a_mirror_only_change() -> None:
    shown = _plan(_fact(None), policy="always").shown  # type: ignore[attr-defined]
    assert shown["restart"] and shown["hosts_toml"] is None


def test_restart_policy_never_writes_and_reports_the_restart_pending() -> None:
    change = _plan(_fact(None), AUTH, policy="never")
    shown = change.shown  # type: ignore[attr-defined]
    assert change.action == "write" and not shown["restart"]  # type: ignore[attr-defined]
    assert shown["restart_pending"] and "restart pending" in change.reason  # type: ignore[attr-defined]


def test_a_converged_node_is_a_no_op_that_says_why() -> None:
    text, rendered = _converged()
    change = _plan(_fact(text, hosts=rendered))
    assert change.action == "none"  # type: ignore[attr-defined]
    assert f"hosts.toml routes {HOST}" in change.reason  # type: ignore[attr-defined]


def test_a_right_file_with_a_missing_hosts_toml_gets_only_the_hosts_toml() -> None:
    text, _ = _converged()
    change = _plan(_fact(text, hosts=None, pending=True))
    shown = change.shown  # type: ignore[attr-defined]
    assert change.action == "write" and not shown["write_file"]  # type: ignore[attr-defined]
    assert shown["hosts_toml"] and not shown["restart"]


def test_node_credentials_written_but_never_loaded_restart_on_the_next_run() -> None:
    text, rendered = _converged(AUTH)
    change = _plan(_fact(text, hosts=rendered, pending=True), AUTH)
    assert change.shown["restart"] and not change.shown["write_file"]  # type: ignore[attr-defined]
    assert change.action == "restart"  # type: ignore[attr-defined]


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="restart_policy"):
        _plan(_fact(None), policy="sometimes")


def test_the_diff_masks_every_credential_value_even_in_one_line_json() -> None:
    encoded = base64.b64encode(f"u:{PASSWORD}".encode()).decode()
    old = (
        '{"mirrors":{"docker.io":{"endpoint":["https://m.example"]}},'
        f'"configs":{{"m.example":{{"auth":{{"username":"u","password":"{PASSWORD}",'
        f'"auth":"{encoded}"}}}}}}}}\n'
    )
    new = registries_yaml.merge(old, HOST, AUTH, path=PATH).content.get_secret_value()
    diff = masked_diff(old, new, PATH)
    assert diff and PASSWORD not in diff and encoded not in diff
    assert "********" in diff
    change = _plan(_fact(old), AUTH)
    assert PASSWORD not in str(change.shown)  # type: ignore[attr-defined]
