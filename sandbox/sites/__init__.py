"""Simulated K3s sites: many nodes in one process, each reachable over its real protocols.

``start_sites(count, state_dir, azure_info, **knobs) -> list[SimulatedSite]``; each site's
``info`` is its ``sites`` entry of sandbox.json and ``stop()`` ends it.
"""

from __future__ import annotations

from sandbox.sites.fleet import start_sites
from sandbox.sites.site import SimulatedSite, SiteKnobs

__all__ = ["SimulatedSite", "SiteKnobs", "start_sites"]
