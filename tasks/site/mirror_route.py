"""Pure: the mirror route containerd needs, from what the release serves and what the site wants.

The name pods use (``<ip>:<pull port>``) never changes: an http site migrated to https keeps
``<ip>:80`` as its image host and pull-secret key, and only its endpoint moves. While the
release still serves one transport and the site wants the other, the route *bridges*: both
endpoints, the wanted one first. containerd tries them in order and falls through on a
failure, so pulls work before, during and after the Helm upgrade that switches the transport.
"""

from __future__ import annotations

from model import tls
from model.site import MirrorRoute


def route_for(
    host: str,
    *,
    serving: str,
    wanted: str,
    ca_file: str | None = None,
    ca_text: str | None = None,
) -> MirrorRoute:
    """The route for ``host`` (``"<ip>:<pull port>"``) when the release serves ``serving`` and
    the site wants ``wanted`` (``"https"``/``"http"``); over https ``ca_file`` is the node path
    of the site CA and ``ca_text`` its content."""
    ip = host.rsplit(":", 1)[0]
    https = f"https://{ip}:{tls.HTTPS_PORT}"
    http = f"http://{ip}:{tls.HTTP_PORT}"
    if serving == wanted == "http":
        return MirrorRoute(host, (http,))
    if ca_file is None:
        raise ValueError("an https route needs the node's CA file path")
    ca_host = f"{ip}:{tls.HTTPS_PORT}"
    if serving == wanted == "https":
        endpoints: tuple[str, ...] = (https,)
    elif wanted == "https":
        endpoints = (https, http)
    else:  # back to http: https stays second until the release has switched
        endpoints = (http, https)
    return MirrorRoute(host, endpoints, ca_host=ca_host, ca_file=ca_file, ca_text=ca_text)


def server_sans(ip: str, namespace: str, release: str, login_host: str | None) -> list[str]:
    """What the server certificate must name: the service's cluster IP (the name containerd
    dials), its in-cluster DNS names, and the connected registry's login server once ARM
    reports one."""
    sans = [ip, f"{release}.{namespace}.svc", f"{release}.{namespace}.svc.cluster.local"]
    if login_host and login_host not in sans:
        sans.append(login_host)
    return sans
