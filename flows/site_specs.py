"""A site's desired spec from the ``edge-site-spec`` blocks stored in Prefect.

provision-site run without a spec (the daily reconcile, a fleet run) asks here; the choice
itself is the pure rule in model/site_spec.py. Stored values are validated again as the run's
spec form would, and a stored spec that no longer validates is an InputError naming the block.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError

from flows.models import ProvisionSpec
from model.errors import InputError
from model.site_spec import SPEC_BLOCK_TYPE, Resolved, StoredSpec, resolve


def stored_specs() -> list[StoredSpec]:
    """Every ``edge-site-spec`` block document (one API call); an invalid one is an error."""
    from prefect.client.orchestration import get_client

    from blocks.site_spec import EdgeSiteSpec

    with get_client(sync_client=True) as client:
        try:
            docs = client.read_block_documents_by_type(SPEC_BLOCK_TYPE, include_secrets=False)
        except Exception as exc:  # the type is not registered yet: no specs stored
            if "not found" in str(exc).lower():
                return []
            raise
    out: list[StoredSpec] = []
    for doc in docs:
        if not doc.name or doc.is_anonymous:
            continue
        try:
            block = EdgeSiteSpec.model_validate(dict(doc.data))
        except ValidationError as exc:
            raise InputError(
                f"{SPEC_BLOCK_TYPE} block {doc.name!r} is invalid: {exc}",
                resource=f"block {doc.name}",
                fix="correct it in the Prefect UI (Blocks) or save it again",
            ) from None
        out.append(block.stored(doc.name))
    return out


def to_provision_spec(stored: StoredSpec, *, dry_run: bool = False) -> ProvisionSpec:
    try:
        return ProvisionSpec(**dict(stored.body), dry_run=dry_run)
    except ValidationError as exc:
        raise InputError(
            f"{SPEC_BLOCK_TYPE} block {stored.name!r} is not a valid provision spec: {exc}",
            resource=f"block {stored.name}",
            fix="correct it in the Prefect UI (Blocks) or save it again",
        ) from None


def spec_for_site(
    site_block: str, site_tags: Iterable[str], *, dry_run: bool = False
) -> tuple[ProvisionSpec, Resolved]:
    """The site's stored spec as the run's spec, and which block it came from (and why)."""
    resolved = resolve(site_block, site_tags, stored_specs())
    return to_provision_spec(resolved.spec, dry_run=dry_run), resolved
