"""The fleet on a real Prefect server (PostgreSQL, process workers): fixtures in pgkit. This
folder has its own server, so the flow tests' session harness (tests/flows/conftest.py) does
not apply here."""

import pytest
from pgkit import postgres, prefect_server

__all__ = ["postgres", "prefect_server"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "postgres: needs Debian's PostgreSQL (installed by ./dev test when run as root)",
    )
