"""The site CA and the connected registry's server certificate: pure X.509 decisions, no I/O.

Each site gets its own small CA (EC P-256, ``path_length=0``: it can sign server certificates
only, never another CA), so a leaked site key vouches for that one site and nothing else. The
server certificate names the registry's service IP and DNS names; it is renewed at two thirds
of its lifetime (:data:`model.tls.RENEW_AT`), early enough that a failed renewal leaves weeks to
fix it. Key PEMs only ever live in SecretStr here; no error quotes certificate or key text
(a PEM the caller passed in could be anything, a key included).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import SecretStr

from model import patterns, tls
from model.errors import InputError, PermanentError
from model.plan import Change

STEP = "server-cert"
CA_STEP = "site-ca"
# Node clocks run a little behind the worker's: "valid from now" would be refused for a while.
BACKDATE = timedelta(minutes=5)
_CN_MAX = 64  # X.520 ub-common-name
_PEM_CERT = re.compile(
    r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----"
)


@dataclass(frozen=True)
class CaMaterial:
    """The site CA: certificate and key (the key only in a SecretStr, hidden in repr)."""

    cert_pem: str
    key_pem: SecretStr = field(repr=False)


@dataclass(frozen=True)
class ServerCert:
    """A server certificate and its own key (a new key with every issue)."""

    cert_pem: str
    key_pem: SecretStr = field(repr=False)


@dataclass(frozen=True)
class CertFact:
    """What a certificate says and whether it fits: no secret in it, safe to log and show."""

    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    issued_by_ca: bool
    key_matches: bool
    fingerprint: str  # sha256 of the DER, hex

    @property
    def renew_after(self) -> datetime:
        return self.not_before + (self.not_after - self.not_before) * tls.RENEW_AT


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise InputError("a certificate time must carry a time zone (UTC)", resource="site CA")
    return now.astimezone(UTC)


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> SecretStr:
    pem = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return SecretStr(key.private_bytes(*pem, serialization.NoEncryption()).decode())


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _load_key(key_pem: SecretStr) -> ec.EllipticCurvePrivateKey | None:
    try:
        key = serialization.load_pem_private_key(key_pem.get_secret_value().encode(), None)
    except (ValueError, TypeError, UnicodeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _load_cert(pem: str, what: str, resource: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except (ValueError, TypeError, UnicodeError):
        # Never the text itself: whatever was passed may hold a key.
        raise PermanentError(
            f"the {what} is not a PEM X.509 certificate",
            resource=resource,
            fix="delete that Secret (or file) and re-run: acr-edge writes a new one",
        ) from None


def normalize_san(value: str) -> str:
    """One SAN canonical: an IP as Python writes it, a DNS name lowercase without a final dot."""
    text = str(value).strip()
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.rstrip(".").lower()
    labels = name.split(".")
    if (
        not name
        or len(name) > 253
        or not all(patterns.DNS1123_LABEL.fullmatch(label) for label in labels)
    ):
        raise InputError(
            "a server certificate name must be an IP address or a DNS name "
            "(letters, digits, '-' and '.')",
            resource="server certificate",
        )
    return name


def _sans(values: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise InputError("the server certificate names must be a list", resource="server cert")
    out: list[str] = []
    for value in values:
        name = normalize_san(value)
        if name not in out:
            out.append(name)
    if not out:
        raise InputError("a server certificate needs at least one name", resource="server cert")
    return tuple(out)


def _general_name(san: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(san))
    except ValueError:
        return x509.DNSName(san)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    # A CA signs certificates and CRLs only; an ECDSA server key only signs the handshake.
    # Positional: digital_signature, content_commitment, key_encipherment, data_encipherment,
    # key_agreement, key_cert_sign, crl_sign, encipher_only, decipher_only.
    return x509.KeyUsage(not ca, False, False, False, False, ca, ca, False, False)


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    start: datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - BACKDATE)
        .not_valid_after(start + timedelta(days=days))
    )


def new_ca(cr_name: str, now: datetime, days: int = tls.CA_DAYS) -> CaMaterial:
    """A new site CA for connected registry ``cr_name``, valid ``days`` from ``now``."""
    if not cr_name or days < 1:
        raise InputError("a site CA needs a registry name and at least one day", resource="site CA")
    start = _utc(now)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acr-edge"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, cr_name[:_CN_MAX]),
            x509.NameAttribute(NameOID.COMMON_NAME, f"acr-edge site CA {cr_name}"[:_CN_MAX]),
        ]
    )
    cert = (
        _builder(name, name, key, start, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CaMaterial(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def issue_server_cert(
    ca: CaMaterial, sans: Sequence[str], now: datetime, days: int = tls.SERVER_CERT_DAYS
) -> ServerCert:
    """A server certificate for ``sans`` signed by the site CA, with a new key."""
    names = _sans(sans)
    if days < 1:
        raise InputError("a server certificate needs at least one day", resource="server cert")
    start = _utc(now)
    ca_cert = _load_cert(ca.cert_pem, "site CA certificate", "site CA")
    ca_key = _load_key(ca.key_pem)
    if ca_key is None or not _same_public_key(ca_cert, ca_key):
        raise PermanentError(
            "the site CA key is unreadable or does not match its certificate",
            resource="site CA",
            fix="delete the site CA Secret and re-run provision-site (a new CA is made)",
        )
    key = ec.generate_private_key(ec.SECP256R1())
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:_CN_MAX])])
    cert = (
        _builder(subject, ca_cert.subject, key, start, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return ServerCert(cert_pem=_cert_pem(cert), key_pem=_key_pem(key))


def _same_public_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt))


def _cert_sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    ips = [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]
    return (*ips, *(n.lower() for n in ext.get_values_for_type(x509.DNSName)))


def _issued_by(cert: x509.Certificate, ca: x509.Certificate | None) -> bool:
    if ca is None or cert.issuer != ca.subject:
        return False
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def cert_fact(
    cert_pem: str,
    ca_cert_pem: str | None,
    key_pem: SecretStr | None = None,
    *,
    resource: str,
) -> CertFact:
    """What ``cert_pem`` says, checked against the site CA (None: there is none, so it is not
    issued by it) and against ``key_pem`` (``key_matches`` is False without a key or with an
    unreadable one: re-issuing fixes either). An unreadable certificate is refused, unquoted."""
    cert = _load_cert(cert_pem, "certificate", resource)
    ca = _load_cert(ca_cert_pem, "site CA certificate", resource) if ca_cert_pem else None
    key = _load_key(key_pem) if key_pem is not None else None
    return CertFact(
        sans=_cert_sans(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        issued_by_ca=_issued_by(cert, ca),
        key_matches=key is not None and _same_public_key(cert, key),
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
    )


def is_ca_cert(cert_pem: str, *, resource: str) -> bool:
    cert = _load_cert(cert_pem, "site CA certificate", resource)
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def renewal_due(fact: CertFact, now: datetime) -> bool:
    """True from two thirds of the certificate's lifetime on (:data:`model.tls.RENEW_AT`)."""
    return _utc(now) >= fact.renew_after


def plan_server_cert(
    current: CertFact | None, wanted_sans: Sequence[str], now: datetime, *, resource: str
) -> Change:
    """Keep the server certificate, or issue a new one and say why."""
    wanted = _sans(wanted_sans)
    at = _utc(now)
    shown = {"sans": ", ".join(wanted)}

    def issue(reason: str) -> Change:
        return Change(STEP, resource, "issue", reason, payload=wanted, shown=shown)

    if current is None:
        return issue(f"no server certificate yet: issuing one for {', '.join(wanted)}")
    if not current.issued_by_ca:
        return issue("the server certificate is not issued by the site CA: issuing a new one")
    if not current.key_matches:
        return issue("the server certificate's key does not match it: issuing a new one")
    have = set(current.sans)  # as cert_fact reads them: the canonical forms
    added = [s for s in wanted if s not in have]
    removed = sorted(have - set(wanted))
    if added or removed:
        parts = [
            f"{verb} {', '.join(names)}"
            for verb, names in (("added", added), ("removed", removed))
            if names
        ]
        return issue(f"the server certificate's names changed ({'; '.join(parts)}): re-issuing")
    if at >= current.not_after:
        return issue(f"the server certificate expired on {_when(current.not_after)}: re-issuing")
    if renewal_due(current, at):
        return issue(
            f"renewal due: 2/3 of the server certificate's lifetime reached on "
            f"{_when(current.renew_after)} (valid until {_when(current.not_after)})"
        )
    return Change.none(
        STEP,
        resource,
        f"valid until {_when(current.not_after)}, renewal after {_when(current.renew_after)}, "
        f"covers {', '.join(wanted)}",
        **shown,
        not_after=_when(current.not_after),
        fingerprint=current.fingerprint,
    )


def plan_ca(
    current: CertFact | None,
    now: datetime,
    *,
    resource: str,
    secret: str,
    ca_days: int = tls.CA_DAYS,
    server_days: int = tls.SERVER_CERT_DAYS,
) -> Change:
    """Create the site CA when there is none, keep a valid one; refuse one that expires
    within a server certificate's lifetime (CA rotation is not built: replacing the CA
    breaks every node's trust until its CA file is rewritten)."""
    at = _utc(now)
    if current is None:
        reason = f"no site CA yet: creating one (EC P-256, valid {ca_days} days)"
        return Change(CA_STEP, resource, "create", reason)
    if not current.issued_by_ca or not current.key_matches:
        raise PermanentError(
            "the site CA is not self-signed or its key does not match its certificate",
            resource=resource,
            fix=f"delete Secret {secret} and re-run provision-site: a new CA is made and the "
            "server certificate and every node's CA file follow it",
        )
    if current.not_after - at <= timedelta(days=server_days):
        raise PermanentError(
            f"the site CA expires on {_when(current.not_after)}, within the {server_days}-day "
            "server certificate lifetime, and CA rotation is not built yet",
            resource=resource,
            fix=f"delete Secret {secret} and re-run provision-site: a new CA is made, the server "
            "certificate is re-issued and every node's CA file rewritten (pulls over HTTPS fail "
            "on a node until its CA file is rewritten)",
        )
    until = _when(current.not_after)
    return Change.none(
        CA_STEP,
        resource,
        f"site CA valid until {until}",
        not_after=until,
        fingerprint=current.fingerprint,
    )


def ca_file_text(ca_cert_pem: str, cr_name: str) -> str:
    """The node's CA file: the ownership header line, then the PEM (Go skips the header)."""
    pem = ca_cert_pem if ca_cert_pem.endswith("\n") else ca_cert_pem + "\n"
    return f"{tls.ca_file_header(cr_name)}\n{pem}"


def is_our_ca_file(text: str, cr_name: str) -> bool:
    """Whether a node file is the CA file acr-edge wrote for ``cr_name`` (its header line)."""
    first = text.split("\n", 1)[0].rstrip("\r")
    mark = f"{tls.CA_HEADER_PREFIX}{cr_name}"
    return first == mark or first.startswith(mark + " ")


def ca_of_file(text: str) -> str | None:
    """The first certificate PEM in a node CA file (normalized to ``\\n`` line ends), or None."""
    found = _PEM_CERT.search(text)
    return found.group(0).replace("\r\n", "\n") + "\n" if found else None
