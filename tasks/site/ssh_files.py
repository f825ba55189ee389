"""Node files over SSH: read (None when absent), atomic replace with the mode set first.

A mixin of :class:`tasks.site.ssh.SshSession`: SFTP for the SSH user's own files, otherwise
single commands under `sudo` (never a shell: each line is one a sudoers recipe can name
exactly, see :mod:`tasks.site.sudo_policy`). Reads retry after a dropped connection; a write
whose connection dropped is not repeated (whether its rename landed is unknown: the step reads
the file again).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable

import paramiko
from pydantic import SecretStr

from model.errors import PermanentError, TransientError, classify
from model.retry import RetryPolicy, call_with_retry
from tasks.site.commands import SUDO_FIX as _SUDO_FIX
from tasks.site.commands import CommandResult

# GNU cat's words for a missing file (sudo resets the environment, so the C locale's).
_MISSING = "no such file or directory"


def temp_path(path: str) -> str:
    """The fixed temporary name beside ``path`` a sudo write goes through. Fixed, not random,
    so the sudoers recipe can name it exactly; the site lock keeps writers of one node apart."""
    directory, _, base = path.rpartition("/")
    return f"{directory}/.{base}.acr-edge.tmp"


def error_detail(exc: BaseException) -> str:
    """An exception's text for a dropped-connection message (no secrets: no payloads)."""
    return str(exc).strip() or type(exc).__name__


class RemoteFiles:
    """File reads and writes for a session that can run commands and open SFTP."""

    resource: str
    policy: RetryPolicy
    _sftp: paramiko.SFTPClient | None
    # The session's own command runner (SshSession.run; the CommandRunner seam's signature).
    run: Callable[..., CommandResult]

    @property
    def transport(self) -> paramiko.Transport:
        raise NotImplementedError

    def _alive(self) -> bool:
        raise NotImplementedError

    def dropped(self, doing: str, detail: object = "") -> TransientError:
        raise NotImplementedError

    def sftp(self) -> paramiko.SFTPClient:
        if self._sftp is not None and not self._alive():
            self._sftp = None  # it died with the connection it ran on
        if self._sftp is None:
            transport = self.transport  # reconnects after a drop
            try:
                self._sftp = paramiko.SFTPClient.from_transport(transport)
            except (EOFError, paramiko.SSHException, OSError) as exc:
                if not self._alive() or isinstance(exc, EOFError):
                    raise self.dropped("opening SFTP", error_detail(exc)) from None
                raise classify(exc, resource=self.resource) from None
            except Exception as exc:
                raise classify(exc, resource=self.resource) from None
            if self._sftp is None:  # pragma: no cover - paramiko returns None only on failure
                raise self.dropped("opening SFTP")
        return self._sftp

    def read_file(self, path: str, *, sudo: bool = False) -> bytes | None:
        """File content, or None when it does not exist. A read: retried after a drop."""
        return call_with_retry(
            lambda: self._read_once(path, sudo=sudo), what=self.resource, policy=self.policy
        )

    def _read_once(self, path: str, *, sudo: bool) -> bytes | None:
        if sudo:
            result = self.run(["cat", "--", path], sudo=True)
            if result.exit_status == 1 and _MISSING in result.stderr.lower():
                return None
            result.check(f"{self.resource}: read {path}", fix=_SUDO_FIX)
            return result.stdout.encode()
        buf = io.BytesIO()
        try:
            self.sftp().getfo(path, buf)
        except FileNotFoundError:
            return None
        except PermissionError:
            raise PermanentError(
                f"permission denied reading {path}",
                resource=self.resource,
                fix="set sudo: true on the site block or grant the SSH user read access",
            ) from None
        except (EOFError, paramiko.SSHException, OSError) as exc:
            if not self._alive() or isinstance(exc, EOFError):
                raise self.dropped(f"reading {path}", error_detail(exc)) from None
            raise classify(exc, resource=f"{self.resource}: {path}") from None
        return buf.getvalue()

    def write_file(
        self,
        path: str,
        data: bytes | SecretStr,
        *,
        mode: int = 0o600,
        sudo: bool = False,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Atomic replace: temp file beside the target, mode (and ``owner``: uid, gid) set
        before the content lands, rename. ``owner`` keeps an operator's file's owner."""
        payload = data.get_secret_value().encode() if isinstance(data, SecretStr) else data
        tmp = temp_path(path)
        if sudo:
            self._sudo_write(path, tmp, data, payload, mode=mode, owner=owner)
            return
        sftp = self.sftp()
        try:
            with sftp.open(tmp, "wb") as handle:
                handle.chmod(mode)  # before the content lands, so it is never world-readable
                if owner is not None:
                    handle.chown(*owner)
                handle.write(payload)
                handle.flush()
            sftp.posix_rename(tmp, path)  # plain rename() fails onto an existing file
        except FileNotFoundError:
            raise PermanentError(
                f"cannot write {path}: its directory does not exist",
                resource=self.resource,
                fix="check the path on the site block (distribution and *_path fields)",
            ) from None
        except PermissionError:
            self._discard(tmp)
            raise PermanentError(
                f"permission denied writing {path}",
                resource=self.resource,
                fix="set sudo: true on the site block or grant the SSH user write access",
            ) from None
        except (EOFError, paramiko.SSHException, OSError) as exc:
            if not self._alive() or isinstance(exc, EOFError):
                # Whether the rename landed is unknown: the step reads the file again.
                raise self.dropped(f"writing {path}", error_detail(exc)) from None
            self._discard(tmp)
            raise classify(exc, resource=f"{self.resource}: {path}") from None

    def _sudo_write(
        self,
        path: str,
        tmp: str,
        data: bytes | SecretStr,
        payload: bytes,
        *,
        mode: int,
        owner: tuple[int, int] | None,
    ) -> None:
        """Empty temp file root-only (install), content in (dd), mode and owner from the file
        it replaces (``--reference``) or acr-edge's mode for a new one, then rename."""
        what = f"{self.resource}: write {path}"
        stdin = SecretStr(payload.decode()) if isinstance(data, SecretStr) else payload
        steps: list[tuple[list[str], bytes | SecretStr | None]] = [
            (["install", "-m", "600", "--", "/dev/null", tmp], None),
            (["dd", f"of={tmp}", "status=none"], stdin),
        ]
        if owner is not None:  # replacing an operator's file: keep its mode, owner and group
            steps += [
                (["chmod", f"--reference={path}", "--", tmp], None),
                (["chown", f"--reference={path}", "--", tmp], None),
            ]
        elif mode != 0o600:
            steps.append((["chmod", f"{mode:o}", "--", tmp], None))
        steps.append((["mv", "-f", "--", tmp, path], None))
        for argv, given in steps:
            result = self.run(argv, stdin=given, sudo=True)
            if not result.ok:
                if argv[0] != "install":
                    self.run(["rm", "-f", "--", tmp], sudo=True)
                result.check(what, fix=_SUDO_FIX)

    def _discard(self, tmp: str) -> None:
        with contextlib.suppress(OSError):
            self.sftp().remove(tmp)
