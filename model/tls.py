"""Names and paths of the site's TLS material: one place, so provision, rotation, status and
teardown agree on what acr-edge owns.

Per site, acr-edge keeps a small CA whose key stays in a Kubernetes Secret of the release's
namespace (never in Prefect): a site's CA can only vouch for that site, so a lost node or a
leaked key never lets anyone impersonate another site's registry. The server certificate
lives in one of two kubernetes.io/tls Secrets (slots ``a``/``b``) referenced by the chart's
``tls.secret``: renewal writes the idle slot, upgrades the release to it, proves a pull, and
only then deletes the old one. Every node gets the CA certificate as a file beside
registries.yaml (outside certs.d, which K3s regenerates) with an ownership header line; Go's
PEM reader skips text before ``-----BEGIN``.
"""

from __future__ import annotations

import posixpath
from typing import Literal

Transport = Literal["https", "http"]
TRANSPORTS: tuple[str, ...] = ("https", "http")

HTTPS_PORT = 443
HTTP_PORT = 80
SERVER_SLOTS: tuple[str, str] = ("a", "b")
CA_HEADER_PREFIX = "# acr-edge: CA of connected registry "
MANAGED_BY = {"app.kubernetes.io/managed-by": "acr-edge"}
# Days, as the defaults of the block fields; renewal is due at two thirds of the lifetime.
CA_DAYS = 3650
SERVER_CERT_DAYS = 90
RENEW_AT = 2 / 3


def service_port(transport: str) -> int:
    return HTTP_PORT if transport == "http" else HTTPS_PORT


def ca_secret_name(release: str) -> str:
    """Opaque Secret holding the site CA (``ca.crt``, ``ca.key``)."""
    return f"{release}-acr-edge-ca"


def server_secret_name(release: str, slot: str) -> str:
    """kubernetes.io/tls Secret (``tls.crt``, ``tls.key``, ``ca.crt``) of server slot ``slot``."""
    if slot not in SERVER_SLOTS:
        raise ValueError(f"server certificate slot {slot!r} is not one of {SERVER_SLOTS}")
    return f"{release}-acr-edge-tls-{slot}"


def node_ca_path(registries_path: str, release: str) -> str:
    """Where every node keeps the site CA: ``<dir of registries.yaml>/acr-edge/<release>-ca.pem``
    (a relative registries_path gives a relative path, as the sandbox's multi-node sites use)."""
    return posixpath.join(posixpath.dirname(registries_path), "acr-edge", f"{release}-ca.pem")


def ca_file_header(cr_name: str) -> str:
    return f"{CA_HEADER_PREFIX}{cr_name} (written by acr-edge; removed by teardown-site)"
