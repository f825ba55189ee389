"""Process-wide test settings. Fixtures live in the conftest of each test folder."""

import os
import tempfile

# Before anything imports prefect: result/cache storage lives under PREFECT_HOME and is not
# isolated by the harness, so every test session gets its own.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="acr-edge-prefect-home-"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # xdist's workers inherit the controller's environment: each gets its own home below it,
    # as it gets its own Prefect API (tests/flows/conftest.py).
    _home = os.path.join(os.environ["PREFECT_HOME"], os.environ["PYTEST_XDIST_WORKER"])
    os.makedirs(_home, mode=0o700, exist_ok=True)
    os.environ["PREFECT_HOME"] = _home
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_ENABLED", "false")
