"""The site resource modules against a simulated K3s site (SSH, Kubernetes API through the
tunnel, helm, K3s restart, kubelet) and the Azure sandbox driven with the real Azure SDK for
the credentials."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from blocks.edge_site import EdgeSite
from model.errors import PermanentError
from model.result import StepResult
from model.site import NodeAuth, PullSecretMeta, SyncCredentialRef
from tasks.site import canary, helm_release, mirror, namespace, node_mirror, pull_secrets
from tasks.site.connection import SiteConnection, open_site
from tasks.site.node_mirror_plan import Proof

# The node step's proof without a canary: the node Ready and its hosts.toml routing.
NO_CANARY = Proof("apps", None, None, 5)

REPO = "edge/app"
APP_NAMESPACES = ["default", "apps"]


@dataclass
class AzureCreds:
    connection_string: SecretStr
    sync_ref: SyncCredentialRef
    client_user: str
    client_password: SecretStr
    client_meta: PullSecretMeta


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from sandbox.runner import start_sandbox

    # not about propagation: one-shot canaries (provision's canary waits; tests/flows cover it)
    running = start_sandbox(tmp_path_factory.mktemp("sbx"), sites=2, propagation_delay=0)
    running.azure.add_repositories([REPO, "other/thing"])
    try:
        yield running
    finally:
        running.stop()


def _azure_half(sandbox: Any, cr: str) -> AzureCreds:
    """The Azure steps with the real SDK against the sandbox, as provision-site runs them."""
    from acr_edge.sandbox_blocks import parent_block
    from model import names
    from tasks.azure import connected_registry as crs
    from tasks.azure import passwords, registry, scope_maps, tokens
    from tasks.azure.connection_string import build_sync_connection_string
    from tasks.azure.spec import ConnectedRegistrySpec

    info = sandbox.info
    parent = parent_block(info)
    ctx = parent.azure_context(polling_interval=0, retry_base_delay=0.02, retry_max_delay=1.0)
    try:
        repos = [REPO]
        registry.preflight_parent(
            ctx, repositories=repos, client_token_count=1, enable_data_endpoint=True
        )
        scope_maps.ensure_sync_scope_map(ctx, cr, repos, "ReadOnly")
        tokens.ensure_sync_token(ctx, cr)
        crs.ensure_connected_registry(ctx, ConnectedRegistrySpec(name=cr, mode="ReadOnly"))
        client = names.client_token_name(cr)
        scope_maps.ensure_client_scope_map(ctx, client, repos)
        tokens.ensure_client_token(ctx, client, client)
        crs.attach_client_token(ctx, cr, client)
        sync = passwords.generate_password(ctx, cr, "password1")
        cr_info = crs.read_connected_registry(ctx, cr)
        assert cr_info is not None and cr_info.gateway_endpoint
        cs = build_sync_connection_string(
            cr, sync.username, sync.password, cr_info.gateway_endpoint
        )
        pw = passwords.generate_password(ctx, client, "password1")
    finally:
        ctx.close()
    created = pw.meta.creation_time.isoformat() if pw.meta.creation_time else ""
    return AzureCreds(
        connection_string=cs,
        sync_ref=SyncCredentialRef(
            token=cr,
            slot=str(sync.meta.slot),
            created=sync.meta.creation_time.isoformat() if sync.meta.creation_time else "",
        ),
        client_user=pw.username,
        client_password=pw.password,
        client_meta=PullSecretMeta(token=client, slot=str(pw.meta.slot), created=created),
    )


def _site_block(info: dict[str, Any], name: str, **over: Any) -> EdgeSite:
    args: dict[str, Any] = {
        "name": name,
        "ssh_host": info["ssh_host"],
        "ssh_port": info["ssh_port"],
        "ssh_user": info["ssh_user"],
        "ssh_private_key": Path(info["private_key_path"]).read_text(),
        "known_hosts": [info["known_hosts"]],
        "registries_path": info["registries_path"],
        "kubeconfig_path": info["kubeconfig_path"],
        "hosts_dir": info["hosts_dir"],
        "app_namespaces": APP_NAMESPACES,
        "ready_timeout": 20,
        "restart_timeout": 20,
        "transport": "http",
    }
    args.update(over)
    return EdgeSite(**args)


def _row(result: StepResult) -> tuple[str, str, str, str]:
    return (result.step, result.resource, result.action, result.message)


def _planned_then_applied(
    dry: Callable[[], StepResult], real: Callable[[], StepResult], plans: list[Any]
) -> StepResult:
    """The dry run of a step, then the step: the plan's row must be the run's row."""
    planned = dry()
    # A no-op is the same result in both runs (model.plan.converge returns it before the
    # dry-run check); anything else is planned, not applied.
    assert planned.planned or planned.action == "none", planned
    assert planned.writes == 0 and planned.message, planned
    result = real()
    assert not result.planned
    plans.append((_row(planned), _row(result)))
    return result


def _provision(conn: SiteConnection, site: EdgeSite, creds: AzureCreds) -> dict[str, Any]:
    """The site half of provision-site, in flow order, each step planned (dry run) first."""
    out: dict[str, Any] = {"plans": []}
    both = out["plans"]

    def step(fn: Callable[..., StepResult], *args: Any, **kw: Any) -> StepResult:
        return _planned_then_applied(
            lambda: fn(*args, **kw, dry_run=True), lambda: fn(*args, **kw), both
        )

    out["namespace"] = step(namespace.ensure_namespace, conn, site.namespace)
    out["helm"] = _planned_then_applied(
        # The dry run has no connection string: the plan does not need one.
        lambda: helm_release.ensure_helm_release(conn, creds.sync_ref, None, dry_run=True),
        lambda: helm_release.ensure_helm_release(conn, creds.sync_ref, creds.connection_string),
        both,
    )
    helm_release.wait_deployment_ready(conn)
    host = helm_release.registry_host(conn)
    out["host"] = host

    def secrets(password: Any, *, dry_run: bool = False) -> StepResult:
        return pull_secrets.ensure_pull_secrets(
            conn,
            site.app_namespaces,
            site.pull_secret_name,
            host,
            creds.client_user,
            password,
            creds.client_meta,
            patch_default_service_account=True,
            dry_run=dry_run,
        )

    out["pull_secrets"] = _planned_then_applied(
        lambda: secrets(None, dry_run=True),  # a dry run holds no secret
        lambda: secrets(creds.client_password),
        both,
    )
    # Pull secrets first: the node's proof is a canary pull with them.
    proof = Proof("apps", f"{host}/{REPO}:1.0", site.pull_secret_name, 20)
    out["registries"] = step(node_mirror.ensure_node_mirror, conn, host, None, proof)
    mirror.verify_hosts_toml(conn, host)
    out["canary"] = step(
        canary.ensure_canary,
        conn,
        "apps",
        f"{host}/{REPO}:1.0",
        site.pull_secret_name,
        deadline_seconds=20,
    )
    return out


def _secret_versions(conn: SiteConnection, name: str) -> dict[str, str]:
    return {
        ns: str(conn.core.read_namespaced_secret(name, ns).metadata.resource_version)  # type: ignore[union-attr]
        for ns in APP_NAMESPACES
    }


def test_fresh_site_then_converged_rerun(sandbox: Any) -> None:
    node = sandbox.sites[0]
    info = node.info
    creds = _azure_half(sandbox, "siteoneedge")
    site = _site_block(info, "siteoneedge")

    with open_site(site) as conn:
        first = _provision(conn, site, creds)
        versions = _secret_versions(conn, site.pull_secret_name)
        sa = conn.core.read_namespaced_service_account("default", "apps")
        pods = conn.core.list_namespaced_pod("apps").items
    for planned, applied in first["plans"]:
        assert planned == applied  # the dry run lists what the run then does, word for word
    assert first["namespace"].changed and first["helm"].changed
    assert first["registries"].changed and first["pull_secrets"].changed
    # A mirror-only change is live through hosts.toml: no restart.
    assert first["registries"].details["restarted"] is False
    assert "pulled" in first["registries"].details["canary"]
    assert first["canary"].action == "pull" and "pulled" in first["canary"].details["result"]
    assert not pods, "the canary pod is always deleted"
    assert [r.name for r in sa.image_pull_secrets or []] == [site.pull_secret_name]
    host = first["host"]
    assert node.restart_count == 0
    assert node.helm_revision(site.namespace, site.release_name) == 1
    registries = Path(info["registries_path"])
    assert registries.stat().st_mode & 0o777 == 0o600
    assert f'"{host}":\n    endpoint:\n    - "http://{host}"' in registries.read_text()
    assert (Path(info["hosts_dir"]) / host / "hosts.toml").exists()
    stat_before = registries.stat()

    with open_site(site) as conn:
        second = _provision(conn, site, creds)
        assert _secret_versions(conn, site.pull_secret_name) == versions
    assert "pulled" in second["canary"].details["result"]
    for planned, applied in second["plans"]:
        assert planned == applied
    for step in ("namespace", "helm", "registries", "pull_secrets"):
        assert not second[step].changed, second[step]
        assert second[step].writes == 0 and second[step].action == "none"
        assert second[step].message  # every no-op says why
    assert "already has these values" in second["helm"].message
    assert node.restart_count == 0
    assert node.helm_revision(site.namespace, site.release_name) == 1
    assert (registries.stat().st_ino, registries.stat().st_mtime_ns) == (
        stat_before.st_ino,
        stat_before.st_mtime_ns,
    )

    commands = [c.get("command", "") for c in node.commands()]
    upgrades = [c for c in commands if "upgrade --install" in c]
    assert len(upgrades) == 1
    assert "-f -" in upgrades[0] and "connectionString" not in upgrades[0]
    secrets = (
        creds.connection_string.get_secret_value(),
        creds.client_password.get_secret_value(),
        creds.connection_string.get_secret_value().split("SyncTokenPassword=")[1].split(";")[0],
    )
    log_text = Path(info["command_log"]).read_text()
    for secret in secrets:
        assert secret not in log_text


def _second_node(sandbox: Any) -> tuple[Any, Any, Path]:
    """The second simulated node, its site block and its registries.yaml path."""
    node = sandbox.sites[1]
    return node, _site_block(node.info, "sitetwoedge"), Path(node.info["registries_path"])


def test_unparsable_registries_yaml_is_left_alone(sandbox: Any) -> None:
    node, site, path = _second_node(sandbox)
    broken = b"mirrors:\n  docker.io:\n    endpoint: [\n# half-edited by hand\n"
    path.write_bytes(broken)
    restarts = node.restart_count
    with open_site(site) as conn, pytest.raises(PermanentError) as err:
        node_mirror.ensure_node_mirror(conn, "10.43.0.10:80", None, NO_CANARY)
    assert "does not parse" in str(err.value) and str(path) in str(err.value)
    assert path.read_bytes() == broken
    assert [p.name for p in path.parent.iterdir() if ".bak-" in p.name] == []
    assert node.restart_count == restarts


def test_registries_yaml_backup_and_fix(sandbox: Any) -> None:
    _, site, path = _second_node(sandbox)
    original = b'mirrors:\n  "10.43.0.10:80":\n    endpoint: ["https://10.43.0.10:80"]\n'
    path.write_bytes(original)
    with open_site(site) as conn:
        result = node_mirror.ensure_node_mirror(conn, "10.43.0.10:80", None, NO_CANARY)
        again = node_mirror.ensure_node_mirror(conn, "10.43.0.10:80", None, NO_CANARY)
    # The backup, the file and its hosts.toml (containerd reads it at the next pull).
    assert result.changed and result.writes == 3 and "fixes" in result.message
    backup = Path(result.details["backup"])
    assert backup.read_bytes() == original
    assert not again.changed


def test_canary_reports_the_kubelet_reason(sandbox: Any) -> None:
    node = sandbox.sites[0]
    site = _site_block(node.info, "siteoneedge")
    with open_site(site) as conn:
        host = helm_release.registry_host(conn)
        # "apps" has the pull secret on its default service account; this namespace has none.
        namespace.ensure_namespace(conn, "nocreds")
        result = canary.run_canary(conn, "nocreds", f"{host}/{REPO}:1.0", None, timeout=20)
        assert not conn.core.list_namespaced_pod("nocreds").items
    assert not result.ok
    assert "ErrImagePull" in result.reason or "ImagePullBackOff" in result.reason


def test_kubeconfig_is_never_written_to_disk(sandbox: Any, tmp_path: Path) -> None:
    import os
    import tempfile

    node = sandbox.sites[0]
    site = _site_block(node.info, "siteoneedge")
    before = set(os.listdir(tempfile.gettempdir()))
    with open_site(site) as conn:
        assert conn.core.read_namespace("default").metadata.name == "default"  # type: ignore[union-attr]
        cert_file = conn.api.configuration.key_file
        assert cert_file.startswith("/proc/")
        created = set(os.listdir(tempfile.gettempdir())) - before
    assert not [n for n in created if "kube" in n or n.endswith((".key", ".crt"))]
    assert not os.path.exists(cert_file)


def test_read_pull_secrets_reports_metadata_only(sandbox: Any) -> None:
    node = sandbox.sites[0]
    site = _site_block(node.info, "siteoneedge")
    with open_site(site) as conn:
        metas = pull_secrets.read_pull_secrets(
            conn, [*APP_NAMESPACES, "nocreds"], site.pull_secret_name
        )
    assert metas["nocreds"] is None
    meta = metas["apps"]
    assert meta is not None and meta.token == "siteoneedge-client"
    assert meta.slot == "password1" and meta.created
    assert set(json.loads(json.dumps(meta.__dict__))) == {"token", "slot", "created"}


def test_sudo_site_survives_a_dropped_connection_and_records_first_key(sandbox: Any) -> None:
    node = sandbox.sites[1]
    info = node.info
    site = _site_block(info, "sitetwoedge", sudo=True, known_hosts=[], trust_on_first_use=True)
    Path(info["registries_path"]).unlink(missing_ok=True)
    node.knobs.ssh.drop_next = 1  # the first TCP connection is cut: a transient, retried
    with open_site(site) as conn:
        assert conn.recorded_host_key == info["known_hosts"]
        result = node_mirror.ensure_node_mirror(conn, "10.43.0.20:80", None, NO_CANARY)
        assert conn.core.read_namespace("default").metadata.name == "default"  # type: ignore[union-attr]
    assert site.known_hosts == [info["known_hosts"]]  # the caller saves the block
    assert result.changed and result.writes == 2  # file + hosts.toml: nothing to back up
    assert Path(info["registries_path"]).stat().st_mode & 0o777 == 0o600
    commands = node_cmds(node)
    assert any(c.startswith("sudo -n -- ") and "k3s.yaml" in c for c in commands)
    # Content went on stdin, not argv (the hosts.toml's directory is named after the host).
    assert all("http://10.43.0.20" not in c and "endpoint" not in c for c in commands)


def node_cmds(node: Any) -> list[str]:
    return [c.get("command", "") for c in node.commands()]


def test_node_auth_model_pulls_without_pull_secret(sandbox: Any) -> None:
    node = sandbox.sites[1]
    info = node.info
    creds = _azure_half(sandbox, "sitetwoedge")
    site = _site_block(info, "sitetwoedge", auth_model="node")
    Path(info["registries_path"]).unlink(missing_ok=True)
    meta = creds.client_meta
    auth = NodeAuth(creds.client_user, creds.client_password, meta.slot, meta.created)
    with open_site(site) as conn:
        namespace.ensure_namespace(conn, site.namespace)
        helm_release.ensure_helm_release(conn, creds.sync_ref, creds.connection_string)
        helm_release.wait_deployment_ready(conn, 20)
        host = helm_release.registry_host(conn)
        # Dry run of the node model: no password, the slot the node should hold instead.
        planned = node_mirror.ensure_node_mirror(
            conn, host, None, NO_CANARY, node_ref=meta, dry_run=True
        )
        first = node_mirror.ensure_node_mirror(conn, host, auth, NO_CANARY)
        assert first.changed and _row(planned) == _row(first), (planned, first)
        assert first.details["restarted"] is True  # credentials load only at K3s start
        # The file records which slot it holds, written with the credential (no value).
        assert mirror.read_node_credential(conn, host) == meta
        # Its dry run now: the file's own value stands in for the slot it records.
        again = node_mirror.ensure_node_mirror(
            conn, host, None, NO_CANARY, node_ref=meta, dry_run=True
        )
        assert again.action == "none", again
        # A run that died between the write and the restart: the file is newer than the
        # hosts.toml K3s rendered at its last start, so the re-run plans the restart.
        earlier = time.time() - 60
        os.utime(Path(info["hosts_dir"]) / host / "hosts.toml", (earlier, earlier))
        pending = node_mirror.ensure_node_mirror(conn, host, auth, NO_CANARY, dry_run=True)
        assert pending.action == "restart" and "restarts" in pending.message, pending
        restarts = node.restart_count
        assert node_mirror.ensure_node_mirror(conn, host, auth, NO_CANARY).changed
        assert node.restart_count == restarts + 1
        settled = node_mirror.ensure_node_mirror(conn, host, auth, NO_CANARY)
        assert settled.action == "none" and meta.slot in settled.message, settled
        namespace.ensure_namespace(conn, "nodeauth")
        pulled = canary.run_canary(conn, "nodeauth", f"{host}/{REPO}:1.0", None, timeout=20)
    assert pulled.ok, pulled.reason
    assert creds.client_password.get_secret_value() not in Path(info["command_log"]).read_text()


def test_kubeconfig_access_without_tunnel(sandbox: Any) -> None:
    info = sandbox.sites[0].info
    kubeconfig = Path(info["kubeconfig_path"]).read_text()
    site = _site_block(info, "siteoneedge", kube_access="kubeconfig", kubeconfig=kubeconfig)
    with open_site(site) as conn:
        assert conn.api.configuration.host.endswith(f":{info['kube_api_port']}")
        assert conn.core.read_namespace("default").metadata.name == "default"  # type: ignore[union-attr]


def test_openssh_forward_carries_the_kubernetes_client(sandbox: Any, sshd: Any) -> None:
    """The same tunnel over a real OpenSSH sshd: kubeconfig read over SFTP, API via direct-tcpip."""
    from tasks.site.ssh import SshSession

    info = sandbox.sites[0].info
    site = _site_block(info, "siteoneedge")
    session = SshSession.connect(
        host="127.0.0.1",
        port=sshd.port,
        user="root",
        private_key=SecretStr(sshd.private_key),
        known_hosts=[sshd.known_hosts_line],
    )
    with open_site(site, ssh=session) as conn:
        assert conn.api.configuration.host != f"https://127.0.0.1:{info['kube_api_port']}"
        names = {ns.metadata.name for ns in conn.core.list_namespace().items}  # type: ignore[union-attr]
    assert {"default", "kube-system"} <= names


def _systemctl_restarts(node: Any, *, at_least: int = 0) -> int:
    """``systemctl restart`` lines in the node's command log. A command is logged when it
    ends, and a timed-out restart goes on in the simulator: wait for it (and K3s) first."""
    import time

    deadline = time.monotonic() + 30
    while True:
        count = sum("systemctl restart" in c for c in node_cmds(node))
        if (count >= at_least and node.k3s.state == "active") or time.monotonic() > deadline:
            return count
        time.sleep(0.1)


def test_a_slow_node_is_restarted_exactly_once_per_changed_file(sandbox: Any) -> None:
    """Issue 7 item 2: the restart and the wait after it are never retried, however slow;
    a restart that fails its wait rolls the node back (and restarts it once more)."""
    node = sandbox.sites[1]
    info = node.info
    knobs = node.knobs
    path = Path(info["registries_path"])
    path.unlink(missing_ok=True)
    always = {"restart_policy": "always"}  # a mirror-only change restarts too
    try:
        # Slow but within the deadline: one restart, the wait rides it out.
        knobs.restart_time = 2.0
        site = _site_block(info, "sitetwoedge", restart_timeout=30, **always)
        with open_site(site) as conn:
            before = _systemctl_restarts(node)
            result = node_mirror.ensure_node_mirror(conn, "10.43.0.31:80", None, NO_CANARY)
            assert result.changed and result.details["restarted"], result
            assert _systemctl_restarts(node, at_least=before + 1) == before + 1
            # Loaded now: a re-run plans no restart.
            again = node_mirror.ensure_node_mirror(conn, "10.43.0.31:80", None, NO_CANARY)
            assert again.action == "none", again
            assert _systemctl_restarts(node) == before + 1

        # The restart returns but the API stays unavailable: the node wait times out, and the
        # node is rolled back: the file it did not have removed, restarted once more.
        knobs.restart_time = 0.1
        site = _site_block(info, "sitetwoedge", restart_timeout=3, **always)
        path.unlink(missing_ok=True)
        with open_site(site) as conn:
            before = _systemctl_restarts(node)
            knobs.api_unavailable = True
            with pytest.raises(PermanentError) as err:
                node_mirror.ensure_node_mirror(conn, "10.43.0.33:80", None, NO_CANARY)
            assert "not ready" in str(err.value) and "Rolled back" in str(err.value)
            assert _systemctl_restarts(node, at_least=before + 2) == before + 2
            assert not path.exists()
    finally:
        knobs.api_unavailable = False
        knobs.restart_time = 0.2
        _systemctl_restarts(node)  # let a timed-out restart end before the next test
