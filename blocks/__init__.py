"""Prefect Blocks: configuration and credentials that build acr-edge's clients.

All are exported here so ``prefect block register -m blocks`` registers every block type.
"""

from blocks.edge_site import EdgeSite
from blocks.parent_registry import ParentRegistry
from blocks.site_spec import EdgeSiteSpec

__all__ = ["EdgeSite", "EdgeSiteSpec", "ParentRegistry"]
