"""One way to deploy for every test that needs deployments on the shared harness.

test_deploy and test_fleet_flows both apply the deployments through the real registrar with
these arguments and this pool, so whichever module runs last leaves the same deployments behind
(order does not matter, and neither module re-points the other's deployments at another pool).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from acr_edge.sandbox_blocks import PARENT_BLOCK

POOL = "acr-edge-test"
TZ = "Europe/Berlin"
STATUS_SITES = ("sandbox-site-1",)
PARENT = PARENT_BLOCK  # what the sandbox saves: the deployments' default

ARGS = [
    "--work-pool", POOL,
    "--timezone", TZ,
    "--site-status-sites", *STATUS_SITES,
    "--parent-block", PARENT,
]  # fmt: skip
KWARGS: dict[str, Any] = {
    "work_pool": POOL,
    "timezone": TZ,
    "status_sites": STATUS_SITES,
    "parent_block": PARENT,
}


def worker_env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "0",
    }


def worker_argv(*extra: str) -> list[str]:
    return [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, *extra]


def wait_final(flow_run_id: Any, timeout: float = 60) -> Any:
    """The run's state once final (or whatever it is at the deadline)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(flow_run_id).state
            if (state is not None and state.is_final()) or time.monotonic() > deadline:
                return state
            time.sleep(0.5)


def ref(slug: str, name: str) -> dict[str, Any]:
    """A block as a run parameter of a deployment, as a script passes it (the form's picker
    passes the document id): site and parent parameters take saved blocks, not names."""
    return {"$ref": {"block_document_slug": f"{slug}/{name}"}}


def site_ref(name: str) -> dict[str, Any]:
    return ref("edge-site", name)


def parent_ref(name: str) -> dict[str, Any]:
    return ref("parent-registry", name)


def ref_name(value: Any) -> str:
    """The block name a deployment parameter refers to ({"$ref": id or slug})."""
    from prefect.client.orchestration import get_client

    target = value["$ref"]
    if "block_document_slug" in target:
        return str(target["block_document_slug"]).rpartition("/")[2]
    with get_client(sync_client=True) as client:
        return str(client.read_block_document(target["block_document_id"]).name)
