"""The bench's in-process path: provision-site runs in threads of the bench process (no
workers), the figure the fleet path (bench.fleet_driver) is compared with."""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor


def provision_all(
    blocks: list[str], parent: str, concurrency: int, namespaces: list[str]
) -> list[str]:
    """One provision-site run per block, at most ``concurrency`` executing at once.

    Runs are created one at a time, then executed by the flow engine in worker threads, as a
    fleet flow creates them and workers execute them. Creating them concurrently instead makes
    SQLite refuse all but one of each burst ("database is locked", 503), and Prefect's client
    retries each refusal after 2, 4, 8 ... s: a cost of this driver, not of provisioning.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import State
    from prefect.flow_engine import run_flow
    from prefect.states import Pending

    from flows.models import ProvisionSpec
    from flows.provision_site import provision_site

    # The sandbox registry starts like a fresh Premium one: dedicated data endpoint off.
    spec = ProvisionSpec(namespaces=namespaces, enable_data_endpoint=True)
    create_lock = threading.Lock()

    def one(block: str) -> str | None:
        params = {"site_block": block, "parent_block": parent, "spec": spec}
        try:
            with create_lock, get_client(sync_client=True) as client:
                flow_run = client.create_flow_run(
                    provision_site,
                    parameters=provision_site.serialize_parameters(params),
                    state=Pending(),
                )
            # Parameters come back from the run (validated into ProvisionSpec), as on a worker.
            state = run_flow(provision_site, flow_run=flow_run, return_type="state")
        except Exception as exc:  # e.g. the API refusing to create the run: count, go on
            return f"{block}: {type(exc).__name__}: {exc}"
        assert isinstance(state, State)
        return None if state.is_completed() else f"{block}: {state.name}: {state.message}"

    # Prefect settings (the API URL) live in context variables, which threads do not inherit.
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, b) for b in blocks]
        return [e for e in (f.result() for f in futures) if e]
