"""What a node command returns and the seam site I/O uses to run commands and move files."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from pydantic import SecretStr

from model.errors import PermanentError, redact
from tasks.site import sudo_policy

SUDO_FIX = (
    "allow the SSH user passwordless sudo (sudo -n) for this command: install the recipe "
    "`acr-edge sudoers SITE_BLOCK` prints as /etc/sudoers.d/acr-edge, or log in as root"
)


@dataclass(frozen=True)
class CommandResult:
    """What one remote command produced; ``repr`` shows sizes only (output may hold secrets)."""

    stdout: str
    stderr: str
    exit_status: int
    command: str = ""
    _secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __repr__(self) -> str:
        return (
            f"CommandResult(exit_status={self.exit_status}, stdout={len(self.stdout)} chars, "
            f"stderr={len(self.stderr)} chars)"
        )

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def redacted(self, text: str) -> str:
        """``text`` (this command's output, or anything quoting it) with every secret the
        command was given, each of its parts and their encoded forms (base64 of any of them,
        docker's ``user:password`` auth, Kubernetes' base64 of that) replaced by ``***``."""
        return redact(text, self._secrets)

    def error_text(self, limit: int = 600) -> str:
        """stderr (else stdout) tail with every known secret redacted: the whole output is
        redacted before it is cut, so a secret split by the cut cannot leave a readable tail."""
        text = self.redacted(self.stderr.strip() or self.stdout.strip())
        return text[-limit:]

    def check(self, what: str, *, fix: str = "") -> CommandResult:
        if self.exit_status != 0:
            raise PermanentError(
                f"{what} failed (exit {self.exit_status}): {self.error_text()}",
                resource=what,
                fix=fix,
            )
        return self


@runtime_checkable
class CommandRunner(Protocol):
    """The seam the site ops use for node commands and files."""

    def run(
        self,
        cmd: Sequence[str] | str,
        *,
        stdin: bytes | SecretStr | None = None,
        sudo: bool = False,
        timeout: float | None = None,
        idempotent: bool = False,
    ) -> CommandResult: ...

    def read_file(self, path: str, *, sudo: bool = False) -> bytes | None: ...

    def write_file(
        self,
        path: str,
        data: bytes | SecretStr,
        *,
        mode: int = 0o600,
        sudo: bool = False,
        owner: tuple[int, int] | None = None,
    ) -> None: ...


def sudo_refused(stderr: str) -> bool:
    """sudo's own refusal (no rule for the command, or no NOPASSWD): permanent, whatever the
    refused command line says (a helm line holds "--timeout", which reads as transient)."""
    low = stderr.lower()
    return "is not allowed to execute" in low or "a password is required" in low


def helm_argv(kubeconfig: str, args: Sequence[str]) -> list[str]:
    """helm reads the node's admin kubeconfig (root-only on K3s), so it runs like the other
    privileged commands. The path is helm's own flag rather than an `env KUBECONFIG=` prefix:
    sudoers can then allow helm itself, not `env`, which would run anything."""
    return ["helm", "--kubeconfig", kubeconfig, *args]


def sudo_prefix(cmd: Sequence[str] | str, resource: str = "node") -> str:
    """`sudo -n --` never prompts (no tty). Only a command of acr-edge's sudoers recipe is
    sent (:mod:`tasks.site.sudo_policy`); anything else, a shell string included, is refused
    before it leaves this process."""
    return "sudo -n -- " + shlex.join(sudo_policy.check(cmd, resource))


def short(line: str, limit: int = 80) -> str:
    # Command lines carry no secrets (those travel on stdin); this keeps messages readable.
    return line if len(line) <= limit else line[: limit - 3] + "..."
