"""Process-wide test settings. Fixtures live in the conftest of each test folder."""

import os
import tempfile

# Before anything imports prefect: result/cache storage lives under PREFECT_HOME and is not
# isolated by the harness, so every test session gets its own.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="acr-edge-prefect-home-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_ENABLED", "false")
