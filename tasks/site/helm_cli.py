"""helm on the node: one command line per call (helm's own --kubeconfig, under sudo when the
site says so), its output redacted, and its failures sorted into transient and permanent."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import SecretStr

from model.errors import PermanentError, TransientError, redact
from tasks.site.commands import SUDO_FIX, helm_argv, sudo_refused
from tasks.site.connection import SiteConnection

_TRANSIENT_HELM = re.compile(
    r"connection refused|timed? ?out|unreachable|503|502|504|i/o timeout|EOF|"
    r"TLS handshake|another operation .* is in progress",
    re.IGNORECASE,
)


def helm(
    conn: SiteConnection,
    args: Sequence[str],
    *,
    stdin: SecretStr | None = None,
    timeout: float | None = None,
    secrets: Sequence[str] = (),
    idempotent: bool = False,
) -> tuple[int, str, str]:
    site = conn.site
    argv = helm_argv(site.kubeconfig_path, args)
    result = conn.ssh.run(argv, stdin=stdin, sudo=site.sudo, timeout=timeout, idempotent=idempotent)
    return result.exit_status, result.stdout, redact(result.error_text(), secrets)


def helm_error(resource: str, what: str, stderr: str) -> Exception:
    if sudo_refused(stderr):
        return PermanentError(f"{what} refused by sudo: {stderr}", resource=resource, fix=SUDO_FIX)
    if _TRANSIENT_HELM.search(stderr):
        return TransientError(f"{resource}: {what} failed: {stderr}")
    return PermanentError(f"{what} failed: {stderr}", resource=resource)
