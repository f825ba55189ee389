"""Chart values and their digest: secrets only where the chart needs them, digest stable."""

from __future__ import annotations

import json

from pydantic import SecretStr

from blocks.edge_site import EdgeSite
from model.site import SyncCredentialRef
from tasks.site.helm_values import (
    changed_settings,
    chart_values,
    desired_digest,
    masked,
    plan_diff,
    recorded_digest,
    recorded_sync_credential,
    serving_for,
)

CS = SecretStr(
    "ConnectedRegistryName=site01;SyncTokenName=site01;SyncTokenPassword=pw-AAAA;"
    "ParentGatewayEndpoint=contoso.eastus.data.azurecr.io;ParentEndpointProtocol=https"
)
REF = SyncCredentialRef(token="site01", slot="password1", created="2026-11-26T10:00:00Z")


def _site(**kw: object) -> EdgeSite:
    base: dict[str, object] = {
        "name": "site01",
        "ssh_host": "h",
        "ssh_private_key": "k",
        "transport": "http",
    }
    return EdgeSite(**(base | kw))  # type: ignore[arg-type]


def test_values_follow_the_chart_and_carry_metadata() -> None:
    site = _site(
        service_cluster_ip="10.43.0.10",
        storage_class="local-path",
        storage_request="20Gi",
        chart_values={"registry": {"logLevel": "debug"}},
    )
    cv = chart_values(site, CS, REF)
    assert cv.values["connectionString"] == CS.get_secret_value()
    assert cv.values["httpEnabled"] is True
    assert cv.values["service"] == {"clusterIP": "10.43.0.10"}
    assert cv.values["pvc"] == {"storageClassName": "local-path", "storageRequest": "20Gi"}
    assert cv.values["registry"] == {"logLevel": "debug"}
    assert cv.values["acrEdge"] == {
        "valuesDigest": cv.digest,
        "chart": {"ref": site.chart_ref, "version": None},
        "syncCredential": {"token": "site01", "slot": "password1", "created": REF.created},
        "pullPort": 80,
    }
    assert json.loads(cv.to_yaml_stdin().get_secret_value()) == cv.values
    assert "pw-AAAA" not in repr(cv)
    assert "pw-AAAA" not in str(cv.to_yaml_stdin())


def test_digest_is_stable_and_sensitive_to_every_setting_but_never_the_secret() -> None:
    site = _site()
    first = chart_values(site, CS, REF)
    assert chart_values(site, CS, REF).digest == first.digest
    assert desired_digest(site, REF) == first.digest  # computable without the secret
    # Only the metadata key is read back from the release.
    assert recorded_digest({"acrEdge": first.values["acrEdge"]}) == first.digest
    assert recorded_digest(None) is None
    assert recorded_digest({"acrEdge": "junk"}) is None
    # The digest never depends on the secret itself...
    other_password = SecretStr(CS.get_secret_value().replace("pw-AAAA", "pw-BBBB"))
    assert chart_values(site, other_password, REF).digest == first.digest
    assert "pw-AAAA" not in first.digest
    # ...but on which sync credential the release carries (a regenerated slot is a new one).
    later = SyncCredentialRef(token="site01", slot="password1", created="2026-11-27T00:00:00Z")
    assert chart_values(site, CS, later).digest != first.digest
    other_slot = SyncCredentialRef(token="site01", slot="password2", created=REF.created)
    assert chart_values(site, CS, other_slot).digest != first.digest
    # ...and on every chart setting of the block.
    for changed in (
        {"transport": "https"},
        {"storage_request": "20Gi"},
        {"storage_class": "fast"},
        {"service_cluster_ip": "10.43.0.10"},
        {"chart_version": "0.6.0"},
        {"chart_values": {"registry": {"logLevel": "debug"}}},
    ):
        assert desired_digest(_site(**changed), REF) != first.digest, changed


def test_changed_settings_name_the_non_secret_paths() -> None:
    release = chart_values(_site(chart_version="0.5.0"), CS, REF).values
    assert changed_settings(release, _site(chart_version="0.5.0")) == []
    https = _site(chart_version="0.6.0", storage_request="20Gi", transport="https")
    # Only provision switches the transport (it says so); any other upgrade keeps it.
    assert changed_settings(release, https) == ["pvc.storageRequest", "chart.version"]
    switched = serving_for(https, release, transport="https")
    assert changed_settings(release, https, switched) == [
        "cert-manager.enabled",
        "httpEnabled",
        "pvc.storageRequest",
        "tls.secret",
        "chart.version",
    ]
    assert "pw-AAAA" not in repr(changed_settings(release, https, switched))
    assert recorded_sync_credential(release) == REF
    assert recorded_sync_credential({"acrEdge": {"syncCredential": {"slot": ""}}}) is None


def test_masking_and_plan_diff_never_show_the_connection_string() -> None:
    old = chart_values(_site(), CS, REF).values
    other = SecretStr(CS.get_secret_value().replace("pw-AAAA", "pw-BBBB"))
    new = chart_values(_site(storage_request="20Gi"), other, REF).values
    assert masked(new)["connectionString"] == "***"
    diff = plan_diff(old, new)
    paths = {path for path, _, _ in diff}
    assert paths == {"pvc", "acrEdge.valuesDigest"}
    assert "pw-" not in repr(diff)


def test_kept_connection_string_is_reused_only_when_it_is_the_recorded_one() -> None:
    from tasks.site.helm_values import kept_connection_string as _kept_connection_string

    release = chart_values(_site(), CS, REF).values
    kept = _kept_connection_string(release, REF)
    assert kept is not None and kept.get_secret_value() == CS.get_secret_value()
    other = SyncCredentialRef(token="site01", slot="password2", created=REF.created)
    assert _kept_connection_string(release, other) is None  # another credential recorded
    assert _kept_connection_string({**release, "connectionString": "garbage"}, REF) is None
    assert (
        _kept_connection_string({k: v for k, v in release.items() if k != "connectionString"}, REF)
        is None
    )
    foreign = SecretStr(CS.get_secret_value().replace("SyncTokenName=site01", "SyncTokenName=x"))
    assert _kept_connection_string(chart_values(_site(), foreign, REF).values, REF) is None
    assert _kept_connection_string(None, REF) is None
