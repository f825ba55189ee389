"""azure-core pipeline pieces the ParentRegistry block puts into every Azure client it builds.

:class:`WriteSafeRetryPolicy` is azure-core's own RetryPolicy, configured from
:class:`model.retry.RetryPolicy`: every request is retried on its own (a failed catalog page,
not the whole listing), waiting :func:`model.retry.delay_for` (backoff, at least the server's
Retry-After, at most the cap). Reads are retried on any transient failure. A write is retried
by the pipeline only when the server provably did not act on it:

- 429: ARM rejects throttled requests before any resource provider sees them ("your request
  isn't processed and a new retry value is returned"); Entra ID and ACR throttle the same way;
- 503 *with* Retry-After: the server shed the request and says when to come back
  (RFC 9110 15.6.4); a 503 without it may come from a gateway after the provider acted;
- a connection error before the request was sent (azure-core's ``ServiceRequestError``:
  refused, DNS, TLS handshake).

Every other write failure (500, 502, 504, 408, a connection dropped after sending) is
ambiguous: it surfaces as a TransientError to :func:`model.plan.converge`, which reads the
resource again and plans again instead of replaying the write blindly.

:func:`honour_zero_retry_after` is the management clients' ``raw_response_hook`` (LRO polls).

:class:`ArmBudgetPolicy` draws each ARM request (every attempt, LRO polls included) from an
:class:`ArmBudget` before it is sent; flows inject a budget shared by every process
(``flows/arm_budget.py``), plain SDK use has none. A 429 is still the retry policy's to back
off (Retry-After): the budget only keeps acr-edge from causing it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.policies import HTTPPolicy
from azure.core.pipeline.policies import RetryPolicy as CoreRetryPolicy

from model.arm_budget import Kind, request_kind
from model.errors import TRANSIENT_HTTP, parse_retry_after
from model.retry import DEFAULT_POLICY, RetryPolicy, delay_for

__all__ = [
    "READ_METHODS",
    "ZERO_RETRY_AFTER_SECONDS",
    "ArmBudget",
    "ArmBudgetPolicy",
    "WriteSafeRetryPolicy",
    "honour_zero_retry_after",
    "token_exchange",
]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Small enough to be "now", large enough that a server repeating 0 is not polled in a hot loop.
ZERO_RETRY_AFTER_SECONDS = 0.05


def token_exchange(request: Any) -> bool:
    """ACR's OAuth endpoints: POSTs that only trade one token for another (safe to repeat)."""
    path = str(getattr(request, "url", "")).split("?", 1)[0].rstrip("/")
    return path.endswith(("/oauth2/exchange", "/oauth2/token"))


class WriteSafeRetryPolicy(CoreRetryPolicy):  # type: ignore[misc]
    """azure-core's RetryPolicy with acr-edge's attempts, waits and write rule (module doc).

    ``replay_safe`` marks further requests as safe to repeat (ACR's token exchanges). A call
    may widen the safe methods itself: azure-identity sends its token POSTs with
    ``retry_on_methods=["POST"]``, and a token request is safe to repeat.

    One instance may be linked into several pipelines: azure-containerregistry builds its
    token-exchange pipeline from the same keyword arguments as the catalog's, so both hold
    the ``retry_policy`` given. Each request is sent down the chain that ends in its own
    pipeline's transport.
    """

    def __init__(
        self,
        policy: RetryPolicy = DEFAULT_POLICY,
        *,
        replay_safe: Callable[[Any], bool] | None = None,
        **kwargs: Any,
    ) -> None:
        retries = policy.attempts - 1
        for key in ("retry_total", "retry_connect", "retry_read", "retry_status"):
            kwargs[key] = retries
        kwargs["retry_backoff_factor"] = policy.base_delay
        kwargs["retry_backoff_max"] = policy.max_delay
        self._links: list[Any] = []
        self._local = threading.local()
        super().__init__(**kwargs)
        self.policy = policy
        self._replay_safe = replay_safe
        self._method_whitelist = READ_METHODS

    # -- one instance in several pipelines ---------------------------------------------------

    @property  # type: ignore[override]
    def next(self) -> Any:
        stack: list[Any] = getattr(self._local, "stack", [])
        if stack:
            return stack[-1]
        return self._links[-1] if self._links else None

    @next.setter
    def next(self, value: Any) -> None:
        if value is not None and value not in self._links:
            self._links.append(value)

    def _link_for(self, request: Any) -> Any:
        transport = request.context.transport
        for link in self._links:
            node = link
            while getattr(node, "next", None) is not None:
                node = node.next
            if getattr(node, "_sender", None) is transport:
                return link
        return self._links[-1]

    def send(self, request: Any) -> Any:
        stack = self._local.__dict__.setdefault("stack", [])
        stack.append(self._link_for(request))
        try:
            return super().send(request)
        finally:
            stack.pop()

    # -- what is retried ---------------------------------------------------------------------

    def _safe(self, settings: dict[str, Any], request: Any) -> bool:
        method = str(request.method).upper()
        methods: Iterable[str] = settings.get("methods") or READ_METHODS
        if method in READ_METHODS or method in {m.upper() for m in methods}:
            return True
        return bool(self._replay_safe and self._replay_safe(request))

    def is_retry(self, settings: dict[str, Any], response: Any) -> bool:
        status = response.http_response.status_code
        if status not in TRANSIENT_HTTP:
            # azure-core would also retry any error carrying Retry-After (a 409 included).
            return False
        if self._safe(settings, response.http_request):
            return True
        return status == 429 or (status == 503 and self.get_retry_after(response) is not None)

    def _is_method_retryable(self, settings: Any, request: Any, response: Any = None) -> bool:
        return True  # decided per error in increment() and per status in is_retry()

    def increment(self, settings: dict[str, Any], response: Any = None, error: Any = None) -> bool:
        if error is not None and response is not None:
            sent = not isinstance(error, ServiceRequestError)
            if sent and not self._safe(settings, response.http_request):
                return False  # a write whose outcome is unknown: converge re-reads
        return bool(super().increment(settings, response=response, error=error))

    # -- how long ----------------------------------------------------------------------------

    def sleep(self, settings: dict[str, Any], transport: Any, response: Any = None) -> None:
        attempt = max(0, len(settings["history"]) - 1)
        retry_after = self.get_retry_after(response) if response is not None else None
        transport.sleep(delay_for(retry_after, attempt, self.policy))


def honour_zero_retry_after(response: Any) -> None:
    """azure-core ``raw_response_hook``: rewrite ``Retry-After: 0`` to a tiny positive delay.

    azure-core's ARM poller reads Retry-After with a truthiness test, so an explicit ``0``
    ("poll again now") falls back to the client's whole polling interval. ARM's own answers
    usually carry a positive value, which is honoured unchanged; the hook only turns an
    explicit zero into the smallest wait the poller does not mistake for "absent". It says so
    in ``retry-after-ms``, which the poller also reads, because the SDK deserializes
    ``Retry-After`` itself as an integer. :class:`WriteSafeRetryPolicy` reads both headers, so
    a rewritten 503 still counts as "503 with Retry-After".
    """
    headers = response.http_response.headers
    seconds = parse_retry_after(headers.get("Retry-After"))
    if seconds is not None and seconds <= 0 and "retry-after-ms" not in headers:
        del headers["Retry-After"]
        headers["retry-after-ms"] = str(int(ZERO_RETRY_AFTER_SECONDS * 1000))


class ArmBudget(Protocol):
    """Where ARM requests draw their slot from (implemented by ``flows/arm_budget.py``)."""

    def draw(self, kind: Kind) -> None:
        """Return once one ``kind`` request may be sent (blocks while the budget is spent)."""


class ArmBudgetPolicy(HTTPPolicy):  # type: ignore[misc]
    """Draws every request to ``arm_endpoint`` from ``budget`` just before it is sent.

    It is a per-retry policy (after :class:`WriteSafeRetryPolicy`), so each attempt, which
    ARM counts as a request, draws its own slot; requests to other hosts draw nothing.
    """

    def __init__(self, budget: ArmBudget, arm_endpoint: str) -> None:
        super().__init__()
        self.budget = budget
        self.arm_endpoint = arm_endpoint

    def send(self, request: Any) -> Any:
        http = request.http_request
        kind = request_kind(str(http.method), str(http.url), self.arm_endpoint)
        if kind is not None:
            self.budget.draw(kind)
        return self.next.send(request)
