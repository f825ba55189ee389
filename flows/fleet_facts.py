"""The fleet's bulk ARM read for fleet-status: listed once, sliced per site, re-read when old.

fleet-status used to cost four ARM reads per site (the connected registry, two tokens, the
client scope map). Here the fleet run lists them once (a few pages for the whole registry)
and each site's site-status run gets the slice for its own names as a parameter. Only status
uses it: a run that writes re-reads what it changes. A failed bulk read is not fatal: the
sites then read live, as before.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger

from model import names as nm
from model.arm_facts import MAX_AGE, ArmFacts
from model.errors import AcrEdgeError

# Re-read before a wave once the facts are this old, so a site never gets facts that go
# stale (MAX_AGE) while its run is still waiting for a free slot of its shard.
REFRESH_AGE = MAX_AGE / 2


class FleetFacts:
    """The fleet's facts for status; :meth:`for_wave` hands each site of a wave its slice."""

    def __init__(self, parent_block: str, crs: dict[str, str]) -> None:
        self.parent_block = parent_block
        self.crs = crs  # site block -> connected registry name
        self.facts: ArmFacts | None = None

    def _read(self) -> ArmFacts | None:
        from blocks.parent_registry import ParentRegistry
        from flows.arm_budget import flow_arm_budget
        from tasks.azure import steps as az

        parent: Any = ParentRegistry.load(self.parent_block)
        parent.use_arm_budget(flow_arm_budget(parent.subscription_id))
        ctx = parent.azure_context()
        try:
            facts: ArmFacts = az.read_arm_facts(ctx)
            return facts
        except AcrEdgeError as exc:  # e.g. throttled beyond the pipeline's retries
            get_run_logger().warning("fleet ARM read failed, sites read live: %s", exc)
            return None
        finally:
            ctx.close()

    def for_wave(self, sites: list[str]) -> dict[str, dict[str, Any]]:
        """Site block -> its facts' JSON; a site without a known name gets none (reads live)."""
        now = datetime.now(UTC)
        if self.facts is None or not self.facts.is_fresh(now, REFRESH_AGE):
            self.facts = self._read()
        if self.facts is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for site in sites:
            cr = self.crs.get(site)
            if cr:
                out[site] = self.facts.for_sites([cr], [nm.client_token_name(cr)]).to_json()
        return out


def for_site(
    arm_facts: dict[str, Any] | None, registry_id: str, now: datetime
) -> tuple[ArmFacts | None, str]:
    """A site-status run's facts from its ``arm_facts`` parameter, and where its ARM facts
    come from (its artifact says so): the fleet's read, or live when there is none, it is
    malformed, stale or about another registry."""
    if not arm_facts:
        return None, "read live"
    try:
        facts = ArmFacts.from_json(arm_facts)
    except ValueError as exc:
        return None, f"read live (arm_facts ignored: {exc})"
    if not nm.same_id(facts.registry_id, registry_id):
        return None, "read live (the fleet's facts are about another registry)"
    if not facts.is_fresh(now):
        return None, f"read live (the fleet's read at {facts.read_at:%H:%M:%S} UTC is stale)"
    return facts, facts.describe()
