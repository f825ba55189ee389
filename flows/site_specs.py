"""A site's desired spec from the ``edge-site-spec`` blocks stored in Prefect.

provision-site run without a spec (the daily reconcile, a fleet run) asks here; the choice
itself is the pure rule in model/site_spec.py. Stored values are validated again as the run's
spec form would. A stored spec that does not validate fails only the sites it would apply to
(read leniently from its raw sites and tags), naming the block: one bad block for one group of
sites must not stop the reconcile of every other site.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from flows.models import ProvisionSpec
from model.errors import InputError
from model.site_spec import SPEC_BLOCK_TYPE, Resolved, StoredSpec, covers, resolve

_FIX = "correct it in the Prefect UI (Blocks) or save it again"


@dataclass(frozen=True)
class Invalid:
    spec: StoredSpec  # its raw sites and tags: whom it was meant for
    error: str


@dataclass(frozen=True)
class Specs:
    valid: list[StoredSpec] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)

    def check(self, site_block: str, site_tags: Iterable[str]) -> None:
        """InputError when an invalid stored spec was meant for this site."""
        tags = list(site_tags)
        for bad in self.invalid:
            if covers(bad.spec, site_block, tags):
                raise InputError(
                    f"{SPEC_BLOCK_TYPE} block {bad.spec.name!r}, which applies to site "
                    f"{site_block}, is invalid: {bad.error}",
                    resource=f"block {bad.spec.name}",
                    fix=_FIX,
                )


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def stored_specs() -> Specs:
    """Every ``edge-site-spec`` block document (one API call)."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    from blocks.site_spec import EdgeSiteSpec

    with get_client(sync_client=True) as client:
        try:
            docs = client.read_block_documents_by_type(SPEC_BLOCK_TYPE, include_secrets=False)
        except PrefectHTTPStatusError as exc:
            if exc.response.status_code == 404:  # the type is not registered: nothing stored
                return Specs()
            raise
    out = Specs()
    for doc in docs:
        if not doc.name or doc.is_anonymous:
            continue
        data = dict(doc.data)
        try:
            block = EdgeSiteSpec.model_validate(data)
        except ValidationError as exc:
            raw = StoredSpec(doc.name, _strings(data.get("sites")), _strings(data.get("tags")))
            out.invalid.append(Invalid(raw, str(exc)))
            continue
        out.valid.append(block.stored(doc.name))
    return out


def to_provision_spec(stored: StoredSpec, *, dry_run: bool = False) -> ProvisionSpec:
    try:
        return ProvisionSpec(**dict(stored.body), dry_run=dry_run)
    except ValidationError as exc:
        raise InputError(
            f"{SPEC_BLOCK_TYPE} block {stored.name!r} is not a valid provision spec: {exc}",
            resource=f"block {stored.name}",
            fix=_FIX,
        ) from None


def spec_for_site(
    site_block: str, site_tags: Iterable[str], *, dry_run: bool = False
) -> tuple[ProvisionSpec, Resolved]:
    """The site's stored spec as the run's spec, and which block it came from (and why)."""
    tags = list(site_tags)
    specs = stored_specs()
    specs.check(site_block, tags)
    resolved = resolve(site_block, tags, specs.valid)
    return to_provision_spec(resolved.spec, dry_run=dry_run), resolved
