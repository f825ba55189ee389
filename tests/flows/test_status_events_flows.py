"""Issue 12, item 2: status that means something, against the strict sandbox.

Real site-status runs: the documented statusDetails code and its fix for a full disk (the
sandbox's connected-registry state knob), the service's sync result and versions, password ages
and days to expiry checked against the tokens ARM returns, and the health-change events read
back through Prefect's events API (the harness persists them).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from acr_edge.sandbox_blocks import site_block
from flows import status_events
from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from model import names
from model.errors import InputError
from sandbox.testing import mgmt_client

pytestmark = pytest.mark.prefect

CHART = "0.9.4"  # not the sandbox's default chart, so the reported version is the release's


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("status-events"), sites=1, propagation_delay=0)
    try:
        yield box
    finally:
        box.running.stop()


def new_block(fsb: FlowSandbox, label: str) -> str:
    """Another block for site 1 (its own health history: the Variable is per block)."""
    block = site_block(fsb.info["sites"][0], "http")
    block.chart_version = CHART
    name = f"{label}-{uuid.uuid4().hex[:6]}"
    block.save(name, overwrite=True)
    return name


@pytest.fixture(scope="module")
def site(fsb: FlowSandbox) -> str:
    name = new_block(fsb, "st")
    done = provision_site(name, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    assert done["outcome"] in ("converged", "already converged"), done
    return name


def cr_name(fsb: FlowSandbox) -> str:
    return str(fsb.info["sites"][0]["name"])


def test_disk_full_reports_the_documented_code_description_and_fix(
    fsb: FlowSandbox, site: str
) -> None:
    from prefect.artifacts import Artifact

    from flows.health import DOCUMENTED_CODES, UNDOCUMENTED_FIX
    from flows.report import artifact_key
    from flows.site_status import SiteUnhealthy, site_status

    description, fix = DOCUMENTED_CODES["DISK_STORAGE_FULL"]
    fsb.azure.set_connected_registry_state(cr_name(fsb), "Unhealthy", code="DISK_STORAGE_FULL")
    try:
        with pytest.raises(SiteUnhealthy) as err:
            site_status(site, fsb.parent_block)
    finally:
        fsb.azure.set_connected_registry_state(cr_name(fsb), "Online")
    text = str(err.value)
    assert f"statusDetails DISK_STORAGE_FULL: {description} Fix: {fix}" in text
    assert UNDOCUMENTED_FIX not in text and "unknown" not in text.lower()
    artifact: Any = Artifact.get(artifact_key("site-status", site))
    assert artifact is not None
    rows = {r["check"]: r for r in _table(artifact.data)}
    assert rows["statusDetails DISK_STORAGE_FULL"]["fix"] == fix
    assert rows["sync result"]["value"].startswith("Failed; last successful sync 20")
    assert rows["runtime version"]["status"] == "info"


def _table(data: Any) -> list[dict[str, str]]:
    import json

    return list(json.loads(data) if isinstance(data, str) else data)


def test_sync_result_and_versions_come_from_the_service_and_the_release(
    fsb: FlowSandbox, site: str
) -> None:
    from flows.site_status import site_status

    facts = site_status(site, fsb.parent_block)
    info = fsb.info
    cr = mgmt_client(info).connected_registries.get(
        info["resource_group"], info["registry"], cr_name(fsb)
    )
    assert facts["healthy"] is True
    assert facts["runtime_version"] == cr.version and cr.version
    assert facts["chart"]["version"] == CHART
    assert facts["sync_state"] == "Succeeded"
    assert facts["last_successful_sync"] is not None
    assert datetime.fromisoformat(facts["last_successful_sync"]) <= datetime.now(UTC)
    assert facts["last_sync"] == cr.parent.sync_properties.last_sync_time.isoformat()
    assert facts["login_server"] == (cr.login_server.host if cr.login_server else None)
    assert facts["status_codes"] == []
    rows = {r["check"]: r for r in facts["checks"]}
    assert rows["runtime version"]["value"] == cr.version
    assert rows["chart version"]["value"] == CHART and rows["chart version"]["status"] == "info"


def test_password_ages_and_days_to_expiry_match_the_tokens(fsb: FlowSandbox, site: str) -> None:
    from flows.site_status import site_status

    before = datetime.now(UTC)
    facts = site_status(site, fsb.parent_block)
    after = datetime.now(UTC)
    info = fsb.info
    mgmt = mgmt_client(info)
    cr = cr_name(fsb)
    for key, token in (("client_passwords", f"{cr}-client"), ("sync_passwords", cr)):
        if key == "sync_passwords":
            token = names.sync_token_name(cr)
        live = mgmt.tokens.get(info["resource_group"], info["registry"], token)
        by_slot = {p.name: p for p in live.credentials.passwords}
        rows = facts[key]
        assert {r["slot"] for r in rows} == set(by_slot), (key, rows)
        assert any(r["in_use"] for r in rows), (key, rows)
        for row in rows:
            p = by_slot[row["slot"]]
            assert row["expires"] == (p.expiry.isoformat() if p.expiry else None)
            # the flow's clock lies between before and after: each figure lies between the
            # values computed at those two instants (rounded to 0.01 day)
            ages = [(t - p.creation_time).total_seconds() / 86400 for t in (before, after)]
            assert ages[0] - 0.01 <= row["age_days"] <= ages[1] + 0.01, (key, row)
            if p.expiry is not None:
                left = [(p.expiry - t).total_seconds() / 86400 for t in (after, before)]
                assert left[0] - 0.01 <= row["days_to_expiry"] <= left[1] + 0.01, (key, row)


def _events(resource_id: str, want: int, timeout: float = 180) -> list[Any]:
    """Events on ``resource_id`` once at least ``want`` arrived (persisted asynchronously)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventResourceFilter

    deadline = time.monotonic() + timeout
    while True:
        # a new filter each time: its default time window ends when it is made
        query = EventFilter(resource=EventResourceFilter(id=[resource_id]))
        with get_client(sync_client=True) as client:
            found = list(client.read_events(query, limit=50).events)
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(1)


def test_healthy_unhealthy_healthy_emits_one_event_each(fsb: FlowSandbox, site: str) -> None:
    from prefect.variables import Variable

    from flows.site_status import SiteUnhealthy, site_status

    block = new_block(fsb, "ev")
    cr = cr_name(fsb)
    first = site_status(block, fsb.parent_block)
    assert first["healthy"] and not any(e.startswith("acr-edge.site.") for e in first["events"])
    fsb.azure.set_connected_registry_state(cr, "Unhealthy", code="DISK_ERROR")
    try:
        for _ in range(2):  # the second unhealthy run is no change: no second event
            with pytest.raises(SiteUnhealthy):
                site_status(block, fsb.parent_block)
        stored: Any = Variable.get(status_events.variable_name(block))
        assert stored["healthy"] is False and stored["codes"] == ["DISK_ERROR"]
    finally:
        fsb.azure.set_connected_registry_state(cr, "Online")
    back = site_status(block, fsb.parent_block)
    assert status_events.SITE_HEALTHY in back["events"]
    again = site_status(block, fsb.parent_block)
    assert not any(e.startswith("acr-edge.site.") for e in again["events"])

    # A marker after the last run: once it is persisted, so are the runs' events (the
    # persister writes in arrival order), so a stray third event could not hide behind the wait.
    from prefect.events import emit_event

    resource = status_events.site_resource(block)
    emit_event(event="acr-edge.test.marker", resource=resource)
    everything = _events(resource["prefect.resource.id"], 3)
    assert "acr-edge.test.marker" in [e.event for e in everything], everything
    events = [e for e in everything if e.event.startswith("acr-edge.site.")]
    by_name = sorted(e.event for e in events)
    assert by_name == [status_events.SITE_HEALTHY, status_events.SITE_UNHEALTHY], by_name
    unhealthy = next(e for e in events if e.event == status_events.SITE_UNHEALTHY)
    assert unhealthy.resource.id == f"acr-edge.site.{block}"
    assert unhealthy.resource["prefect.resource.name"] == block
    assert unhealthy.payload["codes"] == ["DISK_ERROR"]
    assert any("DISK_ERROR" in r for r in unhealthy.payload["reasons"])
    healthy = next(e for e in events if e.event == status_events.SITE_HEALTHY)
    assert healthy.occurred >= unhealthy.occurred


def test_passwords_within_the_warning_window_emit_expiring_events(
    fsb: FlowSandbox, site: str
) -> None:
    from flows.site_status import site_status

    block = new_block(fsb, "exp")
    quiet = site_status(block, fsb.parent_block, expiry_warning_days=0)
    assert status_events.CREDENTIAL_EXPIRING not in quiet["events"]
    facts = site_status(block, fsb.parent_block, expiry_warning_days=3650)
    used = [
        (kind, r)
        for kind, key in (("client", "client_passwords"), ("sync", "sync_passwords"))
        for r in facts[key]
        if r["in_use"] and r["days_to_expiry"] is not None
    ]
    assert {k for k, _ in used} == {"client", "sync"}, facts
    assert facts["events"].count(status_events.CREDENTIAL_EXPIRING) == len(used)
    prefix = f"acr-edge.credential.{block}."
    for kind, row in used:
        rid = f"{prefix}{kind}.{row['slot']}"
        [event] = _events(rid, 1)
        assert event.event == status_events.CREDENTIAL_EXPIRING
        assert event.payload["kind"] == kind and event.payload["expires"] == row["expires"]
        assert event.payload["days_left"] == row["days_to_expiry"]
        assert event.resource["acr-edge.site"] == block
        text = event.model_dump_json()
        secrets = list(fsb.azure.secrets())
        for token in (f"{cr_name(fsb)}-client", names.sync_token_name(cr_name(fsb))):
            secrets += fsb.azure.password_values(token).values()
        assert not [v for v in secrets if v and str(v) in text]
        assert set(event.payload) == {
            "site",
            "site_block",
            "kind",
            "token",
            "slot",
            "days_left",
            "expires",
            "warning_days",
        }


def test_a_bad_warning_window_is_refused_before_any_read(fsb: FlowSandbox, site: str) -> None:
    from flows.site_status import site_status

    fsb.azure.clear_requests()
    with pytest.raises(InputError, match="expiry_warning_days"):
        site_status(site, fsb.parent_block, expiry_warning_days=-1)
    assert fsb.azure.requests("arm") == []
