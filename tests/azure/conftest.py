"""Azure integration fixtures: a real sandbox over HTTPS and a ParentRegistry pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure_sandbox_helpers import Internal, block_for

from model.azure_context import AzureContext


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    from sandbox.runner import start_sandbox

    running = start_sandbox(tmp_path, sites=0)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def internal(sandbox: Any) -> Internal:
    return Internal(sandbox.info)


@pytest.fixture
def ctx(sandbox: Any) -> Iterator[AzureContext]:
    context = block_for(sandbox.info).azure_context(
        polling_interval=0, retry_base_delay=0.02, retry_max_delay=2.0, retry_attempts=8
    )
    try:
        yield context
    finally:
        context.close()
