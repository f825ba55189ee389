"""ARM plumbing every Azure I/O module shares: one GET, one write, the converge policy.

Reads call the SDK once: azure-core's RetryPolicy in the client pipeline retries each request
(configured by the ParentRegistry block), so nothing here loops around a read. A failure is
classified (transient / permanent, naming the resource) and raised. Writes start the LRO once
and wait for it; after an ambiguous failure :func:`model.plan.converge` reads and plans again
before writing again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from model.azure_context import AzureContext
from model.errors import TRANSIENT_HTTP, PermanentError, classify
from model.plan import Change
from tasks.azure.desired import ArmWrite

Json = dict[str, Any]


def rest(model: Any) -> Json:
    """SDK 15 models are MutableMappings over the REST payload; as_dict() gives its wire shape."""
    if model is None:
        return {}
    if hasattr(model, "as_dict"):
        return dict(model.as_dict())
    return dict(model)


def fact_or_read(
    ctx: AzureContext, kind: str, name: str, read: Callable[[], Json | None], *, live: bool
) -> Json | None:
    """The fleet's fact for this resource when ``ctx.facts`` is fresh, about this registry and
    covers the name (None: ARM listed no such resource); else ``read()``, one live GET."""
    facts = ctx.facts
    if (
        not live
        and facts is not None
        and facts.covers(kind, name)
        and facts.usable_for(ctx.registry_id, datetime.now(UTC))
    ):
        return facts.get(kind, name)
    return read()


def get_or_none(fn: Callable[[], Any], resource: str) -> Json | None:
    """One GET; None when the resource does not exist; any other failure classified."""
    try:
        return rest(fn())
    except ResourceNotFoundError:
        return None
    except Exception as exc:
        err = classify(exc, resource=resource)
        if err is exc:
            raise
        raise err from exc


def write_once(start: Callable[[], Any]) -> Json:
    """Start an LRO and wait for it; no retry here (converge re-reads before writing again).

    Starting it may fail like any request (classified by converge). An operation ARM reports
    as ended ``Failed``/``Canceled`` is permanent: the write was tried and refused, and
    repeating it blindly would fail the same way, so it becomes one line naming the resource
    and ARM's error code.
    """
    poller = start()
    try:
        return rest(poller.result())
    except HttpResponseError as exc:
        failed = lro_failure(exc)
        if failed is None:
            raise
        raise failed from None  # the SDK's chained text is multi-line and says nothing more


_POLL_PATH = re.compile(
    r".*/providers/Microsoft\.ContainerRegistry/(registries/[^/?]+(?:/[^/?]+/[^/?]+)?)"
    r"/operation(?:Statuses|Results)/.*",
    re.IGNORECASE | re.ASCII | re.DOTALL,
)


def _poll_resource(exc: HttpResponseError) -> str:
    """The resource an LRO poll is about, from the poll URL (``registries/r/tokens/t``)."""
    request = getattr(exc.response, "request", None)
    url = str(getattr(request, "url", "") or "")
    match = _POLL_PATH.fullmatch(url)
    if match is None:
        return "long-running operation"
    parts = match.group(1).split("/")
    return "/".join(parts[2:]) if len(parts) > 2 else "/".join(parts)


def _one_line(text: Any) -> str:
    return " ".join(str(text or "").split())[:300]


def lro_failure(exc: HttpResponseError) -> PermanentError | None:
    """A terminal Failed/Canceled operation as one permanent line; None for anything else
    (a transient poll failure stays transient for converge to re-read and re-plan)."""
    status = exc.status_code
    body: Json = {}
    try:
        parsed = json.loads(exc.response.text()) if exc.response is not None else {}
        body = parsed if isinstance(parsed, dict) else {}
    except (ValueError, AttributeError, TypeError):
        body = {}
    state = str(body.get("status") or "")
    raw_error = body.get("error")
    error: Json = raw_error if isinstance(raw_error, dict) else {}
    if state not in ("Failed", "Canceled") and (status in TRANSIENT_HTTP or not error):
        return None
    code = _one_line(error.get("code") or state or f"HTTP {status}")
    message = _one_line(error.get("message"))
    resource = _poll_resource(exc)
    ended = state or "Failed"
    return PermanentError(
        f"{resource}: the operation ended {ended} with ARM error {code}"
        + (f" ({message})" if message else ""),
        resource=resource,
        fix="fix the cause ARM names, then re-run (the run re-reads and plans again).",
    )


def raw_get(ctx: AzureContext, path: str, api_version: str, resource: str) -> Json | None:
    """One GET through the management client's pipeline (auth, retries, CA), JSON as sent.

    For what the SDK models drop (the preview ``registrySyncResult``) or do not wrap (ARM's
    permissions endpoint). None on 404; other failures classified like any read.
    """
    sep = "&" if "?" in path else "?"
    return send_get(ctx, f"{path}{sep}api-version={api_version}", resource, missing_ok=True)


def send_get(ctx: AzureContext, url: str, resource: str, *, missing_ok: bool) -> Json | None:
    """GET ``url`` (api-version included) through the management pipeline: the JSON object
    sent, None on 404 when ``missing_ok``, every failure classified like any read."""
    try:
        response = ctx.mgmt.send_request(HttpRequest("GET", url))
        if missing_ok and response.status_code == 404:
            return None
        response.raise_for_status()
        data = response.json()
    except Exception as exc:
        err = classify(exc, resource=resource)
        if err is exc:
            raise
        raise err from exc
    return dict(data) if isinstance(data, dict) else {}


def create_or_update(ctx: AzureContext, operations: Any, change: Change) -> None:
    """The planned write of a registry child resource (scope map, token, connected registry):
    ``begin_create`` for a create, else ``begin_update``, with the plan's body."""
    write: ArmWrite = change.payload
    start = operations.begin_create if change.action == "create" else operations.begin_update
    write_once(lambda: start(*rg(ctx), write.name, write.body))


def rg(ctx: AzureContext) -> tuple[str, str]:
    return ctx.resource_group, ctx.registry


def parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
