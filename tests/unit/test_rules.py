"""The rule book (model.patterns, names, limits, cron, durations) and its users agree.

Every pattern matches the whole string and ASCII only; every place that takes a name, a cron or
a duration refuses the same bad input before anything is written.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from blocks.edge_site import EdgeSite
from blocks.parent_registry import ParentRegistry
from deployments.definitions import definitions
from flows.models import ProvisionSpec
from model import cron, durations, limits, names, patterns
from model.errors import InputError
from tasks.azure import actions
from tasks.azure.desired import ConnectedRegistrySpec

ARABIC_THREE = "\u0663"  # "٣": str.isdigit() and \d say yes; ARM and cron say no
FULLWIDTH_ONE = "\uff11"  # FULLWIDTH DIGIT ONE

# One valid example per compiled pattern: each must also refuse it with a newline appended.
VALID = {
    "CR_NAME": "plant01",
    "REGISTRY_NAME": "Contoso01",
    "SCOPE_MAP_NAME": "plant01-client_map",
    "TOKEN_NAME": "plant01-client",
    "RESOURCE_GROUP": "rg-edge.(prod)",
    "BLOCK_NAME": "sandbox-site-1",
    "DNS1123_LABEL": "default",
    "DNS1123_SUBDOMAIN": "site1-n2.plant.local",
    "SYSTEMD_UNIT": "k3s-agent.service",
    "OCI_COMPONENT": "app__v2",
    "OCI_NAMESPACE": "team/app.web",
    "SSH_USER": "edge_admin",
    "HOST_PORT": "contoso.eastus.data.azurecr.io:443",
    "CRON_FIELD": "*/15",
    "ISO_DURATION": "P1DT2H",
    "TIMESPAN": "1.00:00:00",
    "NODE_SELECTION": "node-role.kubernetes.io/worker=true",
}


def _compiled() -> dict[str, re.Pattern[str]]:
    return {k: v for k, v in vars(patterns).items() if isinstance(v, re.Pattern)}


def test_every_pattern_has_an_example() -> None:
    assert set(_compiled()) == set(VALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_patterns_match_the_whole_string_and_ascii_only(name: str) -> None:
    pattern = _compiled()[name]
    good = VALID[name]
    assert pattern.flags & re.ASCII, f"{name} is not compiled with re.ASCII"
    assert patterns.matches(pattern, good)
    for bad in (good + "\n", good + " ", " " + good, good + "\u00e9", good + ARABIC_THREE):
        assert not patterns.matches(pattern, bad), f"{name} accepts {bad!r}"
    assert not patterns.matches(pattern, None)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=70))
def test_dns_label_rule_is_the_kubernetes_one(text: str) -> None:
    # RFC 1123 label as Kubernetes states it: <=63, alphanumeric at both ends.
    expected = len(text) <= 63 and text[0] != "-" and text[-1] != "-"
    assert patterns.matches(patterns.DNS1123_LABEL, text) is expected


@given(st.text(min_size=1, max_size=8))
def test_a_trailing_newline_never_passes_a_name_rule(text: str) -> None:
    for check in (
        names.validate_cr_name,
        names.validate_token_name,
        names.validate_scope_map_name,
        names.validate_registry_name,
        names.validate_resource_group,
        names.validate_ssh_user,
    ):
        with pytest.raises(InputError):
            check(text + "\n")
    with pytest.raises(InputError):
        names.validate_dns_label(text + "\n", "app_namespaces")
    with pytest.raises(InputError):
        names.validate_block_name(text + "\n", "site_block")


# ---- an app namespace "default\n" is refused wherever it can enter ----------------------------


def _site(**kw: Any) -> EdgeSite:
    base: dict[str, Any] = {"name": "plant01", "ssh_host": "10.0.0.5", "ssh_private_key": "k"}
    return EdgeSite(**(base | kw))


@pytest.mark.parametrize("field", ["namespace", "release_name", "pull_secret_name"])
def test_edge_site_refuses_a_label_with_a_trailing_newline(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        _site(**{field: "connected-registry\n"})


def test_edge_site_refuses_app_namespace_with_newline() -> None:
    with pytest.raises(ValidationError, match="app_namespaces"):
        _site(app_namespaces=["default\n"])
    with pytest.raises(ValidationError, match="name"):
        _site(name="plant01\n")
    with pytest.raises(ValidationError, match="ssh_user"):
        _site(ssh_user="root\n")
    assert _site(app_namespaces=["default", "apps"]).app_namespaces == ["default", "apps"]


def test_provision_spec_refuses_app_namespace_with_newline() -> None:
    with pytest.raises(ValidationError, match="app_namespaces"):
        ProvisionSpec(namespaces=["samples"], app_namespaces=["default\n"])
    with pytest.raises(ValidationError, match="duplicate"):
        ProvisionSpec(namespaces=["samples"], app_namespaces=["apps", "apps"])
    with pytest.raises(ValidationError, match="token"):
        ProvisionSpec(namespaces=["samples"], client_token_name="plant01-client\n")


def test_repository_namespaces_one_rule() -> None:
    assert names.normalize_namespace(" /team/app/ ") == "team/app"
    for bad in ("Team", "team//app", "team/-app", "a" * 257, "team/app" + ARABIC_THREE):
        with pytest.raises(InputError):
            names.normalize_namespace(bad)
        with pytest.raises(ValidationError):
            ProvisionSpec(namespaces=[bad])
    assert ProvisionSpec(namespaces=["samples/", "samples"]).namespaces == ["samples"]


def test_parent_registry_names_use_the_same_rules() -> None:
    base: dict[str, Any] = {
        "subscription_id": "00000000-0000-0000-0000-000000000000",
        "resource_group": "rg-edge",
        "registry_name": "contoso",
        "auth": "default",
    }
    ParentRegistry(**base)
    for field, bad in (("registry_name", "contoso\n"), ("resource_group", "rg-edge\n")):
        with pytest.raises(ValidationError, match=field):
            ParentRegistry(**(base | {field: bad}))
    with pytest.raises(ValidationError, match="resource_group"):
        ParentRegistry(**(base | {"resource_group": "rg."}))


def test_gateway_endpoint_with_a_newline_is_refused() -> None:
    from pydantic import SecretStr

    from tasks.azure.connection_string import build_sync_connection_string

    args: dict[str, Any] = {
        "connected_registry": "plant01",
        "sync_token": "plant01",
        "password": SecretStr("pw"),
        "protocol": "https",
    }
    build_sync_connection_string(gateway_endpoint="contoso.data.azurecr.io", **args)
    with pytest.raises(InputError, match="ParentGatewayEndpoint"):
        build_sync_connection_string(gateway_endpoint="contoso.data.azurecr.io\n", **args)


# ---- cron: one rule, four users ---------------------------------------------------------------

GOOD_CRONS = ["30 * * * *", "*/15 0-6 * * 1-5", "0 0 1,15 * *", "* * * * *", "0 3 * * 0"]
BAD_CRONS = [
    f"{ARABIC_THREE} * * * *",
    f"0 {FULLWIDTH_ONE} * * *",
    "* * * *",
    "* * * * * *",
    "60 * * * *",
    "* 24 * * *",
    "5-1 * * * *",
    "*/0 * * * *",
    "a * * * *",
    "* * 0 * *",
    "* * * * 7",
    "0 3 * * MON",
    "0 3 L * *",
    "*\u3000* * * *",
    "0 3 * * 1\n* * * * *",
    "0 0 31 2 *",
]


def _users() -> list[Any]:
    return [
        cron.validate_cron,
        lambda e: ProvisionSpec(namespaces=["samples"], sync_schedule=e),
        lambda e: ConnectedRegistrySpec(name="plant01", sync_schedule=e),
        lambda e: ConnectedRegistrySpec(name="plant01", gc_schedule=e),
        lambda e: definitions(rotate_cron=e),
    ]


@pytest.mark.parametrize("expr", GOOD_CRONS)
def test_cron_accepted_everywhere(expr: str) -> None:
    for use in _users():
        use(expr)


@pytest.mark.parametrize("expr", BAD_CRONS)
def test_cron_refused_everywhere(expr: str) -> None:
    for use in _users():
        with pytest.raises((InputError, ValidationError)):
            use(expr)


def test_cron_message_names_the_field() -> None:
    with pytest.raises(InputError) as info:
        definitions(rotate_cron="0 3 * *")
    assert info.value.resource == "--rotate-cron" and "5" in str(info.value)


def _reference_fires(minutes: set[int], hours: set[int], t: datetime) -> bool:
    return t.minute in minutes and t.hour in hours


@given(
    st.sets(st.integers(0, 59), min_size=1, max_size=4),
    st.sets(st.integers(0, 23), min_size=1, max_size=3),
    st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
    ),
)
def test_previous_fire_time_agrees_with_a_minute_by_minute_walk(
    minutes: set[int], hours: set[int], when: datetime
) -> None:
    expr = f"{','.join(map(str, sorted(minutes)))} {','.join(map(str, sorted(hours)))} * * *"
    t = when.replace(second=0, microsecond=0)
    while not _reference_fires(minutes, hours, t):
        t -= timedelta(minutes=1)
    assert cron.Cron.parse(expr).previous(when) == t


def test_previous_fire_time_edges() -> None:
    at = datetime(2026, 11, 26, 12, 30, 0, tzinfo=UTC)
    assert cron.Cron.parse("30 * * * *").previous(at) == at  # at or before
    assert cron.Cron.parse("30 * * * *").previous(at.replace(second=59)) == at
    # Both day fields restricted: either matches (Vixie cron). 2026-11-26 is a Thursday.
    either = cron.Cron.parse("0 0 1 * 4")
    assert either.previous(at) == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
    # Nothing within the lookback: no window has closed.
    assert cron.Cron.parse("0 0 29 2 *").previous(at) is None
    assert cron.Cron.parse("0 0 29 2 *").previous(datetime(2028, 3, 1, tzinfo=UTC)) == datetime(
        2028, 2, 29, tzinfo=UTC
    )
    assert cron.Cron.parse("0 3 * * 1").matches(datetime(2026, 11, 23, 3, 0, 30, tzinfo=UTC))


# ---- durations and limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [f"PT{ARABIC_THREE}H", f"P{ARABIC_THREE}D", f"{ARABIC_THREE}.00:00:00", "P1D\nP"],
)
def test_durations_refuse_non_ascii_digits(bad: str) -> None:
    with pytest.raises(InputError):
        durations.parse_duration(bad)
    with pytest.raises(ValidationError):
        ProvisionSpec(namespaces=["samples"], sync_window=bad)
    with pytest.raises(ValidationError):
        ProvisionSpec(namespaces=["samples"], message_ttl=bad)
    with pytest.raises(InputError):
        ConnectedRegistrySpec(name="plant01", sync_window=bad)


def test_durations_keep_the_timespan_echo_and_their_ranges() -> None:
    assert durations.parse_duration("1.00:00:00") == timedelta(days=1)
    assert durations.parse_duration("01:00:00") == timedelta(hours=1)
    assert durations.validate_sync_window("PT1H") == limits.SYNC_WINDOW_MIN
    assert durations.validate_sync_window("P7D") == limits.SYNC_WINDOW_MAX
    assert durations.validate_message_ttl("P90D") == limits.MESSAGE_TTL_MAX
    for value, check in (
        ("PT59M", durations.validate_sync_window),
        ("P7DT1S", durations.validate_sync_window),
        ("PT23H", durations.validate_message_ttl),
        ("P91D", durations.validate_message_ttl),
    ):
        with pytest.raises(InputError):
            check(value)


def test_limits_are_the_ones_checked() -> None:
    repos = [f"repo{i}" for i in range(limits.MAX_REPOSITORIES_PER_SCOPE_MAP)]
    actions.check_repository_limit(repos, "scopeMaps/x")
    with pytest.raises(InputError, match=str(limits.MAX_REPOSITORIES_PER_SCOPE_MAP)):
        actions.check_repository_limit([*repos, "one-more"], "scopeMaps/x")
    actions.check_client_token_limit(limits.MAX_CLIENT_TOKENS_PER_CR, "plant01")
    with pytest.raises(InputError, match=str(limits.MAX_CLIENT_TOKENS_PER_CR)):
        actions.check_client_token_limit(limits.MAX_CLIENT_TOKENS_PER_CR + 1, "plant01")
    with pytest.raises(ValidationError):
        ProvisionSpec(namespaces=["s"], client_password_days=limits.CLIENT_PASSWORD_DAYS_MAX + 1)


@pytest.mark.parametrize(
    ("resource", "label"),
    [
        ("ssh edge@127.0.0.1:2222", "ssh 127.0.0.1:2222"),
        ("node agent-1 (k3s.admin@plant01.example:22)", "node agent-1 (plant01.example:22)"),
        ("etc/rancher/k3s/registries.yaml", "etc/rancher/k3s/registries.yaml"),
        ("image samples/hello@sha256:abc", "image samples/hello@sha256:abc"),
        ("scope map\n  site01-client", "scope map site01-client"),
    ],
)
def test_a_short_label_drops_the_ssh_user_and_nothing_else(resource: str, label: str) -> None:
    assert names.short_label(resource) == label
