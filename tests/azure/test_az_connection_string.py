"""Connection string: exact format (spec section 4), round trip, secrets never echoed."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from model.errors import InputError
from tasks.azure.connection_string import (
    build_sync_connection_string,
    parse_sync_connection_string,
)


def test_exact_format() -> None:
    cs = build_sync_connection_string(
        "site01", "site01", SecretStr("p+w/d="), "contosoedge.eastus.data.azurecr.io"
    )
    assert isinstance(cs, SecretStr)
    assert "p+w/d=" not in repr(cs) and "p+w/d=" not in str(cs)
    assert cs.get_secret_value() == (
        "ConnectedRegistryName=site01;SyncTokenName=site01;SyncTokenPassword=p+w/d=;"
        "ParentGatewayEndpoint=contosoedge.eastus.data.azurecr.io;ParentEndpointProtocol=https"
    )


@pytest.mark.parametrize("gateway", ["https://x.azurecr.io", "x.azurecr.io/path", "", "a b"])
def test_gateway_must_be_a_host(gateway: str) -> None:
    with pytest.raises(InputError):
        build_sync_connection_string("site01", "site01", SecretStr("pw"), gateway)


def test_password_with_separator_refused_without_echo() -> None:
    with pytest.raises(InputError) as exc:
        build_sync_connection_string("site01", "site01", SecretStr("sec;ret"), "h.io")
    assert "sec;ret" not in str(exc.value)


@pytest.mark.parametrize(
    "text",
    [
        "ConnectedRegistryName=a;SyncTokenName=b;SyncTokenPassword=c;ParentGatewayEndpoint=d",
        "SyncTokenName=b;ConnectedRegistryName=a;SyncTokenPassword=c;ParentGatewayEndpoint=d;"
        "ParentEndpointProtocol=https",
        "ConnectedRegistryName=a;SyncTokenName=b;SyncTokenPassword=c;ParentGatewayEndpoint=d;"
        "ParentEndpointProtocol=ftp",
        "ConnectedRegistryName=a;SyncTokenName=b;SyncTokenPassword=c;ParentGatewayEndpoint=d;"
        "ParentEndpointProtocol=https;",
    ],
)
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(InputError):
        parse_sync_connection_string(SecretStr(text))


_password = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters=";"),
    min_size=1,
    max_size=60,
)
_host = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?(:[0-9]{1,5})?", fullmatch=True)


@given(
    st.from_regex(r"[a-z0-9]{5,50}", fullmatch=True),
    st.from_regex(r"[a-zA-Z0-9-]{5,50}", fullmatch=True),
    _password,
    _host,
    st.sampled_from(["https", "http"]),
)
def test_round_trip(cr: str, token: str, password: str, host: str, protocol: str) -> None:
    cs = build_sync_connection_string(cr, token, SecretStr(password), host, protocol)  # type: ignore[arg-type]
    parsed = parse_sync_connection_string(cs)
    assert (
        parsed.connected_registry,
        parsed.sync_token,
        parsed.password.get_secret_value(),
        parsed.gateway_endpoint,
        parsed.protocol,
    ) == (cr, token, password, host, protocol)
