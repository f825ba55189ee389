"""HTTPS on the node side (pure): routes, the registries.yaml merge with the site CA, the node
plan writing the CA file, and the chart values that serve a certificate slot."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from blocks.edge_site import EdgeSite
from model import tls
from model.errors import PermanentError
from model.site import MirrorRoute, NodeAuth, SyncCredentialRef
from tasks.site import helm_values, hosts_toml, registries_decode, registries_yaml
from tasks.site.mirror_route import route_for, server_sans
from tasks.site.node_mirror_plan import NodeMirrorFact, plan_node_mirror

PATH = "/etc/rancher/k3s/registries.yaml"
CA_FILE = tls.node_ca_path(PATH, "connected-registry")
CA_TEXT = "# acr-edge: CA of connected registry site1\n-----BEGIN CERTIFICATE-----\nMIIB\n"
IP = "10.43.0.10"
REF = SyncCredentialRef(token="site1", slot="password1", created="2026-12-01T00:00:00Z")
CS = SecretStr(
    "ConnectedRegistryName=site1;SyncTokenName=site1;SyncTokenPassword=pw-AAAA;"
    "ParentGatewayEndpoint=contoso.eastus.data.azurecr.io;ParentEndpointProtocol=https"
)


def _route(host: str, serving: str, wanted: str = "https") -> MirrorRoute:
    return route_for(host, serving=serving, wanted=wanted, ca_file=CA_FILE, ca_text=CA_TEXT)


def _site(**kw: object) -> EdgeSite:
    base: dict[str, object] = {"name": "site1", "ssh_host": "h", "ssh_private_key": "k"}
    return EdgeSite(**(base | kw))  # type: ignore[arg-type]


def test_routes_keep_the_pod_facing_name_and_bridge_a_transport_change() -> None:
    assert route_for(f"{IP}:80", serving="http", wanted="http") == MirrorRoute.http(f"{IP}:80")
    fresh = _route(f"{IP}:443", "https")
    assert fresh.endpoints == (f"https://{IP}:443",)
    assert (fresh.ca_host, fresh.ca_file) == (f"{IP}:443", CA_FILE)
    bridge = _route(f"{IP}:80", "http")
    assert bridge.host == f"{IP}:80"  # image references and pull secrets stay valid
    assert bridge.endpoints == (f"https://{IP}:443", f"http://{IP}:80")
    migrated = _route(f"{IP}:80", "https")
    assert migrated.endpoints == (f"https://{IP}:443",)
    back = _route(f"{IP}:80", "https", "http")
    assert back.endpoints == (f"http://{IP}:80", f"https://{IP}:443")
    with pytest.raises(ValueError):
        route_for(f"{IP}:443", serving="https", wanted="https")
    assert server_sans(IP, "cr", "rel", None) == [IP, "rel.cr.svc", "rel.cr.svc.cluster.local"]
    assert server_sans(IP, "cr", "rel", "site1.example")[-1] == "site1.example"


OPERATOR = """\
# the operator's file
mirrors:
  docker.io:
    endpoint: ["https://mirror.example.com"]
configs:
  mirror.example.com:
    tls:
      ca_file: /etc/ssl/operator-ca.pem
"""


def _hosts(text: str, host: str) -> str | None:
    return hosts_toml.render(registries_decode.decode(text), host)


def test_the_https_merge_trusts_the_site_ca_and_keeps_every_operator_entry() -> None:
    route = _route(f"{IP}:443", "https")
    merged = registries_yaml.merge(OPERATOR, route, path=PATH)
    text = merged.content.get_secret_value()
    assert text.startswith(OPERATOR.splitlines()[0])  # the comment stays
    data = registries_yaml.parse(text)
    assert data["mirrors"][f"{IP}:443"] == {"endpoint": [f"https://{IP}:443"]}
    assert data["configs"][f"{IP}:443"]["tls"]["ca_file"] == CA_FILE
    assert data["configs"]["mirror.example.com"]["tls"]["ca_file"] == "/etc/ssl/operator-ca.pem"
    assert data["mirrors"]["docker.io"] == {"endpoint": ["https://mirror.example.com"]}
    assert "trusts the site CA" in merged.reason
    rendered = merged.hosts_toml
    assert rendered is not None and f'ca = ["{CA_FILE}"]' in rendered
    assert hosts_toml.effective_routes(rendered, route.host) == [
        (f"https://{IP}:443/v2", (CA_FILE,))
    ]
    again = registries_yaml.merge(text, route, path=PATH)
    assert not again.changed and again.content.get_secret_value() == text
    assert "trusting" in again.reason


def test_the_migration_bridges_then_drops_http_and_pulls_route_in_order() -> None:
    http = registries_yaml.merge(OPERATOR, f"{IP}:80", path=PATH).content.get_secret_value()
    bridge = registries_yaml.merge(http, _route(f"{IP}:80", "http"), path=PATH)
    rendered = bridge.hosts_toml
    assert rendered is not None
    urls = [u for u, _ in hosts_toml.effective_routes(rendered, f"{IP}:80")]
    # https first (trusting the CA through configs of the https endpoint), then http, then
    # containerd's default for the name itself.
    assert urls[:2] == [f"https://{IP}:443/v2", f"http://{IP}:80/v2"]
    assert hosts_toml.effective_routes(rendered, f"{IP}:80")[0][1] == (CA_FILE,)
    final = registries_yaml.merge(
        bridge.content.get_secret_value(), _route(f"{IP}:80", "https"), path=PATH
    )
    data = registries_yaml.parse(final.content.get_secret_value())
    assert data["mirrors"][f"{IP}:80"] == {"endpoint": [f"https://{IP}:443"]}
    assert final.hosts_toml is not None
    assert not hosts_toml.same_routes(rendered, final.hosts_toml, f"{IP}:80")


def test_the_node_model_cannot_move_its_credential_to_another_endpoint() -> None:
    auth = NodeAuth("site1-client", SecretStr("pw-value-123"), "password1", "2026-12-01")
    with pytest.raises(PermanentError, match="pull-secret"):
        registries_yaml.merge(None, _route(f"{IP}:80", "http"), auth, path=PATH)
    # a fresh https site keeps the credential and the CA under the same key
    merged = registries_yaml.merge(None, _route(f"{IP}:443", "https"), auth, path=PATH)
    config = registries_yaml.parse(merged.content.get_secret_value())["configs"][f"{IP}:443"]
    assert config["tls"] == {
        "ca_file": CA_FILE,
        "cert_file": "",
        "key_file": "",
        "insecure_skip_verify": False,
    }
    assert config["auth"]["username"] == "site1-client"


def test_a_shared_anchor_under_the_ca_config_is_refused_untouched() -> None:
    shared = f"""\
x: &shared
  ca_file: /etc/ssl/operator-ca.pem
configs:
  "mirror.example.com":
    tls: *shared
  "{IP}:443":
    tls: *shared
"""
    try:
        merged = registries_yaml.merge(shared, _route(f"{IP}:443", "https"), path=PATH)
    except PermanentError as exc:
        assert "anchors" in str(exc)
        return
    data = registries_yaml.parse(merged.content.get_secret_value())
    assert data["configs"]["mirror.example.com"]["tls"]["ca_file"] == "/etc/ssl/operator-ca.pem"


def _fact(text: str | None, hosts: str | None, ca: str | None) -> NodeMirrorFact:
    return NodeMirrorFact(
        text=None if text is None else SecretStr(text),
        exists=text is not None,
        hosts_toml=hosts,
        pending=False,
        ca_text=ca,
    )


def _plan(fact: NodeMirrorFact, route: MirrorRoute) -> object:
    return plan_node_mirror(fact, route, None, node="n1", service="k3s", path=PATH)


def test_the_node_plan_writes_the_ca_file_first_and_needs_no_restart() -> None:
    route = _route(f"{IP}:443", "https")
    change = _plan(_fact(None, None, None), route)
    shown = change.shown  # type: ignore[attr-defined]
    assert shown["ca_file"] == CA_FILE and shown["ca_text"] == CA_TEXT
    assert shown["write_file"] and shown["hosts_toml"] and not shown["restart"]
    assert change.reason.startswith(f"writes the site CA {CA_FILE}")  # type: ignore[attr-defined]
    text = registries_yaml.merge(None, route, path=PATH).content.get_secret_value()
    converged = _plan(_fact(text, _hosts(text, route.host), CA_TEXT), route)
    assert converged.action == "none"  # type: ignore[attr-defined]
    assert "the site CA" in converged.reason and "in place" in converged.reason  # type: ignore[attr-defined]
    # a CA that changed (another site CA) is rewritten alone
    stale = _plan(_fact(text, _hosts(text, route.host), CA_TEXT + "x"), route)
    assert stale.shown["ca_file"] == CA_FILE and not stale.shown["write_file"]  # type: ignore[attr-defined]
    assert stale.reason.startswith("replaces the site CA")  # type: ignore[attr-defined]


def test_https_values_serve_the_slot_and_keep_the_pull_port_of_a_migrated_site() -> None:
    site = _site(transport="https", service_cluster_ip=IP)
    fresh = helm_values.serving_for(site, None)
    assert fresh == helm_values.Serving(443, tls.server_secret_name("connected-registry", "a"))
    values = helm_values.chart_values(site, CS, REF, fresh).values
    assert values["httpEnabled"] is False
    assert values["tls"] == {"secret": "connected-registry-acr-edge-tls-a"}
    assert values["cert-manager"] == {"enabled": False}
    assert values["acrEdge"]["pullPort"] == 443
    # an http release (no pullPort record: the first version) keeps :80 as its name, and
    # stays http unless provision asks for the switch
    old_http = {"httpEnabled": True, "acrEdge": {"valuesDigest": "x"}}
    assert helm_values.recorded_pull_port(old_http) == 80
    kept = helm_values.serving_for(site, old_http)
    assert kept == helm_values.Serving(80, None)
    switched = helm_values.serving_for(site, old_http, transport="https")
    assert switched.pull_port == 80 and switched.tls_secret is not None
    # a renewal names the other slot; anything else falls back to slot a
    renew = tls.server_secret_name("connected-registry", "b")
    assert helm_values.serving_for(site, values, renew).tls_secret == renew
    assert helm_values.serving_for(site, values, "foreign").tls_secret == fresh.tls_secret
    # the digest of an http release is what the first version recorded (no pullPort part)
    http_site = _site(transport="http")
    assert helm_values.desired_digest(http_site, REF) == helm_values.digest(
        helm_values.public_values(http_site), helm_values.chart_of(http_site), REF
    )
    assert helm_values.desired_digest(site, REF, switched) != helm_values.desired_digest(
        site, REF, fresh
    )


def test_chart_values_may_not_set_the_certificate_themselves() -> None:
    for values in ({"tls": {"secret": "mine"}}, {"cert-manager": {"enabled": True}}):
        with pytest.raises(ValueError, match="dedicated block field"):
            _site(chart_values=values)
