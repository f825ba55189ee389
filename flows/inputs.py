"""Everything a flow checks before its first side effect: block names, blocks, derived names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from model import names
from model.errors import InputError

if TYPE_CHECKING:
    from blocks.edge_site import EdgeSite
    from blocks.parent_registry import ParentRegistry


@dataclass
class SiteInputs:
    site_block: str
    parent_block: str
    site: EdgeSite
    parent: ParentRegistry
    cr_name: str
    client_token: str
    app_namespaces: list[str]


def load_site_inputs(
    site_block: str,
    parent_block: str,
    *,
    client_token_name: str | None = None,
    app_namespaces: list[str] | None = None,
    site: EdgeSite | None = None,
) -> SiteInputs:
    """Load and validate both blocks and derive every name; raises InputError, writes nothing.

    ``site``: the EdgeSite block already loaded by :func:`load_site` (not loaded twice).
    Inside a flow run the parent's ARM clients draw from the subscription's shared budget
    (flows/arm_budget.py), whichever process, worker or fleet runs the flow.
    """
    from blocks.parent_registry import ParentRegistry
    from flows.arm_budget import flow_arm_budget

    names.validate_block_name(site_block, "site_block")
    names.validate_block_name(parent_block, "parent_block")
    if site is None:
        site = load_site(site_block)
    parent = _load(ParentRegistry, parent_block, "parent_block", "parent-registry")
    parent.use_arm_budget(flow_arm_budget(parent.subscription_id))
    cr_name = names.validate_cr_name(site.name)
    client = names.client_token_name(cr_name, client_token_name)
    return SiteInputs(
        site_block=site_block,
        parent_block=parent_block,
        site=site,
        parent=parent,
        cr_name=cr_name,
        client_token=client,
        # The site block checked its own list; one passed in is checked here, before any write.
        app_namespaces=names.validate_dns_labels(
            list(app_namespaces or site.app_namespaces), "app_namespaces"
        ),
    )


def load_site(site_block: str) -> EdgeSite:
    """The EdgeSite block by name; InputError for a bad or unknown name."""
    from blocks.edge_site import EdgeSite

    names.validate_block_name(site_block, "site_block")
    site: EdgeSite = _load(EdgeSite, site_block, "site_block", "edge-site")
    return site


def _load(cls: Any, name: str, what: str, slug: str) -> Any:
    try:
        return cls.load(name)
    except ValueError as exc:
        text = str(exc)
        if "Unable to find" in text or "not found" in text.lower():
            raise InputError(
                f"no {slug} block named {name!r}",
                resource=what,
                fix=f"save a {slug} block of that name (UI: Blocks > +), or pass the name of "
                "an existing one (`prefect block ls`)",
            ) from None
        # Validation errors of stored documents: hide_input_in_errors keeps values out.
        raise InputError(
            f"{slug} block {name!r} is invalid: {_one_line(text)}",
            resource=what,
            fix=f"edit the {slug} block {name!r} in the UI (Blocks) and save it again",
        ) from None
    except RuntimeError as exc:
        # Prefect wraps a stored document that no longer validates (saved by a form that does
        # not check patterns) in a RuntimeError; the readable reason is its cause.
        cause = exc.__cause__ or exc
        raise InputError(
            f"{slug} block {name!r} is invalid: {_one_line(str(cause))}",
            resource=what,
            fix=f"edit the {slug} block {name!r} in the UI (Blocks) and save it again",
        ) from None


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
