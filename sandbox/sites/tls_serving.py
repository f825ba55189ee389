"""The connected registry's HTTPS listener: what certificate it serves, and how a Go client
(containerd) judges it.

The runtime loads a ``kubernetes.io/tls`` Secret when its pod starts (``load_secret``) and keeps
that chain until the pod is recreated. ``verify`` checks a served chain the way Go's
``crypto/tls`` + ``x509.Certificate.Verify`` do, in Go's order (validity period of the leaf,
then the name, then the chain to the roots) and in Go's words; the chain itself is checked for
real by ``cryptography``'s X.509 verifier against exactly the roots the node's hosts.toml lists.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import ipaddress
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from sandbox.sites.kube_objects import Obj

TLS_SECRET_TYPE = "kubernetes.io/tls"
# Go does not require an authority key identifier on the leaf; the Web PKI profile does.
_GO_EE = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None
)
GO_TLS_PREFIX = "tls: failed to verify certificate: "


class SecretNotFound(Exception):
    """The Secret a pod mounts does not exist (the kubelet retries the mount)."""


class BadTlsSecret(Exception):
    """The Secret exists but the registry cannot serve it (its container exits)."""


@dataclass(frozen=True)
class ServedChain:
    """What the listener presents in its handshake: the leaf first."""

    certificates: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.certificates[0]


def _field(secret: Obj, key: str) -> bytes:
    data = secret.get("data") or {}
    if key in data:
        try:
            return base64.b64decode(str(data[key]), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BadTlsSecret(f"{key} is not valid base64") from exc
    string_data = secret.get("stringData") or {}
    if key in string_data:
        return str(string_data[key]).encode()
    return b""


def load_secret(secret: Obj | None, name: str) -> ServedChain:
    """The chain a pod mounting Secret ``name`` serves; raises SecretNotFound / BadTlsSecret."""
    if secret is None:
        raise SecretNotFound(
            f'MountVolume.SetUp failed for volume "tls" : secret "{name}" not found'
        )
    if secret.get("type") != TLS_SECRET_TYPE:
        raise BadTlsSecret(
            f'secret "{name}" is of type {secret.get("type") or "Opaque"!r}, not {TLS_SECRET_TYPE}'
        )
    crt, key = _field(secret, "tls.crt"), _field(secret, "tls.key")
    return load_pair(crt, key, f'secret "{name}"')


def load_pair(crt: bytes, key: bytes, where: str) -> ServedChain:
    """A certificate chain and its private key, as the server's tls.LoadX509KeyPair sees them."""
    if not crt:
        raise BadTlsSecret(f"{where}: tls.crt is empty")
    if not key:
        raise BadTlsSecret(f"{where}: tls.key is empty")
    try:
        chain = tuple(x509.load_pem_x509_certificates(crt))
    except ValueError as exc:
        raise BadTlsSecret(
            f"{where}: tls: failed to find any PEM data in certificate input"
        ) from exc
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise BadTlsSecret(f"{where}: tls: failed to find any PEM data in key input") from exc
    public = (
        chain[0]
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    mine = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != mine:
        raise BadTlsSecret(f"{where}: tls: private key does not match public key")
    return ServedChain(chain)


def load_ca_file(data: bytes) -> list[x509.Certificate]:
    """Go's AppendCertsFromPEM: text around the PEM blocks is skipped; none at all is an error."""
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def _go_time(when: datetime.datetime) -> str:
    return when.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _name_error(leaf: x509.Certificate, host: str) -> str | None:
    """x509.HostnameError's text when ``leaf`` does not name ``host`` (Go's VerifyHostname)."""
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        ips = sans.get_values_for_type(x509.IPAddress)
        if ip in ips:
            return None
        if not ips:
            return (
                f"x509: cannot validate certificate for {host} because it doesn't contain any "
                "IP SANs"
            )
        return f"x509: certificate is valid for {', '.join(map(str, ips))}, not {host}"
    names = sans.get_values_for_type(x509.DNSName)
    if any(_dns_match(n, host) for n in names):
        return None
    if not names:
        return f"x509: certificate is not valid for any names, but wanted to match {host}"
    return f"x509: certificate is valid for {', '.join(names)}, not {host}"


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.partition(".")[2] == pattern[2:] and "." in host
    return pattern == host


def verify(
    chain: ServedChain,
    roots: list[x509.Certificate],
    host: str,
    *,
    now: datetime.datetime | None = None,
) -> str | None:
    """None when a Go client trusting ``roots`` accepts ``chain`` for ``host``, else Go's error."""
    when = now or datetime.datetime.now(datetime.UTC)
    leaf = chain.leaf
    if when < leaf.not_valid_before_utc:
        return (
            f"{GO_TLS_PREFIX}x509: certificate has expired or is not yet valid: current time "
            f"{_go_time(when)} is before {_go_time(leaf.not_valid_before_utc)}"
        )
    if when > leaf.not_valid_after_utc:
        return (
            f"{GO_TLS_PREFIX}x509: certificate has expired or is not yet valid: current time "
            f"{_go_time(when)} is after {_go_time(leaf.not_valid_after_utc)}"
        )
    problem = _name_error(leaf, host)
    if problem is not None:
        return GO_TLS_PREFIX + problem
    if not roots:
        return f"{GO_TLS_PREFIX}x509: certificate signed by unknown authority"
    try:
        subject: x509.DNSName | x509.IPAddress = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        subject = x509.DNSName(host)
    verifier = (
        PolicyBuilder()
        .store(Store(roots))
        .time(when)
        .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_GO_EE)
        .build_server_verifier(subject)
    )
    try:
        verifier.verify(leaf, list(chain.certificates[1:]))
    except VerificationError as exc:
        # Go names every chain-building failure so; the verifier's reason helps whoever reads
        # the pod's event (the sandbox's CA policy is stricter than Go's, see design.md).
        return (
            f"{GO_TLS_PREFIX}x509: certificate signed by unknown authority "
            f"(sandbox verifier: {str(exc).split(' (encountered')[0]})"
        )
    return None


@cache
def _stranger_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "some other CA (sandbox)")])
    start = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def stranger_copy(chain: ServedChain) -> ServedChain:
    """The same names and validity as ``chain``'s leaf, issued by a CA nobody trusts: what a
    site serves when some other certificate ended up mounted (the tls_serve_wrong_cert knob)."""
    ca_key, ca = _stranger_ca()
    leaf = chain.leaf
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(leaf.not_valid_before_utc)
        .not_valid_after(leaf.not_valid_after_utc)
    )
    for ext in leaf.extensions:
        if isinstance(ext.value, x509.SubjectAlternativeName | x509.ExtendedKeyUsage):
            builder = builder.add_extension(ext.value, ext.critical)
    return ServedChain((builder.sign(ca_key, hashes.SHA256()), ca))
