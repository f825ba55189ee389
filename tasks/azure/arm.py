"""ARM plumbing every Azure I/O module shares: one GET, one write, the converge policy.

Reads call the SDK once: azure-core's RetryPolicy in the client pipeline retries each request
(configured by the ParentRegistry block), so nothing here loops around a read. A failure is
classified (transient / permanent, naming the resource) and raised. Writes start the LRO once
and wait for it; after an ambiguous failure :func:`model.plan.converge` reads and plans again
before writing again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError

from model.azure_context import AzureContext
from model.errors import classify
from model.retry import RetryPolicy

Json = dict[str, Any]


def rest(model: Any) -> Json:
    """SDK 15 models are MutableMappings over the REST payload; as_dict() gives its wire shape."""
    if model is None:
        return {}
    if hasattr(model, "as_dict"):
        return dict(model.as_dict())
    return dict(model)


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
    """Start an LRO and wait for it; no retry here (converge re-reads before writing again)."""
    return rest(start().result())


def policy(ctx: AzureContext) -> RetryPolicy:
    """The re-read-before-rewrite budget of ``converge`` for this context."""
    return RetryPolicy(
        attempts=ctx.retry_attempts,
        base_delay=ctx.retry_base_delay,
        max_delay=ctx.retry_max_delay,
    )


def rg(ctx: AzureContext) -> tuple[str, str]:
    return ctx.resource_group, ctx.registry


def parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
