"""Per-node key material: SSH host and client keys (ed25519) and the node's TLS CA (trustme)."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import trustme


def new_ssh_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


def public_line(key: asyncssh.SSHKey) -> str:
    """``ssh-ed25519 AAAA...`` without a comment."""
    algo, blob = key.export_public_key("openssh").decode().split()[:2]
    return f"{algo} {blob}"


def known_hosts_line(host: str, port: int, key: asyncssh.SSHKey) -> str:
    return f"[{host}]:{port} {public_line(key)}"


def write_private_key(path: Path, key: asyncssh.SSHKey) -> None:
    """Write an OpenSSH private key created 0600 (never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.export_private_key("openssh"))
    os.chmod(path, 0o600)


@dataclass
class NodeTls:
    """A node's own CA, its API server certificate and the ``system:admin`` client certificate."""

    ca: trustme.CA
    server: trustme.LeafCert
    admin: trustme.LeafCert

    @classmethod
    def generate(cls) -> NodeTls:
        ca = trustme.CA(organization_name="k3s-server-ca")
        server = ca.issue_cert("127.0.0.1", "localhost", "kubernetes", "kubernetes.default")
        # trustme refuses "system:admin" as an identity, so the CN carries it (as K3s does)
        admin = ca.issue_cert(
            "admin@k3s.local", common_name="system:admin", organization_name="system:masters"
        )
        return cls(ca=ca, server=server, admin=admin)

    def kubeconfig(self, server_url: str) -> dict[str, object]:
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        key = self.admin.private_key_pem.bytes()
        cert = b"".join(blob.bytes() for blob in self.admin.cert_chain_pems)
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "default",
                    "cluster": {
                        "certificate-authority-data": b64(self.ca.cert_pem.bytes()),
                        "server": server_url,
                    },
                }
            ],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
            "current-context": "default",
            "preferences": {},
            "users": [
                {
                    "name": "default",
                    "user": {"client-certificate-data": b64(cert), "client-key-data": b64(key)},
                }
            ],
        }
