"""What the bench reads back from the sandbox: its internal endpoints (request log, latency
and throttle knobs, 429 counts), the nodes' command logs, and this process's CPU time."""

from __future__ import annotations

import json
import resource
import ssl
import urllib.request
from pathlib import Path
from typing import Any

from bench.model import LatencyModel


class Internal:
    """The sandbox's `/_sandbox` endpoints over verified HTTPS (its own CA)."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.base = info["internal_endpoint"].rstrip("/")
        self.key = info["internal_key"]
        self.ctx = ssl.create_default_context(cafile=info["ca_bundle"])

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base}{path}",
            data=data,
            method=method,
            headers={"X-Sandbox-Key": self.key, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, context=self.ctx, timeout=30) as resp:
            return json.loads(resp.read() or b"null")


def apply_azure_model(internal: Internal, model: LatencyModel) -> None:
    internal.call(
        "POST",
        "/latency",
        {
            "latency": model.arm_latency_ms / 1000.0,
            "lro_seconds": model.lro_ms / 1000.0,
            # The sandbox answers ACR's Retry-After (10 s) by default; the model says what the
            # bound assumes, so both use the same value.
            "lro_retry_after": round(model.lro_retry_after_ms / 1000.0),
        },
    )


def apply_throttle(internal: Internal, rates: dict[str, tuple[float, float]]) -> None:
    """ARM's token buckets in the sandbox, at ``rates`` (kind -> capacity, refill/s); counts
    reset so a pass's 429s are its own."""
    body: dict[str, Any] = {"enabled": True, "reset": True}
    for kind, (capacity, refill) in rates.items():
        body[kind] = {"capacity": capacity, "refill_per_second": refill}
    internal.call("POST", "/throttle", body)


def throttled(internal: Internal) -> int:
    """429s the sandbox answered since the last reset (every kind)."""
    return int(sum((internal.call("GET", "/throttle").get("throttled") or {}).values()))


def apply_model(running: Any, internal: Internal, model: LatencyModel) -> None:
    """Azure knobs over the internal endpoint; site knobs live on each in-process node."""
    apply_azure_model(internal, model)
    for site in running.sites:
        site.knobs.ssh.latency = model.ssh_rtt_ms / 1000.0
        site.knobs.pod_ready_time = model.pod_ready_ms / 1000.0
        site.knobs.restart_time = model.k3s_restart_ms / 1000.0


def arm_counts(internal: Internal) -> dict[str, int]:
    entries = internal.call("GET", "/requests")["requests"]
    arm = [e for e in entries if str(e["path"]).startswith("/subscriptions")]
    return {
        "arm_reads": sum(1 for e in arm if not e["write"]),
        "arm_writes": sum(1 for e in arm if e["write"]),
        "other_requests": len(entries) - len(arm),
    }


def cpu_seconds() -> float:
    """CPU seconds of this process (flows, tasks, in-process sandbox sites); the Prefect server
    and the sandbox child are other processes and not counted here."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def ssh_command_count(info: dict[str, Any]) -> int:
    total = 0
    for site in info["sites"]:
        logs = {site["command_log"], *(n["command_log"] for n in site.get("nodes") or [])}
        for name in logs:
            log = Path(name)
            if log.exists():
                total += sum(1 for line in log.read_text().splitlines() if line.strip())
    return total
