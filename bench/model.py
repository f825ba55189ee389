"""Latency model of one site's provisioning and the critical-path lower bound it implies.

The dependency graph is the protocol's, not our implementation's: a token needs its scope map,
the connected registry needs its sync token, Helm needs the connection string, the mirror entry
needs the service IP, the canary needs the mirror and the pull secret. Any implementation,
however parallel, needs at least the longest path through it; the benchmark reports its wall
time against that bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class LatencyModel:
    """Seconds-scale knobs the sandbox applies (all in milliseconds)."""

    arm_latency_ms: float = 0.0  # added to every ARM/data-plane response
    lro_ms: float = 0.0  # time an ARM long-running operation stays in progress
    ssh_rtt_ms: float = 0.0  # added to every SSH command (and kube API call via the tunnel)
    pod_ready_ms: float = 0.0  # a pod's time from created to Ready
    k3s_restart_ms: float = 0.0  # time K3s is down during a restart
    # A new password's time to reach the connected registry (the canary waits it out).
    propagation_ms: float = 0.0

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if value < 0 or math.isnan(value):
                raise ValueError(f"{name} must be >= 0, got {value}")


@dataclass(frozen=True)
class Step:
    name: str
    after: tuple[str, ...]
    arm_calls: int = 0
    lros: int = 0
    ssh_calls: int = 0
    pods: int = 0
    restarts: int = 0

    def seconds(self, m: LatencyModel) -> float:
        ms = (
            self.arm_calls * m.arm_latency_ms
            + self.lros * m.lro_ms
            + self.ssh_calls * m.ssh_rtt_ms
            + self.pods * m.pod_ready_ms
            + self.restarts * m.k3s_restart_ms
        )
        return ms / 1000.0


# The minimum dependency graph for one site (from the connected-registry protocol). Which ARM
# writes are long-running follows the recordings (docs/design.md, "Sandbox fidelity"): scope map
# and connected registry PUT/PATCH answer 200 synchronously; token PUT (201 + Azure-AsyncOperation)
# and generateCredentials (202 + Location) are LROs.
SITE_GRAPH: tuple[Step, ...] = (
    Step("preflight", (), arm_calls=1),
    Step("sync-scope-map", ("preflight",), arm_calls=1),
    Step("sync-token", ("sync-scope-map",), arm_calls=1, lros=1),
    Step("connected-registry", ("sync-token",), arm_calls=1),
    Step("sync-password", ("sync-token",), arm_calls=1, lros=1),
    Step("client-scope-map", ("preflight",), arm_calls=1),
    Step("client-token", ("client-scope-map",), arm_calls=1, lros=1),
    Step("attach-client-token", ("connected-registry", "client-token"), arm_calls=1),
    Step("client-password", ("client-token",), arm_calls=1, lros=1),
    Step("helm-install", ("connected-registry", "sync-password"), ssh_calls=1, pods=1),
    Step("service-ip", ("helm-install",), ssh_calls=1),
    Step("registries-yaml", ("service-ip",), ssh_calls=1),
    Step("restart-k3s", ("registries-yaml",), ssh_calls=1, restarts=1),
    Step("pull-secrets", ("attach-client-token", "client-password"), ssh_calls=1),
    Step("canary", ("restart-k3s", "pull-secrets"), ssh_calls=1, pods=1),
)


def site_critical_path(model: LatencyModel, graph: tuple[Step, ...] = SITE_GRAPH) -> float:
    """Longest path (seconds) through the site graph; steps must be listed after their deps."""
    finish: dict[str, float] = {}
    for step in graph:
        missing = [d for d in step.after if d not in finish]
        if missing:
            raise ValueError(f"step {step.name} depends on unknown/later steps {missing}")
        start = max((finish[d] for d in step.after), default=0.0)
        finish[step.name] = start + step.seconds(model)
    return max(finish.values(), default=0.0)


def fleet_lower_bound(model: LatencyModel, sites: int, max_concurrency: int) -> float:
    """No schedule beats this: with `max_concurrency` slots, some slot runs ceil(N/C) sites,
    each of which takes at least the site's critical path."""
    if sites < 0 or max_concurrency < 1:
        raise ValueError("sites must be >= 0 and max_concurrency >= 1")
    if sites == 0:
        return 0.0
    return math.ceil(sites / max_concurrency) * site_critical_path(model)
