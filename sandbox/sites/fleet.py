"""Start N simulated nodes on one shared loop and one shared tool control channel."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sandbox.sites.aio import LoopThread
from sandbox.sites.azure_link import AzureLink, HttpAzureLink
from sandbox.sites.site import SimulatedSite, SiteKnobs
from sandbox.sites.ssh_server import SshKnobs
from sandbox.sites.tools import ControlChannel

_SSH_KNOBS = {
    "ssh_latency": "latency",
    "drop_next": "drop_next",
    "drop_rate": "drop_rate",
    "drop_exec_rate": "drop_exec_rate",
}


def _knobs(values: dict[str, Any]) -> SiteKnobs:
    ssh = SshKnobs(**{_SSH_KNOBS[k]: v for k, v in values.items() if k in _SSH_KNOBS})
    rest = {k: v for k, v in values.items() if k not in _SSH_KNOBS}
    return SiteKnobs(ssh=ssh, **rest)


def start_sites(
    count: int,
    state_dir: Path,
    azure_info: dict[str, Any],
    *,
    azure: AzureLink | None = None,
    name_prefix: str = "site",
    **knobs: Any,
) -> list[SimulatedSite]:
    """Start ``count`` nodes named ``site1..siteN`` under ``state_dir/sites/<name>``.

    ``azure_info`` carries the Azure sandbox's ``internal_endpoint``, ``internal_key`` and
    ``ca_bundle``; ``azure`` overrides the link (tests). Knobs: ``ssh_latency``, ``drop_next``,
    ``drop_rate``, ``drop_exec_rate``, ``restart_time``, ``pod_ready_time``, ``pull_time``,
    ``pull_backoff``, ``pod_run_time``, ``api_unavailable``; each site gets its own copy.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    link = azure if azure is not None else HttpAzureLink.from_info(azure_info)
    loop = LoopThread()
    control = ControlChannel()
    loop.acquire()  # the control channel's own hold, released after the last site is up/stopped
    try:
        loop.run(control.server.start())
        sites = [
            SimulatedSite(
                f"{name_prefix}{i}",
                Path(state_dir) / "sites" / f"{name_prefix}{i}",
                link,
                loop,
                control,
                _knobs(knobs),
            )
            for i in range(1, count + 1)
        ]
        for _ in sites:
            loop.acquire()

        async def start_all() -> None:
            await asyncio.gather(*(site.start() for site in sites))

        loop.run(start_all(), timeout=max(60, count))
    finally:
        loop.release()
    return sites
