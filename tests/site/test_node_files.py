"""An operator's file over a real OpenSSH sshd: links and directories refused without being
followed, size and encoding refused cleanly, mode/owner kept, backup restored byte for byte."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from model.errors import PermanentError
from tasks.site import node_files
from tasks.site.ssh import SshSession

R = "node n1"


@pytest.fixture
def session(sshd) -> Iterator[SshSession]:  # type: ignore[no-untyped-def]
    with SshSession.connect(
        host="127.0.0.1",
        port=sshd.port,
        user="root",
        private_key=SecretStr(sshd.private_key),
        known_hosts=[sshd.known_hosts_line],
        connect_timeout=5,
    ) as s:
        yield s


@pytest.mark.parametrize("sudo", [False, True])
def test_replace_keeps_mode_owner_and_the_backup_restores_every_byte(
    session: SshSession, tmp_path: Path, sudo: bool
) -> None:
    path = tmp_path / "registries.yaml"
    original = b"# operator's comment\nmirrors: {}\n"
    path.write_bytes(original)
    path.chmod(0o644)
    os.chown(path, os.getuid(), os.getgid())
    before = node_files.read_node_file(session, str(path), sudo=sudo, resource=R)
    assert before.text is not None and before.stat is not None
    assert before.stat.mode == 0o644 and before.stat.regular
    backup = node_files.back_up(session, str(path), sudo=sudo, resource=R)
    node_files.replace(
        session, str(path), SecretStr("mirrors: {a: b}\n"), like=before.stat, sudo=sudo
    )
    assert path.read_text() == "mirrors: {a: b}\n"
    assert path.stat().st_mode & 0o777 == 0o644  # not the 0600 a new file gets
    assert (path.stat().st_uid, path.stat().st_gid) == (os.getuid(), os.getgid())
    said = node_files.restore(session, str(path), backup, sudo=sudo, resource=R)
    assert path.read_bytes() == original and backup in said


def test_a_new_file_is_0600_and_restore_without_backup_removes_it(
    session: SshSession, tmp_path: Path
) -> None:
    path = tmp_path / "new.yaml"
    assert node_files.read_node_file(session, str(path), sudo=False, resource=R).text is None
    node_files.replace(session, str(path), SecretStr("mirrors: {}\n"), like=None, sudo=False)
    assert path.stat().st_mode & 0o777 == 0o600
    node_files.restore(session, str(path), None, sudo=False, resource=R)
    assert not path.exists()


def test_a_symlink_is_refused_without_being_followed(session: SshSession, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.yaml"
    target.write_text("password: from-another-file\n")
    link = tmp_path / "registries.yaml"
    link.symlink_to(target)
    with pytest.raises(PermanentError, match="symbolic link") as err:
        node_files.read_node_file(session, str(link), sudo=False, resource=R)
    assert "from-another-file" not in str(err.value)


def test_a_directory_is_refused(session: SshSession, tmp_path: Path) -> None:
    (tmp_path / "registries.yaml").mkdir()
    with pytest.raises(PermanentError, match="directory"):
        node_files.read_node_file(
            session, str(tmp_path / "registries.yaml"), sudo=False, resource=R
        )


def test_an_oversized_file_is_refused_before_it_is_read(
    session: SshSession, tmp_path: Path
) -> None:
    path = tmp_path / "registries.yaml"
    path.write_bytes(b"#" * (node_files.MAX_BYTES + 1))
    with pytest.raises(PermanentError, match="over the"):
        node_files.read_node_file(session, str(path), sudo=False, resource=R)


def test_undecodable_bytes_are_a_clean_refusal_naming_the_line(
    session: SshSession, tmp_path: Path
) -> None:
    path = tmp_path / "registries.yaml"
    path.write_bytes(b"mirrors:\n  pass: secret\xff\xfe\n")
    with pytest.raises(PermanentError, match=r"not UTF-8 text .*line 2") as err:
        node_files.read_node_file(session, str(path), sudo=False, resource=R)
    assert "secret" not in str(err.value)
