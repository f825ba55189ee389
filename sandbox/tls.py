"""Sandbox TLS: one generated CA per sandbox, leaf certificates for 127.0.0.1/localhost.

Clients trust the sandbox by pointing at ``ca.pem`` (``connection_verify=``); nothing in the
sandbox asks anyone to switch verification off.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


@dataclass
class SandboxCA:
    """A CA whose certificate is written to ``ca_pem`` for clients to trust."""

    ca: trustme.CA
    ca_pem: Path

    def server_context(self, *hosts: str) -> ssl.SSLContext:
        """A server-side context presenting a leaf for ``hosts`` (default 127.0.0.1, localhost)."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ca.issue_cert(*(hosts or DEFAULT_HOSTS)).configure_cert(ctx)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts only this CA (for urllib in tests/tools)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_pem))
        return ctx


def create_ca(state_dir: Path, *, filename: str = "ca.pem") -> SandboxCA:
    """Generate a CA and write its certificate (not its key) to ``state_dir/filename``."""
    state_dir.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="acr-edge sandbox")
    path = state_dir / filename
    ca.cert_pem.write_to_path(str(path))
    return SandboxCA(ca=ca, ca_pem=path)
