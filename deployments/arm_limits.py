"""The ARM budget limits `acr-edge deploy` converges for the default parent registry.

Flows create them on first use too; deploying them first lets an operator see (and tune) the
shared budget in the UI's concurrency page before any run draws from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployments.register import Outcome

PARENT_BLOCK_TYPE = "parent-registry"


def subscription_of(parent_block: str) -> str | None:
    """The saved parent block's subscription id (no secrets read), or None if not saved."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            doc = client.read_block_document_by_name(
                parent_block, block_type_slug=PARENT_BLOCK_TYPE, include_secrets=False
            )
        except ObjectNotFound:
            return None
    sub = doc.data.get("subscription_id")
    return sub if isinstance(sub, str) and sub else None


def arm_budget_outcomes(parent_block: str) -> list[Outcome]:
    from deployments.register import Outcome
    from flows.arm_budget import configured_rates, converge_arm_budget_limits

    rates = configured_rates()  # a bad ACR_EDGE_ARM_RATES is refused here, one line
    subscription = subscription_of(parent_block)
    if subscription is None:
        return [
            Outcome(
                "arm-budget",
                parent_block,
                "left",
                "no parent-registry block of that name yet; the first flow run creates the "
                "limits (or save the block and deploy again)",
            )
        ]
    return [
        Outcome(
            "arm-budget",
            name,
            "updated" if changed else "unchanged",
            f"{parent_block}'s subscription"
            + (", created or reset to the configured rates" if changed else ""),
        )
        for name, changed in converge_arm_budget_limits(subscription, rates)
    ]
