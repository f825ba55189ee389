"""The site CA and server certificate decisions (pure): what is issued, when it is renewed,
why, and that unreadable input is refused without being echoed."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from pydantic import SecretStr

from model import tls
from model.errors import InputError, PermanentError
from tasks.site import site_ca

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IP = "10.43.0.10"
SANS = [IP, "connected-registry.connected-registry.svc"]
RES = "site01: secret connected-registry/connected-registry-acr-edge-tls-a"


@pytest.fixture(scope="module")
def ca() -> site_ca.CaMaterial:
    return site_ca.new_ca("site01edge", NOW)


@pytest.fixture(scope="module")
def server(ca: site_ca.CaMaterial) -> site_ca.ServerCert:
    return site_ca.issue_server_cert(ca, SANS, NOW)


def _x509(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def _fact(server: site_ca.ServerCert, ca: site_ca.CaMaterial) -> site_ca.CertFact:
    return site_ca.cert_fact(server.cert_pem, ca.cert_pem, server.key_pem, resource=RES)


def test_the_ca_can_sign_server_certificates_only(ca: site_ca.CaMaterial) -> None:
    cert = _x509(ca.cert_pem)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "acr-edge site CA site01edge"
    assert cert.subject == cert.issuer
    assert cert.not_valid_after_utc == NOW + timedelta(days=tls.CA_DAYS)
    assert cert.not_valid_before_utc == NOW - site_ca.BACKDATE
    assert "PRIVATE KEY" in ca.key_pem.get_secret_value()
    assert "PRIVATE KEY" not in repr(ca) and ca.key_pem.get_secret_value() not in repr(ca)


def test_a_long_registry_name_still_fits_the_common_name() -> None:
    long = site_ca.new_ca("a" * 50, NOW, days=30)
    cn = _x509(long.cert_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert len(str(cn)) == 64 and str(cn).startswith("acr-edge site CA aaa")


def test_server_certificate_names_validity_and_usage(
    ca: site_ca.CaMaterial, server: site_ca.ServerCert
) -> None:
    cert = _x509(server.cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(IP)]
    assert san.get_values_for_type(x509.DNSName) == [SANS[1]]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = _x509(ca.cert_pem).extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.value.digest
    assert cert.not_valid_before_utc == NOW - timedelta(minutes=5)
    assert cert.not_valid_after_utc == NOW + timedelta(days=tls.SERVER_CERT_DAYS)
    assert "PRIVATE KEY" not in repr(server)


def test_the_server_certificate_chains_to_the_site_ca_for_its_ip(
    ca: site_ca.CaMaterial, server: site_ca.ServerCert
) -> None:
    store = Store([_x509(ca.cert_pem)])
    at = NOW + timedelta(days=1)
    builder = PolicyBuilder().store(store).time(at)
    leaf = _x509(server.cert_pem)
    chain = builder.build_server_verifier(x509.IPAddress(ipaddress.ip_address(IP))).verify(leaf, [])
    assert chain[-1] == _x509(ca.cert_pem)
    by_name = builder.build_server_verifier(x509.DNSName(SANS[1])).verify(leaf, [])
    assert by_name[0] == leaf
    with pytest.raises(VerificationError):  # a name it does not carry
        builder.build_server_verifier(x509.IPAddress(ipaddress.ip_address("10.43.0.11"))).verify(
            leaf, []
        )
    other = site_ca.new_ca("otheredge", NOW)
    with pytest.raises(VerificationError):  # another site's CA does not vouch for it
        PolicyBuilder().store(Store([_x509(other.cert_pem)])).time(at).build_server_verifier(
            x509.IPAddress(ipaddress.ip_address(IP))
        ).verify(leaf, [])


def test_every_issue_has_a_new_key(ca: site_ca.CaMaterial, server: site_ca.ServerCert) -> None:
    again = site_ca.issue_server_cert(ca, SANS, NOW)
    assert again.key_pem.get_secret_value() != server.key_pem.get_secret_value()
    assert _fact(again, ca).fingerprint != _fact(server, ca).fingerprint


def test_cert_fact(ca: site_ca.CaMaterial, server: site_ca.ServerCert) -> None:
    fact = _fact(server, ca)
    assert fact.sans == tuple(SANS)
    assert fact.not_after == NOW + timedelta(days=tls.SERVER_CERT_DAYS)
    assert fact.issued_by_ca and fact.key_matches
    assert len(fact.fingerprint) == 64 and int(fact.fingerprint, 16) >= 0
    other = site_ca.new_ca("otheredge", NOW)
    assert not site_ca.cert_fact(server.cert_pem, other.cert_pem, resource=RES).issued_by_ca
    assert not site_ca.cert_fact(server.cert_pem, None, resource=RES).issued_by_ca
    assert not site_ca.cert_fact(server.cert_pem, ca.cert_pem, resource=RES).key_matches
    wrong_key = site_ca.issue_server_cert(ca, SANS, NOW).key_pem
    assert not site_ca.cert_fact(server.cert_pem, ca.cert_pem, wrong_key, resource=RES).key_matches
    junk_key = SecretStr("not a key")
    assert not site_ca.cert_fact(server.cert_pem, ca.cert_pem, junk_key, resource=RES).key_matches


@pytest.mark.parametrize(
    "text",
    [
        "garbage-that-must-not-be-echoed",
        "-----BEGIN CERTIFICATE-----\nc2VjcmV0LW11c3Qtbm90LWJlLWVjaG9lZA==\n"
        "-----END CERTIFICATE-----\n",
        "",
    ],
)
def test_garbage_is_refused_without_echo(ca: site_ca.CaMaterial, text: str) -> None:
    with pytest.raises(PermanentError) as err:
        site_ca.cert_fact(text, ca.cert_pem, resource=RES)
    assert RES in str(err.value) and "not a PEM X.509 certificate" in str(err.value)
    assert "echo" not in str(err.value) and "c2Vjc" not in str(err.value)
    assert err.value.__cause__ is None and err.value.__suppress_context__
    with pytest.raises(PermanentError) as err:  # a bad CA too
        site_ca.cert_fact(ca.cert_pem, text or "x", resource=RES)
    assert "site CA certificate" in str(err.value) and "echo" not in str(err.value)


def test_a_key_passed_as_a_certificate_is_not_quoted(ca: site_ca.CaMaterial) -> None:
    key = ca.key_pem.get_secret_value()
    with pytest.raises(PermanentError) as err:
        site_ca.cert_fact(key, ca.cert_pem, resource=RES)
    body = "".join(key.splitlines()[1:-1])
    assert body[:20] not in str(err.value) and "PRIVATE" not in str(err.value)


@pytest.mark.parametrize(
    "bad",
    [[], ["exa mple"], ["-bad.example"], ["a_b.example"], "10.0.0.1", ["a\nb.example"], ["ü.de"]],
)
def test_bad_names_are_refused_before_anything_is_made(ca: site_ca.CaMaterial, bad: object) -> None:
    with pytest.raises(InputError):
        site_ca.issue_server_cert(ca, bad, NOW)  # type: ignore[arg-type]


def test_names_are_normalized_and_deduplicated(ca: site_ca.CaMaterial) -> None:
    cert = site_ca.issue_server_cert(ca, ["Reg.Example.", "reg.example", "::1", IP], NOW)
    assert site_ca.cert_fact(cert.cert_pem, ca.cert_pem, resource=RES).sans == (
        "::1",
        IP,
        "reg.example",
    )


def test_a_naive_time_is_refused(ca: site_ca.CaMaterial) -> None:
    with pytest.raises(InputError):
        site_ca.new_ca("site01edge", datetime(2026, 1, 1))


def _fact_of(
    *,
    sans: tuple[str, ...] = tuple(SANS),
    start: datetime = NOW,
    days: int = 90,
    issued: bool = True,
    key: bool = True,
) -> site_ca.CertFact:
    return site_ca.CertFact(sans, start, start + timedelta(days=days), issued, key, "ab" * 32)


def test_renewal_boundary_is_two_thirds_of_the_lifetime() -> None:
    fact = _fact_of(days=90)
    boundary = NOW + timedelta(days=60)
    assert not site_ca.renewal_due(fact, boundary - timedelta(microseconds=1))
    assert site_ca.renewal_due(fact, boundary)
    # The same boundary for a certificate issued by new_ca (backdated by five minutes).
    assert fact.renew_after == boundary


def test_plan_keeps_a_valid_certificate_and_says_why() -> None:
    change = site_ca.plan_server_cert(_fact_of(), SANS, NOW + timedelta(days=1), resource=RES)
    assert not change.needed and change.step == "server-cert" and change.resource == RES
    assert change.reason == (
        "valid until 2026-05-30T12:00:00Z, renewal after 2026-04-30T12:00:00Z, "
        f"covers {IP}, {SANS[1]}"
    )
    # Order and spelling of the wanted names do not matter.
    same = site_ca.plan_server_cert(
        _fact_of(), [SANS[1].upper(), IP], NOW + timedelta(days=1), resource=RES
    )
    assert not same.needed


@pytest.mark.parametrize(
    ("fact", "wanted", "at_day", "why"),
    [
        (None, SANS, 0, f"no server certificate yet: issuing one for {IP}, {SANS[1]}"),
        (_fact_of(), [*SANS, "10.43.0.11"], 1, "names changed (added 10.43.0.11)"),
        (_fact_of(), [IP], 1, f"names changed (removed {SANS[1]})"),
        (_fact_of(sans=(IP, "old.example")), SANS, 1, f"added {SANS[1]}; removed old.example"),
        (_fact_of(), SANS, 60, "renewal due: 2/3 of the server certificate's lifetime reached"),
        (_fact_of(), SANS, 90, "expired on 2026-05-30T12:00:00Z"),
        (_fact_of(issued=False), SANS, 1, "not issued by the site CA"),
        (_fact_of(key=False), SANS, 1, "key does not match"),
    ],
)
def test_plan_issues_and_says_why(
    fact: site_ca.CertFact | None, wanted: list[str], at_day: int, why: str
) -> None:
    change = site_ca.plan_server_cert(fact, wanted, NOW + timedelta(days=at_day), resource=RES)
    assert change.action == "issue" and change.step == "server-cert"
    assert why in change.reason, change.reason
    assert change.payload == tuple(site_ca.normalize_san(s) for s in wanted)


def test_plan_of_the_ca(ca: site_ca.CaMaterial) -> None:
    secret = "connected-registry/connected-registry-acr-edge-ca"
    created = site_ca.plan_ca(None, NOW, resource="r", secret=secret)
    assert created.action == "create" and created.step == "site-ca"
    assert "no site CA" in created.reason
    fact = site_ca.cert_fact(ca.cert_pem, ca.cert_pem, ca.key_pem, resource="r")
    kept = site_ca.plan_ca(fact, NOW, resource="r", secret=secret)
    assert not kept.needed and kept.reason == "site CA valid until 2036-02-27T12:00:00Z"
    late = NOW + timedelta(days=tls.CA_DAYS - tls.SERVER_CERT_DAYS)
    with pytest.raises(PermanentError) as err:
        site_ca.plan_ca(fact, late, resource="r", secret=secret)
    assert "CA rotation is not built" in str(err.value) and secret in str(err.value)
    # One day earlier it is still kept.
    assert not site_ca.plan_ca(fact, late - timedelta(days=1), resource="r", secret=secret).needed


def test_node_ca_file(ca: site_ca.CaMaterial) -> None:
    text = site_ca.ca_file_text(ca.cert_pem, "site01edge")
    first, rest = text.split("\n", 1)
    assert first == tls.ca_file_header("site01edge") and rest == ca.cert_pem
    assert site_ca.is_our_ca_file(text, "site01edge")
    assert not site_ca.is_our_ca_file(text, "site01")  # another registry's prefix
    assert not site_ca.is_our_ca_file(ca.cert_pem, "site01edge")
    assert site_ca.ca_of_file(text) == ca.cert_pem
    assert site_ca.ca_of_file(text.replace("\n", "\r\n")) == ca.cert_pem
    assert site_ca.ca_of_file("# acr-edge: nothing here\n") is None
    # Go's PEM reader (and cryptography's) skip the header line.
    assert _x509(text) == _x509(ca.cert_pem)
