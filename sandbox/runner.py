"""Start the Azure sandbox (and simulated sites) and write ``sandbox.json`` for everyone else."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.azure import AzureSandbox, SeedConfig
from sandbox.azure.config import DEFAULT_PROPAGATION_DELAY

SANDBOX_JSON = "sandbox.json"


@dataclass
class RunningSandbox:
    info: dict[str, Any]
    azure: AzureSandbox
    sites: list[Any] = field(default_factory=list)
    state_dir: Path = Path()

    @property
    def json_path(self) -> Path:
        return self.state_dir / SANDBOX_JSON

    def stop(self) -> None:
        for site in reversed(self.sites):
            stop = getattr(site, "stop", None)
            if callable(stop):
                stop()
        self.sites = []
        self.azure.stop()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_sandbox_json(state_dir: Path, info: dict[str, Any]) -> Path:
    """Write atomically and owner-only: it holds the client secret and the internal key."""
    path = state_dir / SANDBOX_JSON
    tmp = path.with_suffix(".json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(info, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def start_sandbox(
    state_dir: Path,
    *,
    sites: int = 0,
    seed: SeedConfig | None = None,
    nodes_per_site: int = 1,
    **knobs: Any,
) -> RunningSandbox:
    """Start the Azure sandbox, then ``sites`` simulated K3s sites of ``nodes_per_site`` nodes
    each; write ``sandbox.json`` (``sites[]`` = node 1's keys plus ``nodes[]``).

    ``knobs`` go to :class:`sandbox.azure.AzureSandbox` (``port``, ``fault_seed``, ``latency``,
    ``lro_polls``, ``lro_seconds``, ``lro_retry_after``, ``propagation_delay``, ``throttle``
    = the fields of POST /_sandbox/throttle, ...). ARM's throttle is on at ARM's rates unless
    ``throttle={"enabled": False}`` or other rates are given.
    ``propagation_delay`` defaults to ``DEFAULT_PROPAGATION_DELAY`` (3 s): new passwords and
    client tokens take time to reach a connected registry live, so callers (the demo, `sandbox
    up`) wait as they would there; tests that are not about propagation pass 0.
    """
    if not 1 <= nodes_per_site <= 254:
        raise ValueError("nodes_per_site must be between 1 and 254")
    knobs.setdefault("propagation_delay", DEFAULT_PROPAGATION_DELAY)
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    azure = AzureSandbox(state_dir, seed=seed, **knobs).start()
    running = RunningSandbox(info=azure.info(), azure=azure, state_dir=state_dir)
    running.info["sites"] = []
    try:
        if sites:
            from sandbox.sites import start_sites  # type: ignore[attr-defined,unused-ignore]

            running.sites = list(
                start_sites(sites, state_dir, running.info, nodes_per_site=nodes_per_site)
            )
            running.info["sites"] = [site.info for site in running.sites]
        write_sandbox_json(state_dir, running.info)
    except BaseException:
        running.stop()
        raise
    return running
