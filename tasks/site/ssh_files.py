"""Node files over SSH: read (None when absent), atomic replace with the mode set first.

A mixin of :class:`tasks.site.ssh.SshSession`: SFTP for the SSH user's own files, a `sudo`
shell one-liner otherwise. Reads retry after a dropped connection; a write whose connection
dropped is not repeated (whether its rename landed is unknown: the step reads the file again).
"""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Callable

import paramiko
from pydantic import SecretStr

from model.errors import PermanentError, TransientError, classify
from model.retry import RetryPolicy, call_with_retry
from tasks.site.commands import SUDO_FIX as _SUDO_FIX
from tasks.site.commands import CommandResult

_MISSING_EXIT = 44  # our "file does not exist" signal from the sudo read helper


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
            script = f'if [ -e "$1" ]; then exec cat -- "$1"; else exit {_MISSING_EXIT}; fi'
            result = self.run(["sh", "-c", script, "sh", path], sudo=True)
            if result.exit_status == _MISSING_EXIT:
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
        directory, _, base = path.rpartition("/")
        tmp = f"{directory}/.{base}.acr-edge-{uuid.uuid4().hex[:8]}.tmp"
        if sudo:
            chown = 'chown "$4" "$1" && ' if owner is not None else ""
            script = (
                f'umask 077; : > "$1" && chmod "$3" "$1" && {chown}cat > "$1" && '
                'mv -f -- "$1" "$2" || { rc=$?; rm -f -- "$1"; exit $rc; }'
            )
            who = f"{owner[0]}:{owner[1]}" if owner is not None else ""
            result = self.run(
                ["sh", "-c", script, "sh", tmp, path, f"{mode:o}", who],
                stdin=SecretStr(payload.decode()) if isinstance(data, SecretStr) else payload,
                sudo=True,
            )
            result.check(f"{self.resource}: write {path}", fix=_SUDO_FIX)
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

    def _discard(self, tmp: str) -> None:
        with contextlib.suppress(OSError):
            self.sftp().remove(tmp)
