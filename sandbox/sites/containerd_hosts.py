"""What containerd reads from ``certs.d`` at each pull: the hosts.toml FILE, not K3s's memory.

containerd's CRI plugin looks up ``<config_path>/<host>/`` then ``<config_path>/_default/`` for
every image pull, so a hosts.toml written by hand (or by acr-edge) takes effect at the next pull
without a restart. Routing as containerd's ``remotes/docker/config/hosts.go``: the
``[host."<url>"]`` entries in file order, then the root ``server`` last; a directory without a
hosts.toml uses the host namespace's default endpoint. A file that is not valid TOML, or whose
``host`` is not a table, fails the pull (containerd logs "failed to decode hosts.toml").
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
class Routes:
    endpoints: tuple[str, ...]  # base URLs (ending in their API path) in the order tried
    source: str  # the hosts.toml read, "" when none


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


def parse(text: str) -> list[str]:
    """The endpoints of one hosts.toml, in the order containerd tries them."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HostsFileError(f"failed to decode hosts.toml: {exc}") from exc
    tree = doc.get("host", {})
    if not isinstance(tree, dict) or any(not isinstance(v, dict) for v in tree.values()):
        raise HostsFileError("failed to decode hosts.toml: invalid `host` tree")
    endpoints = [
        _base_url(str(entry.get("server") or url), bool(entry.get("override_path")))
        for url, entry in tree.items()
        if _usable(entry)
    ]
    server = doc.get("server")
    if isinstance(server, str) and server and _usable(doc):
        endpoints.append(_base_url(server, bool(doc.get("override_path"))))
    return endpoints


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
            return Routes((default_server(image_host),), "")
        except (OSError, UnicodeDecodeError) as exc:
            raise HostsFileError(f"failed to read hosts.toml: {type(exc).__name__}") from exc
        endpoints = parse(text)
        return Routes(tuple(endpoints), str(path))
    return Routes((default_server(image_host),), "")
