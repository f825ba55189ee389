"""LRO polling that honours ``Retry-After: 0``.

azure-core's ARM poller reads Retry-After with a truthiness test, so an explicit ``0`` ("poll
again now") falls back to the client's whole polling interval. ARM's own answers usually carry a
positive value, which is honoured unchanged; the hook only turns an explicit zero into the
smallest wait the poller does not mistake for "absent". It says so in ``retry-after-ms``, which
the poller also reads, because the SDK deserializes ``Retry-After`` itself as an integer.
"""

from __future__ import annotations

from typing import Any

from model.retry import parse_retry_after

# Small enough to be "now", large enough that a server repeating 0 is not polled in a hot loop.
ZERO_RETRY_AFTER_SECONDS = 0.05


def honour_zero_retry_after(response: Any) -> None:
    """azure-core ``raw_response_hook``: rewrite ``Retry-After: 0`` to a tiny positive delay."""
    headers = response.http_response.headers
    seconds = parse_retry_after(headers.get("Retry-After"))
    if seconds is not None and seconds <= 0 and "retry-after-ms" not in headers:
        del headers["Retry-After"]
        headers["retry-after-ms"] = str(int(ZERO_RETRY_AFTER_SECONDS * 1000))
