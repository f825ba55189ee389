"""teardown-site against the sandbox: dry run, teardown of what acr-edge owns (read back from ARM
and the cluster), foreign resources left, a converged re-run, and a crash then re-run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, parent_as, spec, start

from flows.checkpoints import on_step
from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from flows.teardown_site import FLOW, teardown_site

pytestmark = pytest.mark.prefect

RELEASE = ("connected-registry", "connected-registry")
FOREIGN = "operatormap01"
# The operator's own file on the second node: it must come back byte for byte.
OPERATOR_FILE = (
    b"# operator: docker hub through the plant mirror\n"
    b"mirrors:\n  docker.io:\n    endpoint:\n      - 'https://mirror.plant.local'\n"
)


def hosts_tomls(fsb: FlowSandbox, i: int) -> list[Any]:
    return sorted(p for n in fsb.site(i).nodes for p in n.hosts_dir.glob("*/hosts.toml"))


def node_files(fsb: FlowSandbox, i: int) -> list[bytes | None]:
    return [
        n.registries_path.read_bytes() if n.registries_path.exists() else None
        for n in fsb.site(i).nodes
    ]


class Crash(RuntimeError):
    """Stands for the worker dying right after a step."""


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("teardown"), sites=2, nodes_per_site=2)
    try:
        yield box
    finally:
        box.running.stop()


def provision(fsb: FlowSandbox, i: int) -> None:
    out = provision_site(
        fsb.site_blocks[i], fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True))
    )
    assert out["outcome"] in ("converged", "already converged"), out


def owned(fsb: FlowSandbox, i: int) -> dict[str, Any]:
    """What acr-edge created for site ``i``, read back from ARM (None when gone)."""
    cr = fsb.info["sites"][i]["name"]
    return {
        "connectedRegistries": fsb.azure.resource("connectedRegistries", cr),
        "sync token": fsb.azure.resource("tokens", cr),
        "sync map": fsb.azure.resource("scopeMaps", cr),
        "client token": fsb.azure.resource("tokens", f"{cr}-client"),
        "client map": fsb.azure.resource("scopeMaps", f"{cr}-client"),
    }


def pull_secrets(fsb: FlowSandbox, i: int) -> dict[str, bool]:
    from kubernetes.client.exceptions import ApiException

    from blocks.edge_site import EdgeSite
    from tasks.site.connection import open_site

    block: EdgeSite = EdgeSite.load(fsb.site_blocks[i])  # type: ignore[assignment]
    out: dict[str, bool] = {}
    with open_site(block) as conn:
        for ns in block.app_namespaces:
            try:
                conn.core.read_namespaced_secret(block.pull_secret_name, ns)
                out[ns] = True
            except ApiException as exc:
                assert exc.status == 404
                out[ns] = False
        conn.core.read_namespace(block.namespace)  # the release namespace is left
    return out


def seed_foreign(fsb: FlowSandbox) -> None:
    sync_map = fsb.azure.resource("scopeMaps", fsb.info["sites"][0]["name"])
    map_id = sync_map["id"].rsplit("/", 1)[0] + f"/{FOREIGN}"
    fsb.azure.seed_resource(
        "scopeMaps", FOREIGN, {"properties": {"actions": ["repositories/x/content/read"]}}
    )
    fsb.azure.seed_resource("tokens", FOREIGN, {"properties": {"scopeMapId": map_id}})


def test_dry_run_lists_every_deletion_and_writes_nothing(fsb: FlowSandbox) -> None:
    fsb.site(0).nodes[1].registries_path.write_bytes(OPERATOR_FILE)
    provision(fsb, 0)
    files = node_files(fsb, 0)
    assert all(f is not None and b"mirrors" in f for f in files)
    assert files[1] != OPERATOR_FILE
    tomls = hosts_tomls(fsb, 0)
    assert tomls
    fsb.azure.clear_requests()
    commands = len(fsb.site(0).commands())
    revision = fsb.site(0).helm_revision(*RELEASE)
    plan = teardown_site(fsb.site_blocks[0], fsb.parent_block, dry_run=True)
    assert plan["outcome"] == "planned" and plan["writes"] == 0, plan
    actions = {s["step"]: s["action"] for s in plan["steps"]}
    assert actions["deactivate-connected-registry"] == "deactivate", actions
    for step in (
        "delete-connected-registry",
        "delete-sync-token",
        "delete-client-token",
        "delete-sync-scope-map",
        "delete-client-scope-map",
        "delete-pull-secret",
    ):
        assert actions[step] == "delete", actions
    assert actions["uninstall-helm-release"] == "uninstall", actions
    assert actions["delete-namespace"] == "none", actions
    nodes = [s for s in plan["steps"] if s["step"] == "node-mirror-teardown"]
    assert [s["action"] for s in nodes] == ["delete", "write"] or [s["action"] for s in nodes] == [
        "write",
        "delete",
    ], nodes
    assert all(s["message"] for s in plan["steps"])
    assert fsb.arm_writes() == []
    assert node_files(fsb, 0) == files and hosts_tomls(fsb, 0) == tomls
    assert all(v is not None for v in owned(fsb, 0).values())
    assert fsb.site(0).helm_revision(*RELEASE) == revision
    new = fsb.site(0).commands()[commands:]
    assert not any("uninstall" in str(c) for c in new), new
    assert all(pull_secrets(fsb, 0).values())


def test_teardown_removes_what_it_owns_leaves_the_rest_and_reruns_clean(
    fsb: FlowSandbox,
) -> None:
    from acr_edge.teardown_readback import read_back, registry_host

    provision(fsb, 0)
    seed_foreign(fsb)
    host = registry_host(fsb.site_blocks[0])
    assert host is not None
    # The read-back the demo reports: it sees a provisioned site as not torn down...
    before = read_back(fsb.site_blocks[0], fsb.parent_block, host)
    assert before["arm_owned_left"] == 5, before
    assert before["nodes_clean"] is False and before["release_removed"] is False, before
    out = teardown_site(fsb.site_blocks[0], fsb.parent_block)
    assert out["outcome"] == "torn down", out
    # ...and, read back from ARM, the nodes and helm, nothing of acr-edge's afterwards.
    after = read_back(fsb.site_blocks[0], fsb.parent_block, host)
    assert after == {
        "arm_owned_left": 0,
        "nodes_clean": True,
        "release_removed": True,
        "left": [],
    }, after
    for secret in fsb.azure.secrets():
        assert secret not in str(out)
    assert all(v is None for v in owned(fsb, 0).values()), owned(fsb, 0)
    assert RELEASE not in fsb.site(0).helm.releases
    assert not any(pull_secrets(fsb, 0).values())
    assert hosts_tomls(fsb, 0) == []
    by_node = dict(zip([n.name for n in fsb.site(0).nodes], node_files(fsb, 0), strict=True))
    assert by_node[fsb.site(0).nodes[0].name] is None  # acr-edge created it: removed
    assert by_node[fsb.site(0).nodes[1].name] == OPERATOR_FILE  # the operator's, byte for byte
    # Not acr-edge's: left.
    assert fsb.azure.resource("scopeMaps", FOREIGN) is not None
    assert fsb.azure.resource("tokens", FOREIGN) is not None
    # Site 2's resources are someone else's to tear down.
    provision(fsb, 1)
    fsb.azure.clear_requests()
    again = teardown_site(fsb.site_blocks[0], fsb.parent_block)
    assert again["outcome"] == "already torn down" and again["writes"] == 0, again
    assert fsb.arm_writes() == []
    assert all(s["action"] == "none" and s["message"] for s in again["steps"]), again
    assert all(v is not None for v in owned(fsb, 1).values())


def test_a_foreign_token_secret_and_namespace_under_our_names_are_left(fsb: FlowSandbox) -> None:
    """A token named like acr-edge's client token but bound to a foreign map, a secret under
    the pull secret's name without acr-edge's annotation, and namespaces are not deleted."""
    from kubernetes import client as k8s

    from blocks.edge_site import EdgeSite
    from tasks.site.connection import open_site

    block: EdgeSite = EdgeSite.load(fsb.site_blocks[0])  # type: ignore[assignment]
    ns = block.app_namespaces[0]
    with open_site(block) as conn:
        conn.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name="operator-ns")))
        conn.core.create_namespaced_secret(
            ns,
            k8s.V1Secret(
                metadata=k8s.V1ObjectMeta(name=block.pull_secret_name),
                string_data={"note": "the operator's"},
            ),
        )
    cr = fsb.info["sites"][0]["name"]
    map_id = fsb.azure.resource("scopeMaps", FOREIGN)["id"]
    fsb.azure.seed_resource("tokens", f"{cr}-client", {"properties": {"scopeMapId": map_id}})
    out = teardown_site(fsb.site_blocks[0], fsb.parent_block)
    row = next(s for s in out["steps"] if s["step"] == "delete-client-token")
    assert row["action"] == "none" and "left" in row["message"], row
    assert fsb.azure.resource("tokens", f"{cr}-client") is not None
    secret_row = next(s for s in out["steps"] if s["step"] == "delete-pull-secret")
    assert secret_row["action"] == "none" and "left" in secret_row["message"], secret_row
    assert pull_secrets(fsb, 0)[ns] is True
    with open_site(block) as conn:
        conn.core.read_namespace("operator-ns")
    assert out["writes"] == 0, out


# Every step name teardown-site reports; test_the_crash_matrix_covers_every_step checks this
# list against a dry run's rows, so a step added to the flow fails until it is crashed here too.
CRASH_STEPS = [
    "preflight-permissions",
    "node-mirror-teardown",
    "delete-node-ca-file",
    "delete-pull-secret",
    "uninstall-helm-release",
    "delete-tls-secret",
    "delete-namespace",
    "deactivate-connected-registry",
    "delete-connected-registry",
    "delete-client-token",
    "delete-sync-token",
    "delete-client-scope-map",
    "delete-sync-scope-map",
]


def test_the_operator_role_alone_cannot_tear_down_and_nothing_is_removed(
    fsb: FlowSandbox,
) -> None:
    from model.errors import PermanentError
    from model.rbac import TEARDOWN_ONLY_ACTIONS

    provision(fsb, 1)
    site = fsb.site_blocks[1]
    operator = parent_as(fsb, ["acr-edge-operator", "AcrPull"], "teardown-operator-only")
    files, tomls = node_files(fsb, 1), hosts_tomls(fsb, 1)
    revision = fsb.site(1).helm_revision(*RELEASE)
    fsb.azure.clear_requests()
    with pytest.raises(PermanentError) as err:
        teardown_site(site, operator)
    text = str(err.value)
    for action in TEARDOWN_ONLY_ACTIONS:
        assert action in text, (action, text)
    assert "acr-edge-teardown" in text and "Traceback" not in text
    # Refused before anything went: ARM, the nodes' files, the release and the secrets.
    assert fsb.arm_writes() == []
    assert node_files(fsb, 1) == files and hosts_tomls(fsb, 1) == tomls
    assert fsb.site(1).helm_revision(*RELEASE) == revision
    assert all(v is not None for v in owned(fsb, 1).values())
    assert all(pull_secrets(fsb, 1).values())
    # The dry run shows the same verdict as its blocker row.
    with pytest.raises(PermanentError):
        teardown_site(site, operator, dry_run=True)

    both = parent_as(
        fsb, ["acr-edge-operator", "acr-edge-teardown", "AcrPull"], "teardown-both-roles"
    )
    out = teardown_site(site, both)
    assert out["outcome"] == "torn down", out
    assert out["steps"][0]["step"] == "preflight-permissions", out["steps"][0]
    assert all(v is None for v in owned(fsb, 1).values()), owned(fsb, 1)
    refused = [r for r in fsb.azure.requests("arm") if r.get("status") == 403]
    assert refused == [], refused


def test_the_crash_matrix_covers_every_step(fsb: FlowSandbox) -> None:
    provision(fsb, 1)
    plan = teardown_site(fsb.site_blocks[1], fsb.parent_block, dry_run=True)
    reported = list(dict.fromkeys(s["step"] for s in plan["steps"]))
    assert set(reported) == set(CRASH_STEPS), reported
    assert reported[-1] == CRASH_STEPS[-1]


@pytest.mark.parametrize("crash_after", CRASH_STEPS)
def test_crash_then_rerun_converges(fsb: FlowSandbox, crash_after: str) -> None:
    provision(fsb, 1)
    site = fsb.site_blocks[1]

    def hook(flow: str, _site: str, step: str) -> None:
        if flow == FLOW and step == crash_after:
            raise Crash(step)

    with on_step(hook), pytest.raises(Crash):
        teardown_site(site, fsb.parent_block)
    out = teardown_site(site, fsb.parent_block)
    # After the last step nothing is left for the re-run to do.
    last = crash_after == "delete-sync-scope-map"
    assert out["outcome"] == ("already torn down" if last else "torn down"), out
    assert all(v is None for v in owned(fsb, 1).values()), owned(fsb, 1)
    assert RELEASE not in fsb.site(1).helm.releases
    assert not any(pull_secrets(fsb, 1).values())
    assert hosts_tomls(fsb, 1) == [] and node_files(fsb, 1) == [None, None]
    again = teardown_site(site, fsb.parent_block)
    assert again["writes"] == 0, again
