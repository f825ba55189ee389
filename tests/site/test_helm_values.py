"""Chart values and their digest: secrets only where the chart needs them, digest stable."""

from __future__ import annotations

import json

from pydantic import SecretStr

from blocks.edge_site import EdgeSite
from tasks.site.helm_values import (
    SyncCredentialRef,
    chart_values,
    masked,
    plan_diff,
    recorded_digest,
)

CS = SecretStr(
    "ConnectedRegistryName=site01;SyncTokenName=site01;SyncTokenPassword=pw-AAAA;"
    "ParentGatewayEndpoint=contoso.eastus.data.azurecr.io;ParentEndpointProtocol=https"
)
REF = SyncCredentialRef(token="site01", slot="password1", created="2026-11-26T10:00:00Z")


def _site(**kw: object) -> EdgeSite:
    base: dict[str, object] = {"name": "site01", "ssh_host": "h", "ssh_private_key": "k"}
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
        "syncCredential": {"token": "site01", "slot": "password1", "created": REF.created},
    }
    assert json.loads(cv.to_yaml_stdin().get_secret_value()) == cv.values
    assert "pw-AAAA" not in repr(cv)
    assert "pw-AAAA" not in str(cv.to_yaml_stdin())


def test_digest_is_stable_and_sensitive_to_every_value() -> None:
    site = _site()
    first = chart_values(site, CS, REF)
    assert chart_values(site, CS, REF).digest == first.digest
    # Only the metadata key is read back from the release.
    assert recorded_digest({"acrEdge": first.values["acrEdge"]}) == first.digest
    assert recorded_digest(None) is None
    assert recorded_digest({"acrEdge": "junk"}) is None
    other_password = SecretStr(CS.get_secret_value().replace("pw-AAAA", "pw-BBBB"))
    assert chart_values(site, other_password, REF).digest != first.digest
    assert chart_values(_site(http_enabled=False), CS, REF).digest != first.digest
    # Slot metadata is descriptive only: the digest covers what the chart receives.
    later = SyncCredentialRef(token="site01", slot="password1", created="2026-11-27T00:00:00Z")
    assert chart_values(site, CS, later).digest == first.digest


def test_masking_and_plan_diff_never_show_the_connection_string() -> None:
    old = chart_values(_site(), CS, REF).values
    other = SecretStr(CS.get_secret_value().replace("pw-AAAA", "pw-BBBB"))
    new = chart_values(_site(http_enabled=False), other, REF).values
    assert masked(new)["connectionString"] == "***"
    diff = plan_diff(old, new)
    paths = {path for path, _, _ in diff}
    assert paths == {"httpEnabled", "acrEdge.valuesDigest"}
    assert "pw-" not in repr(diff)
