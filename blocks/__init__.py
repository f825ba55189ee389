"""Prefect Blocks: configuration and credentials that build acr-edge's clients."""

from blocks.parent_registry import ParentRegistry

__all__ = ["ParentRegistry"]
