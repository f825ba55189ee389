"""The ARM throttle is honoured across processes: two process workers (each run in its own
flow-run process) and a hand-started run in this process provision sites at once against a
sandbox whose ARM buckets are scaled down so that unpaced they would meet 429s. Every run
completes and ARM answered no 429: every request was drawn from the one shared budget.

Why 0 429s and not "every 429 absorbed": a 429 is absorbed by the retry policy anyway (the
control below shows the bursts this load makes are throttled), so only a zero proves the
budget, not the retries, kept the load under the buckets. The budget is never kinder than the
bucket: Prefect's decay rounds down, and batched slots have headroom (model.arm_budget).
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from deploykit import KWARGS, parent_ref, site_ref, wait_final, worker_argv, worker_env
from flowkit import FlowSandbox, spec, start

from deployments.register import deploy
from flows.arm_budget import RATES_ENV, draw_counts, ensure_arm_budget_limits
from flows.models import ProvisionSpec
from model.arm_budget import ArmRates, limit_name

pytestmark = pytest.mark.prefect
ROOT = Path(__file__).resolve().parents[2]
SITES = 4  # three through the workers, one hand-started here
# Small buckets (the sandbox's and the budget's): a fresh site makes 8 writes and 30-46 reads.
RATES = {
    "reads": {"capacity": 20, "refill_per_second": 8},
    "writes": {"capacity": 5, "refill_per_second": 2},
    "deletes": {"capacity": 5, "refill_per_second": 2},
}
RATES_JSON = (
    '{"reads": {"capacity": 20, "refill_per_second": 8}, '
    '"writes": {"capacity": 5, "refill_per_second": 2}, '
    '"deletes": {"capacity": 5, "refill_per_second": 2}}'
)


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("budget"), sites=SITES)
    try:
        yield box
    finally:
        box.running.stop()


@pytest.fixture(scope="module")
def workers(fsb: FlowSandbox) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two process workers on the shared pool, both configured with the scaled rates."""
    deploy(**KWARGS)
    env = {**worker_env(), RATES_ENV: RATES_JSON}
    procs = [
        subprocess.Popen(
            worker_argv("--limit", "2"),
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class _Denials(logging.Handler):
    """Counts Prefect's 'retrying' debug lines: each is one more increment call (a 423)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Unable to acquire concurrency slot" in record.getMessage():
            self.count += 1


def _control_burst(fsb: FlowSandbox) -> int:
    """Unpaced (no budget): as many writes as the runs below make, sent at once from 4
    threads, meet 429s. The retries absorb them; this only shows the load exceeds the bucket."""
    from acr_edge.sandbox_blocks import parent_block

    info = fsb.info
    block = parent_block(info)
    mgmt = block.management_client(polling_interval=0)
    rg, reg = info["resource_group"], info["registry"]

    def burst(i: int) -> None:
        for j in range(4):
            mgmt.scope_maps.begin_create(
                rg, reg, f"ctl{i}x{j}", {"properties": {"actions": ["repositories/a/content/read"]}}
            ).result()

    threads = [threading.Thread(target=burst, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mgmt.close()
    throttled: int = fsb.azure.throttle_status()["throttled"]["writes"]
    return throttled


@pytest.mark.timeout(1500)  # paced on purpose: about 60 writes at 2/s, on a busy machine
def test_throttle_honoured_across_two_workers_and_a_hand_started_run(
    fsb: FlowSandbox,
    workers: list[subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect.client.orchestration import get_client

    from flows.provision_site import provision_site

    fsb.azure.set_throttle(enabled=True, reset=True, **RATES)
    assert _control_burst(fsb) > 0, "the scaled bucket must throttle an unpaced burst"
    fsb.azure.set_throttle(reset=True, **RATES)  # full buckets, counts zeroed
    fsb.azure.clear_requests()

    monkeypatch.setenv(RATES_ENV, RATES_JSON)  # the hand-started run's process
    body = ProvisionSpec(**spec(enable_data_endpoint=True)).model_dump(mode="json")
    *via_workers, by_hand = fsb.site_blocks
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("provision-site/provision-site")
        runs = [
            client.create_flow_run_from_deployment(
                dep.id,
                parameters={
                    "site_block": site_ref(s),
                    "parent_block": parent_ref(fsb.parent_block),
                    "spec": body,
                },
            )
            for s in via_workers
        ]
    denials = _Denials()
    concurrency_log = logging.getLogger("prefect._internal.concurrency")
    concurrency_log.addHandler(denials)
    old_level = concurrency_log.level
    concurrency_log.setLevel(logging.DEBUG)
    before = draw_counts()
    try:
        result = provision_site(
            by_hand, fsb.parent_block, ProvisionSpec(**spec(enable_data_endpoint=True))
        )
    finally:
        concurrency_log.removeHandler(denials)
        concurrency_log.setLevel(old_level)
    states = {str(r.id): wait_final(r.id, timeout=900) for r in runs}

    assert result["outcome"] == "converged", result
    for run_id, state in states.items():
        assert state is not None and state.is_completed(), (run_id, state)
    status = fsb.azure.throttle_status()
    assert status["throttled"] == {"reads": 0, "writes": 0, "deletes": 0}, status
    sub = fsb.info["subscription_id"]
    arm = [r for r in fsb.azure.requests("arm") if r["path"].startswith("/subscriptions/")]
    writes = sum(1 for r in arm if r["method"] in ("PUT", "PATCH", "POST"))
    # The load did exceed the burst: without pacing, the writes would have met the bucket.
    assert writes > RATES["writes"]["capacity"] * 2, writes
    assert all(r["status"] != 429 for r in arm)

    # The limits exist with ARM's shape at the scaled rates (headroom for batched slots);
    # provisioning deletes nothing, so its limit is created on the first delete or by deploy.
    rates = ArmRates.from_json(RATES_JSON)
    with get_client(sync_client=True) as client:
        for kind in ("reads", "writes"):
            gcl = client.read_global_concurrency_limit_by_name(limit_name(kind, sub))
            assert gcl.active and gcl.slot_decay_per_second == rates.of(kind).refill_per_second
            assert 1 <= gcl.limit <= rates.of(kind).capacity

    # This process's share: ARM requests drawn and the Prefect calls they took.
    after = draw_counts()
    requests = sum(v["requests"] - before.get(k, {}).get("requests", 0) for k, v in after.items())
    calls = sum(v["api_calls"] - before.get(k, {}).get("api_calls", 0) for k, v in after.items())
    print(
        f"hand-started site: {requests} ARM requests drawn, {calls} draws "
        f"+ {denials.count} denied increments = {calls + denials.count} Prefect calls"
    )
    assert 0 < calls <= requests


def test_ensure_converges_a_changed_limit(fsb: FlowSandbox) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate

    sub = "9d2b7a3e-0000-4000-8000-00000000abcd"
    names = ensure_arm_budget_limits(sub)
    assert names == [limit_name(k, sub) for k in ("reads", "writes", "deletes")]
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(
            names[1], GlobalConcurrencyLimitUpdate(limit=9999, slot_decay_per_second=0.0)
        )
    ensure_arm_budget_limits(sub)
    with get_client(sync_client=True) as client:
        writes = client.read_global_concurrency_limit_by_name(names[1])
    assert (writes.limit, writes.slot_decay_per_second) == (196, 10.0)
