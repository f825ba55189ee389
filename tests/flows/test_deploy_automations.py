"""`acr-edge deploy --notify BLOCK` against the real Prefect API (harness, whose server runs
the triggers and actions services): the alert Automations read back through the API, converge
on redeploy, and fire: an emitted `acr-edge.site.unhealthy` event and a failed rotation run
each reach a local webhook through a saved Custom Webhook notification block."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from deploykit import ARGS
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from deployments.automations import ALERTS, PREFIX, ROTATION_FLOWS
from deployments.register import main as deploy_main

NAMES = {f"{PREFIX}site unhealthy", f"{PREFIX}rotation failed", f"{PREFIX}credential expiring",
         f"{PREFIX}fleet wave halted"}  # fmt: skip
HOOK_BLOCK = "acr-edge-test-hook"
FIRE_TIMEOUT = 180.0  # the triggers service loads new automations on its own schedule


class Hook:
    """A local HTTP server recording every request body the notifications send."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.bodies.append(json.loads(raw or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, text: str, timeout: float = FIRE_TIMEOUT, poke: Any = None) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in list(self.bodies):
                joined = f"{body.get('subject')}\n{body.get('body')}"
                if text in joined:
                    return joined
            if poke is not None:
                poke()
            time.sleep(3)
        raise AssertionError(f"no notification with {text!r} in {timeout} s: {self.bodies}")


@pytest.fixture(scope="module")
def hook() -> Iterator[Hook]:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    h = Hook()
    CustomWebhookNotificationBlock(
        name="acr-edge test",
        url=h.url,
        json_data={"subject": "{{subject}}", "body": "{{body}}"},
        headers=None,
        cookies=None,
    ).save(HOOK_BLOCK, overwrite=True)
    yield h
    h.server.shutdown()


def _deploy(*extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = deploy_main([*ARGS, *extra])
    return rc, out.getvalue(), err.getvalue()


def _ours() -> list[Any]:
    with get_client(sync_client=True) as client:
        return [a for a in client.read_automations() if a.name.startswith(PREFIX)]


@pytest.fixture(scope="module")
def deployed(hook: Hook) -> str:
    rc, out, err = _deploy("--notify", HOOK_BLOCK)
    assert rc == 0, err
    return out


def test_missing_notification_block_is_refused_before_any_write() -> None:
    pool = f"refused-{uuid.uuid4().hex[:8]}"
    args = ["--work-pool", pool, "--notify", "no-such-hook"]
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert deploy_main(args) == 2
    assert "'no-such-hook' is not saved" in err.getvalue()
    assert "--notify" in err.getvalue() and "notification block" in err.getvalue()
    assert "Traceback" not in err.getvalue()
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_work_pool(pool)  # nothing was written: not even the pool


def test_a_block_that_cannot_notify_is_refused() -> None:
    from prefect.blocks.system import Secret
    from pydantic import SecretStr

    Secret(value=SecretStr("x")).save("not-a-hook", overwrite=True)
    rc, _, err = _deploy("--notify", "not-a-hook")
    assert rc == 2
    assert "'secret/not-a-hook' is not a notification block" in err


def test_deploy_creates_the_alerts_read_back_through_the_api(deployed: str) -> None:
    autos = {a.name: a for a in _ours()}
    assert set(autos) == NAMES
    with get_client(sync_client=True) as client:
        block_id = client.read_block_document_by_name(HOOK_BLOCK, "custom-webhook").id
    for alert in ALERTS:
        auto = autos[alert.name]
        assert auto.enabled and "acr-edge" in auto.tags
        assert f"automation {alert.name}" in deployed and "created" in deployed
        trig: Any = auto.trigger
        assert trig.type == "event" and trig.posture == "Reactive" and trig.threshold == 1
        assert trig.expect == set(alert.expect)
        [action] = auto.actions
        assert action.type == "send-notification"
        assert action.block_document_id == block_id
        assert action.subject == alert.subject and action.body == alert.body
    unhealthy: Any = autos[f"{PREFIX}site unhealthy"].trigger
    assert unhealthy.match.root == {"prefect.resource.id": "acr-edge.site.*"}
    rotation: Any = autos[f"{PREFIX}rotation failed"].trigger
    assert "prefect.flow-run.Failed" in rotation.expect
    assert rotation.match_related.root["prefect.resource.role"] == "flow"
    assert rotation.match_related.root["prefect.resource.name"] == list(ROTATION_FLOWS)
    assert autos[f"{PREFIX}credential expiring"].trigger.expect == {"acr-edge.credential.expiring"}  # type: ignore[union-attr]
    assert autos[f"{PREFIX}fleet wave halted"].trigger.expect == {"acr-edge.fleet.wave-halted"}  # type: ignore[union-attr]


def test_site_unhealthy_event_sends_the_notification(deployed: str, hook: Hook) -> None:
    from prefect.events import emit_event
    from prefect.events.worker import EventsWorker

    site = f"hook{uuid.uuid4().hex[:8]}"

    def poke() -> None:  # re-emitted until the triggers service has loaded the automation
        emit_event(
            event="acr-edge.site.unhealthy",
            resource={"prefect.resource.id": f"acr-edge.site.{site}"},
            payload={"site": site, "reasons": ["connection state Offline", "disk full"]},
        )
        EventsWorker.drain_all(timeout=10)

    text = hook.wait_for(f"site {site} is unhealthy", poke=poke)
    assert "Reasons: connection state Offline; disk full" in text
    assert f"acr-edge.site.{site}" in text


def test_failed_rotation_run_sends_the_notification(deployed: str, hook: Hook) -> None:
    from prefect import flow
    from prefect.events.worker import EventsWorker

    @flow(name="rotate-client-token", flow_run_name="alert-{marker}")
    def failing(marker: str) -> None:
        raise RuntimeError("rotation broke on purpose")

    marker = uuid.uuid4().hex[:8]

    def poke() -> None:
        failing(marker, return_state=True)
        EventsWorker.drain_all(timeout=10)

    text = hook.wait_for(f"run alert-{marker} Failed", poke=poke)
    assert "rotate-client-token" in text


def test_redeploy_converges_without_duplicates(deployed: str) -> None:
    ids = {a.name: a.id for a in _ours()}
    rc, out, _ = _deploy("--notify", HOOK_BLOCK)
    assert rc == 0
    assert {a.name: a.id for a in _ours()} == ids  # same automations, none added
    for name in NAMES:
        assert "unchanged" in next(li for li in out.splitlines() if name in li)


def test_redeploy_repairs_a_changed_alert_removes_a_copy_and_leaves_others(deployed: str) -> None:
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    autos = {a.name: a for a in _ours()}
    edited = autos[f"{PREFIX}site unhealthy"]
    body = edited.model_dump(mode="json", exclude={"id", "owner_resource"})
    copy = AutomationCore.model_validate(body)
    body["actions"] = [{"type": "do-nothing"}]  # someone swapped the alert's action
    foreign = AutomationCore(
        name=f"ops: {uuid.uuid4().hex[:6]}",
        trigger=EventTrigger(expect={"x.y"}),
        actions=[DoNothing()],
    )
    with get_client(sync_client=True) as client:
        copy_id = client.create_automation(copy)
        time.sleep(0.05)  # the edited one is then the newest: deploy keeps and repairs it
        client.request(
            "PUT", "/automations/{id}", path_params={"id": edited.id}, json=body
        ).raise_for_status()
        foreign_id = client.create_automation(foreign)
    rc, out, _ = _deploy("--notify", HOOK_BLOCK)
    assert rc == 0
    after = {a.name: a for a in _ours()}
    assert set(after) == NAMES and len(_ours()) == 4  # the copy is gone
    assert after[edited.name].actions[0].type == "send-notification"
    lines = [li for li in out.splitlines() if edited.name in li]
    assert any(" updated " in li and "actions" in li for li in lines), lines
    assert any(" deleted " in li for li in lines), lines
    assert after[edited.name].id == edited.id
    with get_client(sync_client=True) as client:
        left = {a.id for a in client.read_automations()}
        assert copy_id not in left
        assert foreign_id in left  # not ours: left alone
        client.delete_automation(foreign_id)


def test_deploy_without_notify_leaves_the_alerts_and_says_so(deployed: str) -> None:
    ids = {a.name: a.id for a in _ours()}
    rc, out, _ = _deploy()
    assert rc == 0
    assert {a.name: a.id for a in _ours()} == ids
    assert "automations left as they are" in out
    for name in NAMES:
        assert "left" in next(li for li in out.splitlines() if name in li)
