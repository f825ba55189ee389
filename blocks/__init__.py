"""Prefect Blocks: configuration and credentials that build acr-edge's clients.

Both are exported here so ``prefect block register -m blocks`` registers every block type.
"""

from blocks.edge_site import EdgeSite
from blocks.parent_registry import ParentRegistry

__all__ = ["EdgeSite", "ParentRegistry"]
