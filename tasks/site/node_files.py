"""An operator's file on a node, read as a fact and replaced without losing what they own.

registries.yaml is the operator's file: acr-edge reads it only when it is a regular file
(checked with ``stat`` without following links, so a symlink to another file is refused, not
followed), within the size limit; it replaces it keeping its mode, owner and group, and backs
it up beside itself first, so a node that fails its proof gets exactly the old bytes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

from model.errors import PermanentError, TransientError
from model.retry import call_with_retry
from tasks.site.commands import CommandRunner

# A registries.yaml is a few hundred bytes; anything near this is not one (and parsing a huge
# file costs the run its memory). The decoder refuses the same size from text.
MAX_BYTES = 64 * 1024
_FIX_KIND = "replace it with a regular file (acr-edge never follows links on the node)"


@dataclass(frozen=True)
class FileStat:
    """What ``stat`` (no link following) says of a path."""

    kind: str  # "regular file", "regular empty file", "symbolic link", "directory", ...
    mode: int
    uid: int
    gid: int
    size: int

    @property
    def regular(self) -> bool:
        return self.kind in ("regular file", "regular empty file")


@dataclass(frozen=True)
class NodeFile:
    """A node file as read: ``text`` None when it does not exist (then ``stat`` is None too).
    ``text`` is a SecretStr: registries.yaml may hold passwords."""

    path: str
    text: SecretStr | None
    stat: FileStat | None

    @property
    def exists(self) -> bool:
        return self.stat is not None


def stat_file(ssh: CommandRunner, path: str, *, sudo: bool, resource: str) -> FileStat | None:
    """lstat through the node's own ``stat``; None when the path does not exist."""

    def once() -> FileStat | None:
        result = ssh.run(["stat", "-c", "%F|%a|%u|%g|%s", "--", path], sudo=sudo, idempotent=True)
        if result.exit_status != 0:
            if "no such file" in result.stderr.lower():
                return None
            raise TransientError(f"{resource}: cannot stat {path}: {result.error_text()}")
        try:
            kind, mode, uid, gid, size = result.stdout.strip().rsplit("|", 4)
            return FileStat(kind, int(mode, 8), int(uid), int(gid), int(size))
        except ValueError:
            raise PermanentError(
                f"unexpected `stat` output for {path}",
                resource=resource,
                fix="the node needs GNU coreutils stat",
            ) from None

    return call_with_retry(once, what=f"{resource}: {path}", attempts=3)


def read_node_file(ssh: CommandRunner, path: str, *, sudo: bool, resource: str) -> NodeFile:
    """The file's text and stat; refuses a non-regular file or one over the size limit
    before reading a byte of it, and undecodable bytes without quoting them."""
    where = f"{resource}: {path}"
    stat = stat_file(ssh, path, sudo=sudo, resource=resource)
    if stat is None:
        return NodeFile(path, None, None)
    if not stat.regular:
        raise PermanentError(
            f"{path} is a {stat.kind}, not a regular file", resource=where, fix=_FIX_KIND
        )
    if stat.size > MAX_BYTES:
        raise PermanentError(
            f"{path} is {stat.size} bytes, over the {MAX_BYTES}-byte limit for a registries file",
            resource=where,
            fix="check the file on the node: a registries.yaml is a few hundred bytes",
        )
    raw = ssh.read_file(path, sudo=sudo)
    if raw is None:  # removed between the stat and the read
        return NodeFile(path, None, None)
    if len(raw) > MAX_BYTES:
        raise PermanentError(f"{path} grew past {MAX_BYTES} bytes while read", resource=where)
    try:
        text = SecretStr(raw.decode("utf-8", errors="strict"))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PermanentError(
            f"{path} is not UTF-8 text (undecodable byte on line {line}); K3s would refuse it",
            resource=where,
            fix="save the file as UTF-8 on the node",
        ) from None
    finally:
        del raw
    return NodeFile(path, text, stat)


def backup_path(path: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{path}.bak-{stamp}"


def back_up(ssh: CommandRunner, path: str, *, sudo: bool, resource: str) -> str:
    """Copy the file beside itself (mode, owner and times kept); the copy's path."""
    target = backup_path(path)
    ssh.run(["cp", "-p", "--", path, target], sudo=sudo).check(
        f"{resource}: backup of {path}", fix="check free space and permissions on the node"
    )
    return target


def replace(
    ssh: CommandRunner,
    path: str,
    content: SecretStr | bytes,
    *,
    like: FileStat | None,
    sudo: bool,
    new_mode: int = 0o600,
) -> None:
    """Atomically replace ``path``; an existing file keeps its mode, owner and group."""
    if like is None:
        ssh.write_file(path, content, mode=new_mode, sudo=sudo)
        return
    ssh.write_file(path, content, mode=like.mode, sudo=sudo, owner=(like.uid, like.gid))


def restore(ssh: CommandRunner, path: str, backup: str | None, *, sudo: bool, resource: str) -> str:
    """Put the backup back (``None``: the file did not exist, so remove it); what was done."""
    if backup is None:
        ssh.run(["rm", "-f", "--", path], sudo=sudo).check(f"{resource}: remove {path}")
        return f"removed {path} (it did not exist before)"
    ssh.run(["cp", "-p", "--", backup, path], sudo=sudo).check(
        f"{resource}: restore {path} from {backup}"
    )
    return f"restored {path} from {backup}"
