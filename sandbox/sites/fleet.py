"""Start N simulated sites (K nodes each) on one shared loop and one tool control channel."""

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
    nodes_per_site: int = 1,
    **knobs: Any,
) -> list[SimulatedSite]:
    """Start ``count`` sites named ``site1..siteN`` under ``state_dir/sites/<name>``, each a
    cluster of ``nodes_per_site`` nodes (node 1 the server, the rest agents).

    ``azure_info`` carries the Azure sandbox's ``internal_endpoint``, ``internal_key`` and
    ``ca_bundle``; ``azure`` overrides the link (tests). Knobs: ``ssh_latency``, ``drop_next``,
    ``drop_rate``, ``drop_exec_rate``, ``restart_time``, ``pod_ready_time``, ``pull_time``,
    ``pull_backoff``, ``pod_run_time``, ``api_unavailable``; each site gets its own copy.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    if not 1 <= nodes_per_site <= 254:
        raise ValueError("nodes_per_site must be between 1 and 254")
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
                index=i,
                nodes=nodes_per_site,
            )
            for i in range(1, count + 1)
        ]
        for _ in sites:
            loop.acquire()

        async def start_all() -> None:
            await asyncio.gather(*(site.start() for site in sites))

        loop.run(start_all(), timeout=max(60, count * nodes_per_site))
    finally:
        loop.release()
    return sites
