"""Shared by the flow tests: one sandbox (Azure + sites) per module, blocks under unique names."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from acr_edge.sandbox_blocks import parent_block, site_block
from sandbox.runner import RunningSandbox, start_sandbox

NAMESPACES = ["samples"]


@dataclass
class FlowSandbox:
    running: RunningSandbox
    parent_block: str
    site_blocks: list[str]
    tag: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def azure(self) -> Any:
        return self.running.azure

    @property
    def info(self) -> dict[str, Any]:
        return self.running.info

    def site(self, i: int = 0) -> Any:
        return self.running.sites[i]

    def arm_writes(self) -> list[dict[str, Any]]:
        return [r for r in self.azure.requests("arm") if r.get("write")]


def start(tmp: Path, *, sites: int = 1, transport: str = "http", **knobs: Any) -> FlowSandbox:
    """Sites are registered over ``transport``: http by default here (the first version's
    mode, which most flow tests exercise; tests/flows/test_https_provision.py and the demo
    test cover https)."""
    # Long-running operations answer Retry-After 1 s here (ACR's 10 s is the sandbox default
    # and the demo's): the flows' polling is under test, not the wait. A test may set its own.
    knobs.setdefault("lro_retry_after", 1)
    running = start_sandbox(tmp, sites=sites, **knobs)
    for node in running.sites:
        # Keep the simulated kubelet and K3s quick: the flows' waits are what is under test.
        node.knobs.pull_time = 0.01
        node.knobs.pod_ready_time = 0.02
        node.knobs.pod_run_time = 0.02
        node.knobs.restart_time = 0.05
    suffix = uuid.uuid4().hex[:6]
    tag = f"t{suffix}"
    parent = f"parent-{suffix}"
    parent_block(running.info).save(parent, overwrite=True)
    names = []
    for i, info in enumerate(running.info["sites"], 1):
        block = site_block(info, transport)
        block.tags = [tag]
        name = f"site-{suffix}-{i}"
        block.save(name, overwrite=True)
        names.append(name)
    return FlowSandbox(running, parent, names, tag)


def parent_as(fsb: FlowSandbox, roles: list[str], name: str | None = None) -> str:
    """A ParentRegistry block for a new principal holding ``roles`` on the registry; saved
    as ``name`` or a name made from the roles."""
    who = fsb.azure.add_principal(roles)
    info = {**fsb.info, "client_id": who["client_id"], "client_secret": who["client_secret"]}
    if name is None:
        name = f"{fsb.parent_block}-{'-'.join(r.lower().replace(' ', '') for r in roles)}"[:60]
    parent_block(info).save(name, overwrite=True)
    return name


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"namespaces": NAMESPACES}
    base.update(overrides)
    return base
