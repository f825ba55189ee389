"""Azure cloud endpoints the ParentRegistry block talks to: which hosts are known clouds, the
endpoint URL rule, and the ARM token audience of a cloud that is not known (read once from its
``/metadata/endpoints``)."""

from __future__ import annotations

from urllib.parse import urlparse

from model.errors import PermanentError
from model.retry import RetryPolicy, call_with_retry

CATALOG_AUDIENCE = "https://containerregistry.azure.net"
ARM_API_VERSION = "2025-11-01"
# Authority hosts MSAL knows; anything else (a private cloud, the sandbox) must skip instance
# discovery, which would otherwise ask login.microsoftonline.com about it.
KNOWN_AUTHORITIES = frozenset(
    {
        "login.microsoftonline.com",
        "login.chinacloudapi.cn",
        "login.microsoftonline.us",
    }
)
# ARM endpoint -> token audience of that cloud.
KNOWN_ARM_AUDIENCES = {
    "management.azure.com": "https://management.azure.com",
    "management.chinacloudapi.cn": "https://management.chinacloudapi.cn",
    "management.usgovcloudapi.net": "https://management.usgovcloudapi.net",
}


_AUDIENCE_CACHE: dict[str, str] = {}


def https_url(value: str, field: str) -> str:
    """``value`` without a trailing slash if it is a bare https://host[:port] URL."""
    parsed = urlparse(value)
    if parsed.scheme != "https" or not parsed.hostname:
        raise ValueError(f"{field} must be an https:// URL (got {value!r}); TLS is required.")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise ValueError(f"{field} must be a bare https://host[:port] URL (got {value!r}).")
    return value.rstrip("/")


def discover_arm_audience(
    arm_endpoint: str, ca_bundle_path: str | None, policy: RetryPolicy
) -> str:
    """The ARM audience a cloud publishes at ``/metadata/endpoints`` (cached per endpoint)."""
    cached = _AUDIENCE_CACHE.get(arm_endpoint)
    if cached:
        return cached
    import requests

    url = f"{arm_endpoint}/metadata/endpoints?api-version=2022-09-01"

    def fetch() -> str:
        response = requests.get(url, verify=ca_bundle_path or True, timeout=15)
        response.raise_for_status()
        audiences = (response.json().get("authentication") or {}).get("audiences") or []
        if not audiences:
            raise PermanentError(
                "cloud metadata lists no ARM audience.",
                resource=url,
                fix="set arm_audience on the ParentRegistry block.",
            )
        return str(audiences[0])

    try:
        audience = call_with_retry(fetch, what=url, policy=policy)
    except PermanentError as exc:
        raise PermanentError(
            f"cannot discover the ARM token audience: {exc}",
            resource="arm_endpoint",
            fix="set arm_audience on the ParentRegistry block.",
        ) from None
    _AUDIENCE_CACHE[arm_endpoint] = audience
    return audience
