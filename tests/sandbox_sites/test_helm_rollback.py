"""The failing-upgrade knob, `helm rollback` and `helm history` as Helm 3 records them."""

from __future__ import annotations

import json
from typing import Any

import paramiko
from kubernetes import client

from sandbox.sites import SimulatedSite
from sandbox.sites.testing import kube_client, provision_connected_registry, run

CHART = "oci://mcr.microsoft.com/acr/connected-registry/chart"
UPGRADE = f"helm upgrade --install cr {CHART} -n conreg --create-namespace -f -"


def _values(conn: str, storage: str = "10Gi") -> bytes:
    return (
        f"connectionString: {conn}\nhttpEnabled: true\n"
        f"pvc:\n  storageClassName: local-path\n  storageRequest: {storage}\n"
    ).encode()


def _history(ssh: paramiko.SSHClient) -> list[tuple[int, str, str]]:
    rc, out, err = run(ssh, "helm history cr -n conreg -o json")
    assert rc == 0, err
    return [(r["revision"], r["status"], r["description"]) for r in json.loads(out)]


def _available(site: SimulatedSite) -> int:
    apps = client.AppsV1Api(kube_client(site.info))
    return apps.read_namespaced_deployment("cr", "conreg").status.available_replicas or 0


def _storage(ssh: paramiko.SSHClient) -> str:
    rc, out, _ = run(ssh, "helm get values cr -n conreg -o json")
    assert rc == 0
    return str(json.loads(out)["pvc"]["storageRequest"])


def _online(mgmt: Any, azure: Any, name: str) -> str:
    cr = mgmt.connected_registries.get(azure.info["resource_group"], azure.info["registry"], name)
    state = cr.connection_state
    return str(getattr(state, "value", state))


def test_failing_upgrade_with_wait_fails_then_rollback_restores_the_install(
    ssh: paramiko.SSHClient, site: SimulatedSite, mgmt: Any, azure: Any, cr_name: str
) -> None:
    reg = provision_connected_registry(mgmt, azure.info, cr_name, ["edge/app1"])
    site.knobs.fail_upgrade = True  # an install is not an upgrade: unaffected
    rc, _, err = run(ssh, f"{UPGRADE} --wait --timeout 5s", stdin=_values(reg.connection_string))
    assert rc == 0, err
    assert _available(site) == 1

    rc, out, err = run(
        ssh, f"{UPGRADE} --wait --timeout 1s", stdin=_values(reg.connection_string, "20Gi")
    )
    assert rc != 0 and "UPGRADE FAILED" in err and "context deadline exceeded" in err
    # Helm 3's failRelease: the new revision failed, the one before still deployed.
    assert _history(ssh) == [
        (1, "deployed", "Install complete"),
        (2, "failed", 'Upgrade "cr" failed: context deadline exceeded'),
    ]
    assert _available(site) == 0
    core = client.CoreV1Api(kube_client(site.info))
    (pod,) = core.list_namespaced_pod("conreg", label_selector="app=cr").items
    assert pod.status.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    assert site.runtime.ready_release_for("conreg", "cr") is None

    # The knob stays armed: a rollback is not an upgrade, and revision 1 was a good one.
    rc, out, err = run(ssh, "helm rollback cr 1 -n conreg --wait --timeout 5s")
    assert rc == 0 and "Rollback was a success" in out, err
    # Helm 3 supersedes only deployed revisions: the failed one stays failed.
    assert _history(ssh) == [
        (1, "superseded", "Install complete"),
        (2, "failed", 'Upgrade "cr" failed: context deadline exceeded'),
        (3, "deployed", "Rollback to 1"),
    ]
    assert site.helm_revision("conreg", "cr") == 3
    assert _storage(ssh) == "10Gi"
    assert _available(site) == 1
    assert site.runtime.ready_release_for("conreg", "cr") is not None
    assert _online(mgmt, azure, cr_name) == "Online"
    rc, out, _ = run(ssh, "helm status cr -n conreg -o json")
    assert json.loads(out)["info"]["status"] == "deployed" and json.loads(out)["version"] == 3
    assert reg.connection_string not in site.command_log.read_text()


def test_upgrade_without_wait_is_deployed_then_rolled_back_to_the_previous_revision(
    ssh: paramiko.SSHClient, site: SimulatedSite, mgmt: Any, azure: Any, cr_name: str
) -> None:
    reg = provision_connected_registry(mgmt, azure.info, cr_name, ["edge/app1"])
    assert run(ssh, f"{UPGRADE} --wait --timeout 5s", stdin=_values(reg.connection_string))[0] == 0
    site.knobs.fail_upgrade = True
    rc, out, err = run(ssh, UPGRADE, stdin=_values(reg.connection_string, "20Gi"))
    assert rc == 0 and "STATUS: deployed" in out, err  # helm did not wait: it cannot know
    assert _available(site) == 0 and _storage(ssh) == "20Gi"

    rc, out, err = run(ssh, "helm rollback cr -n conreg --wait --timeout 5s")  # 0: previous
    assert rc == 0, err
    assert _history(ssh) == [
        (1, "superseded", "Install complete"),
        (2, "superseded", "Upgrade complete"),
        (3, "deployed", "Rollback to 1"),
    ]
    assert _storage(ssh) == "10Gi" and _available(site) == 1

    # Disarmed, the same upgrade goes through: revision 4.
    site.knobs.fail_upgrade = False
    rc, _, err = run(
        ssh, f"{UPGRADE} --wait --timeout 5s", stdin=_values(reg.connection_string, "20Gi")
    )
    assert rc == 0, err
    assert [h[:2] for h in _history(ssh)][-2:] == [(3, "superseded"), (4, "deployed")]
    assert _available(site) == 1 and _online(mgmt, azure, cr_name) == "Online"


def test_rolling_back_to_a_broken_revision_never_becomes_ready(
    ssh: paramiko.SSHClient, site: SimulatedSite, mgmt: Any, azure: Any, cr_name: str
) -> None:
    reg = provision_connected_registry(mgmt, azure.info, cr_name, ["edge/app1"])
    assert run(ssh, f"{UPGRADE} --wait --timeout 5s", stdin=_values(reg.connection_string))[0] == 0
    site.knobs.fail_upgrade = True
    assert run(ssh, UPGRADE, stdin=_values(reg.connection_string, "20Gi"))[0] == 0
    assert run(ssh, "helm rollback cr 1 -n conreg --wait --timeout 5s")[0] == 0
    site.knobs.fail_upgrade = False
    # Revision 2's pods were the bad ones: rolling back to it fails again, recorded as failed.
    rc, _, err = run(ssh, "helm rollback cr 2 -n conreg --wait --timeout 1s")
    assert rc != 0 and "release cr failed: context deadline exceeded" in err
    assert _history(ssh)[-1] == (4, "failed", 'Release "cr" failed: context deadline exceeded')
    assert _history(ssh)[-2][:2] == (3, "deployed")  # not superseded by a failed rollback


def test_rollback_and_history_refuse_what_does_not_exist(
    ssh: paramiko.SSHClient, site: SimulatedSite, mgmt: Any, azure: Any, cr_name: str
) -> None:
    rc, _, err = run(ssh, "helm history cr -n conreg -o json")
    assert rc != 0 and "release: not found" in err
    rc, _, err = run(ssh, "helm rollback cr 1 -n conreg")
    assert rc != 0 and "release: not found" in err
    reg = provision_connected_registry(mgmt, azure.info, cr_name, ["edge/app1"])
    assert run(ssh, f"{UPGRADE} --wait --timeout 5s", stdin=_values(reg.connection_string))[0] == 0
    rc, _, err = run(ssh, "helm rollback cr 7 -n conreg")
    assert rc != 0 and "release: not found" in err
    rc, _, err = run(ssh, "helm rollback cr two -n conreg")
    assert rc != 0 and "invalid revision number" in err
    assert _history(ssh) == [(1, "deployed", "Install complete")]
