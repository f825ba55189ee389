"""provision-site against the sandbox: from nothing to pulling, then a converged re-run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.models import ProvisionSpec
from flows.provision_site import provision_site

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("provision"), sites=1)
    try:
        yield box
    finally:
        box.running.stop()


def test_dry_run_on_a_new_site_plans_everything_and_writes_nothing(fsb: FlowSandbox) -> None:
    from prefect.artifacts import Artifact

    site = fsb.site_blocks[0]
    fsb.azure.clear_requests()
    commands_before = len(fsb.site().commands())
    plan = provision_site(
        site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True, dry_run=True))
    )
    assert plan["outcome"] == "planned" and plan["writes"] == 0
    changes = {a["step"]: (a["resource"], a["action"]) for a in plan["arm"]}
    cr = fsb.info["sites"][0]["name"]
    assert changes["connected-registry"] == (f"connectedRegistries/{cr}", "create")
    assert changes["client-token"] == (f"tokens/{cr}-client", "create")
    assert {s["action"] for s in plan["secrets"]} >= {"generate", "write"}
    assert fsb.arm_writes() == []
    # Only reads ran on the node (no helm upgrade, no file writes, no restart).
    new_commands = [c for c in fsb.site().commands()[commands_before:]]
    assert not any("upgrade" in str(c) or "restart" in str(c) for c in new_commands)
    artifact: Any = Artifact.get(f"provision-plan-{site}")
    assert artifact is not None and "dry run" in str(artifact.data)
    for secret in fsb.azure.secrets():
        assert secret not in str(artifact.data) and secret not in str(plan)


def test_provision_then_converged_rerun_writes_nothing(fsb: FlowSandbox) -> None:
    site = fsb.site_blocks[0]
    first = provision_site(site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    assert first["outcome"] == "converged", first
    assert first["writes"] > 0
    cr = fsb.azure.resource("connectedRegistries", fsb.info["sites"][0]["name"])
    assert cr["properties"]["connectionState"] == "Online"

    fsb.azure.clear_requests()
    helm_before = fsb.site().helm_revision("connected-registry", "connected-registry")
    restarts_before = fsb.site().restart_count
    second = provision_site(site, fsb.parent_block, ProvisionSpec(**spec()))
    assert second["outcome"] == "already converged", second
    assert second["writes"] == 0
    assert fsb.arm_writes() == []
    assert fsb.site().helm_revision("connected-registry", "connected-registry") == helm_before
    assert fsb.site().restart_count == restarts_before
    for step in second["steps"]:
        assert step["message"], step  # every no-op says why

    replan = provision_site(site, fsb.parent_block, ProvisionSpec(**spec(dry_run=True)))
    assert replan["planned_writes"] == 0, replan
    assert replan["registries_yaml_diff"] == "" and replan["helm_values_diff"] == []


def test_status_of_a_healthy_site_then_of_a_broken_one(fsb: FlowSandbox) -> None:
    from prefect.artifacts import Artifact

    from flows.site_status import SiteUnhealthy, site_status

    site = fsb.site_blocks[0]
    provision_site(site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    ok = site_status(site, fsb.parent_block)
    assert ok["healthy"] is True
    assert ok["connection_state"] == "Online" and ok["activation"] == "Active"
    assert ok["client_password_in_use"] and all(
        d is not None and d > 80 for d in ok["client_password_days"].values()
    )
    checks = {c["check"]: c for c in ok["checks"]}
    cr = fsb.info["sites"][0]["name"]
    assert checks["canary pull"]["status"] == "ok" and checks[f"mirror on {cr}"]["status"] == "ok"
    assert checks[f"canary pull on {cr}"]["status"] == "ok"
    assert [n["name"] for n in ok["nodes"]] == [cr] and ok["nodes"][0]["hosts_toml"] == "ok"
    assert Artifact.get(f"site-status-{site}") is not None

    fsb.azure.deactivate(cr)
    with pytest.raises(SiteUnhealthy, match="activation") as err:
        site_status(site, fsb.parent_block)
    assert "Fix:" in str(err.value) or "re-run provision-site" in str(err.value)


def _saved_with(source: str, doc_name: str, **data: object) -> str:
    """A copy of block ``source`` saved as ``doc_name`` with ``data`` written straight into the
    stored document, as a form that checks nothing would."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate

    from blocks.edge_site import EdgeSite

    EdgeSite.load(source).save(doc_name, overwrite=True)
    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(doc_name, "edge-site", include_secrets=True)
        client.update_block_document(
            doc.id, BlockDocumentUpdate(data={**doc.data, **data}, merge_existing_data=False)
        )
    return doc_name


def test_bad_input_is_refused_before_any_side_effect(fsb: FlowSandbox) -> None:
    from model.errors import InputError

    fsb.azure.clear_requests()
    with pytest.raises(InputError, match="not a Prefect block name"):
        provision_site("Bad Name!", fsb.parent_block, ProvisionSpec(**spec()))
    with pytest.raises(InputError, match="no edge-site block named") as missing:
        provision_site("no-such-site", fsb.parent_block, ProvisionSpec(**spec()))
    assert "acr-edge deploy" not in str(missing.value)  # deploy creates no blocks
    # A stored document the UI let through (its form does not check patterns): one line
    # naming the block and the field, never Prefect's RuntimeError or a traceback.
    bad = _saved_with(fsb.site_blocks[0], "broken-site-doc", name="Plant_01")
    with pytest.raises(InputError, match="broken-site-doc") as invalid:
        provision_site(bad, fsb.parent_block, ProvisionSpec(**spec()))
    text = str(invalid.value)
    assert "is invalid" in text and "name" in text and "\n" not in text, text
    assert "Traceback" not in text and "RuntimeError" not in text
    from prefect.exceptions import ParameterTypeError

    # A raw dict as the UI/API would send it: Prefect validates it against the model first.
    with pytest.raises(ParameterTypeError, match="client_token_name"):
        provision_site(fsb.site_blocks[0], fsb.parent_block, spec(client_token_name="x"))  # type: ignore[call-overload]
    with pytest.raises(ParameterTypeError, match="sync_window"):
        provision_site(fsb.site_blocks[0], fsb.parent_block, spec(sync_window="PT5M"))  # type: ignore[call-overload]
    assert fsb.azure.requests() == []


def test_parameter_form_reads_well_in_the_ui() -> None:
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(provision_site).model_dump()
    model = schema["definitions"]["ProvisionSpec"]["properties"]
    assert model["mode"]["enum"] == ["ReadOnly", "ReadWrite"]
    assert model["namespaces"]["minItems"] == 1 and model["namespaces"]["items"]["pattern"]
    assert all(p.get("description") for p in model.values())
    assert set(schema["properties"]) == {"site_block", "parent_block", "spec", "dry_run"}
    assert set(schema["required"]) == {"site_block", "parent_block"}  # spec: the stored one


def test_sync_password_regenerated_elsewhere_is_replaced_in_the_other_slot(
    fsb: FlowSandbox,
) -> None:
    from sandbox.testing import mgmt_client

    site = fsb.site_blocks[0]
    cr = fsb.info["sites"][0]["name"]
    provision_site(site, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    token = fsb.azure.resource("tokens", cr)
    (recorded,) = [p["name"] for p in token["properties"]["credentials"]["passwords"]]
    # Someone ran `az acr connected-registry get-settings --generate-password` on that slot.
    info = fsb.info
    with mgmt_client(info) as client:
        client.registries.begin_generate_credentials(
            info["resource_group"],
            info["registry"],
            {"tokenId": token["id"], "name": recorded},
        ).result()
    out = provision_site(site, fsb.parent_block, ProvisionSpec(**spec()))
    steps = {s["step"]: s for s in out["steps"]}
    assert steps["sync-credential"]["changed"], steps["sync-credential"]["message"]
    assert steps["helm-release"]["changed"], steps
    assert steps["sync-old-slot"]["changed"], steps.get("sync-old-slot")
    after = fsb.azure.resource("tokens", cr)["properties"]["credentials"]["passwords"]
    assert [p["name"] for p in after] == ["password2" if recorded == "password1" else "password1"]
    assert fsb.azure.resource("connectedRegistries", cr)["properties"]["connectionState"] == (
        "Online"
    )
    again = provision_site(site, fsb.parent_block, ProvisionSpec(**spec()))
    assert again["writes"] == 0, again


def test_dry_run_shows_chart_drift_while_the_sync_credential_is_kept(fsb: FlowSandbox) -> None:
    """Chart settings changed in the block, sync credential still valid: the plan lists the
    masked Helm values diff and the upgrade, and nothing is written anywhere."""
    from prefect.artifacts import Artifact

    from blocks.edge_site import EdgeSite

    site_name, node = fsb.site_blocks[0], fsb.site()
    provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    block: EdgeSite = EdgeSite.load(site_name)  # type: ignore[assignment]
    original = block.storage_request
    block.storage_request = "30Gi"
    block.save(site_name, overwrite=True)
    try:
        fsb.azure.clear_requests()
        revision = node.helm_revision("connected-registry", "connected-registry")
        commands_before = len(node.commands())
        plan = provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec(dry_run=True)))
    finally:
        block.storage_request = original
        block.save(site_name, overwrite=True)

    assert plan["outcome"] == "planned" and plan["writes"] == 0, plan
    changes = [r for r in plan["node"] if r["action"] != "none" and r["step"] != "canary"]
    (action,) = changes
    assert (action["step"], action["action"]) == ("helm-release", "upgrade"), action
    assert "values changed (pvc.storageRequest)" in action["why"], action
    assert "kept" in action["why"]
    diff = {row["path"]: row for row in plan["helm_values_diff"]}
    assert diff["pvc.storageRequest"]["planned"] == "30Gi", diff
    assert diff["pvc.storageRequest"]["now"] in (None, original), diff
    assert "connectionString" not in diff  # same credential: no secret change to show
    secrets = {s["secret"]: s["action"] for s in plan["secrets"]}
    assert any(k.endswith("(sync)") and v == "none" for k, v in secrets.items()), secrets
    assert plan["planned_writes"] >= 1
    # 0 writes: no ARM write, no helm upgrade, no file write or restart on the node.
    assert fsb.arm_writes() == []
    assert node.helm_revision("connected-registry", "connected-registry") == revision
    new_commands = [str(c) for c in node.commands()[commands_before:]]
    assert not any(w in c for c in new_commands for w in ("upgrade", "restart", "cat >", "tee"))
    artifact: Any = Artifact.get(f"provision-plan-{site_name}")
    assert "values changed (pvc.storageRequest)" in str(artifact.data)
    for secret in fsb.azure.secrets():
        assert secret not in str(plan) and secret not in str(artifact.data)


def test_trust_on_first_use_pins_the_key_in_the_block_and_then_refuses_another(
    fsb: FlowSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from acr_edge.sandbox_blocks import site_block
    from blocks.edge_site import EdgeSite
    from flows.host_keys import fingerprint
    from model.errors import PermanentError
    from tasks.site.connection import open_site

    info = fsb.info["sites"][0]
    name = f"{fsb.site_blocks[0]}-tofu"
    tofu = site_block(info, "http")  # the same site the module provisioned over http
    tofu.known_hosts = []
    tofu.trust_on_first_use = True
    tofu.save(name, overwrite=True)

    out = provision_site(name, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    assert out["outcome"] in ("converged", "already converged"), out
    pinned: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
    assert pinned.known_hosts == [info["known_hosts"]]
    assert pinned.trust_on_first_use is False
    key_type, fp = fingerprint(info["known_hosts"])
    expected = (
        f"pinned host key {key_type} {fp} for {info['ssh_host']}:{info['ssh_port']} in block {name}"
    )
    notes = {s["step"]: s for s in out["steps"]}
    assert notes["host-key"]["message"] == expected  # in the provision artifact's table too
    private_key = Path(info["private_key_path"]).read_text()
    assert private_key.splitlines()[1] not in str(out)

    # The next run connects with the pinned key: nothing to pin again.
    again = provision_site(name, fsb.parent_block, ProvisionSpec(**spec()))
    assert "host-key" not in {s["step"] for s in again["steps"]} and again["writes"] == 0

    # The node now presents a key other than the pinned one: refused before any command.
    other = Ed25519PrivateKey.generate().public_key()
    other_line = " ".join(
        [
            info["known_hosts"].split()[0],
            *other.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode().split()[:2],
        ]
    )
    changed: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
    changed.known_hosts = [other_line]
    changed.save(name, overwrite=True)
    commands_before = len(fsb.site().commands())
    with pytest.raises(PermanentError, match="host key does not match"), open_site(changed):
        pass
    with pytest.raises(Exception, match="host key does not match"):
        provision_site(name, fsb.parent_block, ProvisionSpec(**spec()))
    assert len(fsb.site().commands()) == commands_before
    # TOFU stays off: the changed key was not accepted and the block was not rewritten.
    after: EdgeSite = EdgeSite.load(name)  # type: ignore[assignment]
    assert after.known_hosts == [other_line] and after.trust_on_first_use is False


def test_changed_chart_setting_upgrades_once_with_the_kept_sync_credential(
    fsb: FlowSandbox,
) -> None:
    """Kept last in this module: it leaves the site block with a changed storage request."""
    from blocks.edge_site import EdgeSite

    site_name, node = fsb.site_blocks[0], fsb.site()
    cr = fsb.info["sites"][0]["name"]
    provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True)))
    passwords_before = fsb.azure.resource("tokens", cr)["properties"]["credentials"]["passwords"]
    revision_before = node.helm_revision("connected-registry", "connected-registry")
    restarts_before = node.restart_count
    runtime_before = node.runtime.states[("connected-registry", "connected-registry")].generation

    block: EdgeSite = EdgeSite.load(site_name)  # type: ignore[assignment]
    block.storage_request = "20Gi"
    block.save(site_name, overwrite=True)
    fsb.azure.clear_requests()
    out = provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec()))

    steps = {s["step"]: s for s in out["steps"]}
    helm = steps["helm-release"]
    assert helm["changed"] and helm["writes"] == 1, helm
    assert "values changed (pvc.storageRequest)" in helm["message"], helm
    assert "kept sync credential" in helm["message"], helm
    assert not steps["sync-credential"]["changed"], steps["sync-credential"]
    assert node.helm_revision("connected-registry", "connected-registry") == revision_before + 1
    release = node.helm.releases[("connected-registry", "connected-registry")]
    assert release.current.values["pvc"]["storageRequest"] == "20Gi"
    # The same sync password: nothing generated in ARM, the runtime was not restarted.
    assert fsb.arm_writes() == []
    after = fsb.azure.resource("tokens", cr)["properties"]["credentials"]["passwords"]
    assert after == passwords_before  # same slots, same creation times: no new password
    assert node.restart_count == restarts_before
    assert node.runtime.states[("connected-registry", "connected-registry")].generation == (
        runtime_before
    )
    assert fsb.azure.resource("connectedRegistries", cr)["properties"]["connectionState"] == (
        "Online"
    )
    for secret in fsb.azure.secrets():
        assert secret not in str(out)

    third = provision_site(site_name, fsb.parent_block, ProvisionSpec(**spec()))
    assert third["outcome"] == "already converged" and third["writes"] == 0, third
    assert node.helm_revision("connected-registry", "connected-registry") == revision_before + 1
