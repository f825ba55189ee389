"""SSH to a simulated node with paramiko: exec, stdin, SFTP, host-key pinning, knobs, log."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path

import paramiko
import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from sandbox.sites import SimulatedSite
from sandbox.sites.testing import run, ssh_client


def test_exec_splits_streams_and_returns_exit_status(ssh: paramiko.SSHClient) -> None:
    assert run(ssh, "echo out; echo err >&2; exit 3") == (3, "out\n", "err\n")


def test_exec_runs_in_node_root_with_simulated_tools_first(
    ssh: paramiko.SSHClient, site: SimulatedSite
) -> None:
    rc, out, _ = run(ssh, "pwd; for t in helm kubectl systemctl sudo k3s; do command -v $t; done")
    assert rc == 0
    lines = out.split()
    assert lines[0] == str(site.root)
    assert lines[1:] == [
        str(site.bin_dir / t) for t in ("helm", "kubectl", "systemctl", "sudo", "k3s")
    ]


def test_stdin_reaches_the_command_but_never_the_command_log(
    ssh: paramiko.SSHClient, site: SimulatedSite
) -> None:
    secret = "s3cret-value-on-stdin"
    target = site.root / "etc/rancher/k3s/from-stdin"
    rc, _, _ = run(ssh, f"sudo tee {target} >/dev/null", stdin=secret.encode())
    assert rc == 0
    assert target.read_text() == secret
    log_text = site.command_log.read_text()
    assert secret not in log_text
    entries = site.commands()
    assert entries[-1]["command"] == f"sudo tee {target} >/dev/null"
    assert entries[-1]["exit_status"] == 0
    assert {"time", "command", "exit_status"} <= set(entries[-1])


def test_host_key_is_pinned_and_a_wrong_key_is_rejected(site: SimulatedSite) -> None:
    client = paramiko.SSHClient()
    wrong = paramiko.Ed25519Key(
        data=base64.b64decode(
            "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
        )
    )
    client.get_host_keys().add(f"[127.0.0.1]:{site.info['ssh_port']}", "ssh-ed25519", wrong)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.BadHostKeyException):
        client.connect(
            "127.0.0.1",
            port=site.info["ssh_port"],
            username="edge",
            pkey=paramiko.Ed25519Key.from_private_key_file(site.info["private_key_path"]),
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
        )
    client.close()


def test_wrong_user_is_refused(site: SimulatedSite) -> None:
    info = {**site.info, "ssh_user": "root"}
    with pytest.raises(paramiko.AuthenticationException):
        ssh_client(info)


def test_node_files_and_private_key_mode(ssh: paramiko.SSHClient, site: SimulatedSite) -> None:
    info = site.info
    assert stat.S_IMODE(Path(info["private_key_path"]).stat().st_mode) == 0o600
    sftp = ssh.open_sftp()
    with pytest.raises(FileNotFoundError):
        sftp.stat(info["registries_path"])
    assert stat.S_ISDIR(sftp.stat(info["hosts_dir"]).st_mode or 0)
    with sftp.open(info["kubeconfig_path"]) as fh:
        kc = yaml.safe_load(fh.read())
    cluster = kc["clusters"][0]
    assert cluster["name"] == "default"
    assert cluster["cluster"]["server"] == f"https://127.0.0.1:{info['kube_api_port']}"
    cert = x509.load_pem_x509_certificate(
        base64.b64decode(kc["users"][0]["user"]["client-certificate-data"])
    )
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:admin"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "system:masters"
    )
    # atomic swap of registries.yaml the way the edge steps do it
    tmp = info["registries_path"] + ".tmp"
    with sftp.open(tmp, "w") as fh:
        fh.write("mirrors: {}\n")
    sftp.posix_rename(tmp, info["registries_path"])
    assert Path(info["registries_path"]).read_text() == "mirrors: {}\n"
    sftp.close()


def test_dropped_connections_then_recovery_and_latency(site: SimulatedSite) -> None:
    site.knobs.ssh.drop_next = 2
    for _ in range(2):
        with pytest.raises((paramiko.SSHException, EOFError, OSError)):
            ssh_client(site.info, timeout=5)
    client = ssh_client(site.info)
    site.knobs.ssh.latency = 0.3
    started = time.monotonic()
    assert run(client, "true")[0] == 0
    assert time.monotonic() - started >= 0.3
    client.close()
    assert site.ssh.dropped == 2


def test_command_log_is_json_lines(ssh: paramiko.SSHClient, site: SimulatedSite) -> None:
    run(ssh, "exit 7")
    last = json.loads(site.command_log.read_text().splitlines()[-1])
    assert last["command"] == "exit 7" and last["exit_status"] == 7
