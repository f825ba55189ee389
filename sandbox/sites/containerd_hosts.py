"""What containerd reads from ``certs.d`` at each pull: the hosts.toml FILE, not K3s's memory.

containerd's CRI plugin looks up ``<config_path>/<host>/`` then ``<config_path>/_default/`` for
every image pull, so a hosts.toml written by hand (or by acr-edge) takes effect at the next pull
without a restart. Routing as containerd's ``remotes/docker/config/hosts.go``: the
``[host."<url>"]`` entries in file order, then the root ``server`` last; a directory without a
hosts.toml uses the host namespace's default endpoint. A file that is not valid TOML, or whose
``host`` is not a table, fails the pull (containerd logs "failed to decode hosts.toml").

Each entry keeps its TLS settings: ``ca`` (a path or a list of paths; containerd accepts both)
and ``skip_verify``. The CA files are paths on the node; the pull reads them
(``containerd.Containerd``), not this parser.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sandbox.sites.k3s_hosts import is_localhost

PULL_CAPABILITIES = {"pull", "resolve"}


class HostsFileError(ValueError):
    """A hosts.toml containerd cannot decode."""


@dataclass(frozen=True)
class HostEntry:
    url: str  # base URL, ending in its API path
    ca: tuple[str, ...] = ()  # CA files trusted for this host (besides the system roots)
    skip_verify: bool = False


@dataclass(frozen=True)
class Routes:
    entries: tuple[HostEntry, ...]  # in the order tried
    source: str  # the hosts.toml read, "" when none

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(e.url for e in self.entries)


def default_server(host: str) -> str:
    if host == "docker.io":
        return "https://registry-1.docker.io/v2"
    scheme = "http" if is_localhost(host) else "https"
    return f"{scheme}://{host}/v2"


def _base_url(server: str, override_path: bool) -> str:
    if "://" not in server:
        server = "https://" + server
    parts = urlsplit(server)
    path = parts.path.rstrip("/")
    if not override_path and not path.endswith("/v2"):
        path += "/v2"
    return f"{parts.scheme}://{parts.netloc}{path}"


def _usable(entry: dict[str, Any]) -> bool:
    caps = entry.get("capabilities")
    if caps is None:
        return True  # containerd's default: pull, resolve and push
    return isinstance(caps, list) and set(caps) >= PULL_CAPABILITIES


def _ca(entry: dict[str, Any]) -> tuple[str, ...]:
    value = entry.get("ca")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise HostsFileError("failed to decode hosts.toml: invalid type for `ca`")


def _entry(server: str, entry: dict[str, Any]) -> HostEntry:
    skip = entry.get("skip_verify", False)
    if not isinstance(skip, bool):
        raise HostsFileError("failed to decode hosts.toml: invalid type for `skip_verify`")
    return HostEntry(_base_url(server, bool(entry.get("override_path"))), _ca(entry), skip)


def parse(text: str) -> list[str]:
    """The endpoints of one hosts.toml, in the order containerd tries them."""
    return [e.url for e in parse_entries(text)]


def parse_entries(text: str) -> list[HostEntry]:
    """The host entries of one hosts.toml, in the order containerd tries them."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HostsFileError(f"failed to decode hosts.toml: {exc}") from exc
    tree = doc.get("host", {})
    if not isinstance(tree, dict) or any(not isinstance(v, dict) for v in tree.values()):
        raise HostsFileError("failed to decode hosts.toml: invalid `host` tree")
    entries = [
        _entry(str(entry.get("server") or url), entry)
        for url, entry in tree.items()
        if _usable(entry)
    ]
    server = doc.get("server")
    if isinstance(server, str) and server and _usable(doc):
        entries.append(_entry(server, doc))
    return entries


def routes(hosts_dir: Path, image_host: str) -> Routes:
    """Read the node's certs.d now, as containerd does for this pull."""
    for name in (image_host, "_default"):
        directory = hosts_dir / name
        if not directory.is_dir():
            continue
        path = directory / "hosts.toml"
        try:
            text = path.read_text()
        except FileNotFoundError:
            return Routes((HostEntry(default_server(image_host)),), "")
        except (OSError, UnicodeDecodeError) as exc:
            raise HostsFileError(f"failed to read hosts.toml: {type(exc).__name__}") from exc
        return Routes(tuple(parse_entries(text)), str(path))
    return Routes((HostEntry(default_server(image_host)),), "")
