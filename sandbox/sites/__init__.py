"""Simulated K3s sites: many clusters in one process, each node reachable over its real protocols.

``start_sites(count, state_dir, azure_info, *, nodes_per_site=1, **knobs) ->
list[SimulatedSite]``; each site's ``info`` is its ``sites`` entry of sandbox.json (node 1's keys
plus ``nodes``), ``site.nodes`` its ``SimulatedNode``s and ``stop()`` ends it.
"""

from __future__ import annotations

from sandbox.sites.fleet import start_sites
from sandbox.sites.node import NodeKnobs, SimulatedNode
from sandbox.sites.site import SimulatedSite, SiteKnobs

__all__ = ["NodeKnobs", "SimulatedNode", "SimulatedSite", "SiteKnobs", "start_sites"]
