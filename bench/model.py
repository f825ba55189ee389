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
    # Retry-After the LROs answer (the sandbox's lro_retry_after; ACR's is 10 s). The client
    # polls once at once and then every Retry-After, so an LRO costs whole Retry-Afters.
    # 0: it polls again at once (the 50 ms hook), i.e. the LRO costs its own time.
    lro_retry_after_ms: float = 0.0

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
            + self.lros * lro_wait_s(m.lro_ms, m.lro_retry_after_ms)
            + self.ssh_calls * m.ssh_rtt_ms
            + self.pods * m.pod_ready_ms
            + self.restarts * m.k3s_restart_ms
        )
        return ms / 1000.0


def _whole(ratio: float) -> int:
    """ceil() that does not turn 2.0000000001 (float noise) into 3."""
    return max(0, math.ceil(ratio - 1e-9))


def lro_wait_s(lro: float, retry_after: float) -> float:
    """What one LRO costs the client, in the unit of its arguments (s or ms alike).

    azure-core polls once at once, then sleeps Retry-After between polls: an LRO in progress
    for ``lro`` is seen done at the first multiple of ``retry_after`` not before ``lro``.
    """
    if lro < 0 or retry_after < 0:
        raise ValueError("lro and retry_after must be >= 0")
    if lro == 0 or retry_after == 0:
        return float(lro)
    return _whole(lro / retry_after) * float(retry_after)


def lro_polls(lro: float, retry_after: float, *, zero_interval: float = 0.05) -> int:
    """Status polls (ARM reads) one LRO takes: the first at once, then one per Retry-After.

    With ``retry_after`` 0 the client's hook polls every ``zero_interval`` (same unit)."""
    if lro < 0 or retry_after < 0 or zero_interval <= 0:
        raise ValueError("lro, retry_after must be >= 0 and zero_interval > 0")
    if lro == 0:
        return 1
    return 1 + _whole(lro / (retry_after or zero_interval))


# ARM's token buckets per principal and subscription (learn.microsoft.com, "Understand how
# Azure Resource Manager throttles requests"; the sandbox's sandbox.azure.throttle.ARM_RATES).
ARM_READ_CAPACITY, ARM_READ_REFILL = 250.0, 25.0
ARM_WRITE_CAPACITY, ARM_WRITE_REFILL = 200.0, 10.0
ARM_DELETE_CAPACITY, ARM_DELETE_REFILL = 200.0, 10.0


def _bucket_floor_s(requests: float, capacity: float, refill: float) -> float:
    if requests < 0 or capacity < 0 or refill <= 0:
        raise ValueError("requests and capacity must be >= 0 and refill > 0")
    return max(0.0, (requests - capacity) / refill)


def arm_write_floor_s(
    writes: float, capacity: float = ARM_WRITE_CAPACITY, refill: float = ARM_WRITE_REFILL
) -> float:
    """No client, however parallel, issues ``writes`` from one principal faster: the bucket's
    ``capacity`` goes at once, the rest at ``refill`` per second."""
    return _bucket_floor_s(writes, capacity, refill)


def arm_read_floor_s(
    reads: float, capacity: float = ARM_READ_CAPACITY, refill: float = ARM_READ_REFILL
) -> float:
    """As :func:`arm_write_floor_s` for reads (LRO polls are reads)."""
    return _bucket_floor_s(reads, capacity, refill)


def arm_delete_floor_s(
    deletes: float, capacity: float = ARM_DELETE_CAPACITY, refill: float = ARM_DELETE_REFILL
) -> float:
    """As :func:`arm_write_floor_s` for deletes (teardown)."""
    return _bucket_floor_s(deletes, capacity, refill)


def bound_s(critical_path_s: float, *floors_s: float) -> float:
    """The fleet's bound: the largest of its critical path and the ARM floors."""
    return max((critical_path_s, *floors_s))


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


def site_lro_polls(model: LatencyModel, graph: tuple[Step, ...] = SITE_GRAPH) -> int:
    """LRO status polls (ARM reads) one fresh site takes under ``model``."""
    per_lro = lro_polls(model.lro_ms / 1000.0, model.lro_retry_after_ms / 1000.0)
    return sum(step.lros for step in graph) * per_lro


def fleet_lower_bound(model: LatencyModel, sites: int, max_concurrency: int) -> float:
    """No schedule beats this: with `max_concurrency` slots, some slot runs ceil(N/C) sites,
    each of which takes at least the site's critical path."""
    if sites < 0 or max_concurrency < 1:
        raise ValueError("sites must be >= 0 and max_concurrency >= 1")
    if sites == 0:
        return 0.0
    return math.ceil(sites / max_concurrency) * site_critical_path(model)
