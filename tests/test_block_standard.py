"""Every acr-edge block type passes Prefect's own BlockStandardTestSuite (the checks Prefect's
integration collections pass: description, documentation URL, a description ending in a period
on every field, a `Block.load("BLOCK_NAME")` code example, a square logo when Pillow is there).

Block types are discovered from `blocks/__init__.py` (what `prefect block register -m blocks`
registers), so a new block type exported there is covered without editing this file; a block
type defined in a blocks module but not exported fails `test_every_block_type_is_exported`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite

import blocks


def exported_block_types() -> list[type[Block]]:
    found = [getattr(blocks, name) for name in getattr(blocks, "__all__", dir(blocks))]
    return [obj for obj in found if inspect.isclass(obj) and issubclass(obj, Block)]


BLOCK_TYPES = exported_block_types()


def test_discovery_finds_the_block_types() -> None:
    names = {cls.__name__ for cls in BLOCK_TYPES}
    assert {"EdgeSite", "ParentRegistry"} <= names


def test_every_block_type_is_exported() -> None:
    """A Block subclass in any blocks module is exported (and so tested), or is the base of
    an exported one (SiteAccess: EdgeSite's SSH half, never saved on its own)."""
    exported = set(BLOCK_TYPES)
    bases = {base for cls in BLOCK_TYPES for base in cls.__mro__[1:]}
    for info in pkgutil.iter_modules(blocks.__path__):
        module = importlib.import_module(f"blocks.{info.name}")
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Block) and obj.__module__ == module.__name__:
                assert obj in exported or obj in bases, (
                    f"{obj.__name__} in blocks/{info.name}.py is a Block but not exported from "
                    "blocks/__init__.py (so neither registered nor tested)"
                )


@pytest.mark.parametrize("block_type", BLOCK_TYPES, ids=lambda cls: cls.__name__)
class TestBlockStandard(BlockStandardTestSuite):
    @pytest.fixture
    def block(self, block_type: type[Block]) -> type[Block]:
        return block_type
