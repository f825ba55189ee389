"""The benchmark's lower bound is a pure function of the latency model."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.model import (
    SITE_GRAPH,
    LatencyModel,
    Step,
    arm_delete_floor_s,
    arm_read_floor_s,
    arm_write_floor_s,
    bound_s,
    fleet_lower_bound,
    lro_polls,
    lro_wait_s,
    site_critical_path,
    site_lro_polls,
)

ms = st.floats(min_value=0, max_value=10_000, allow_nan=False)


def test_zero_model_has_zero_bound() -> None:
    assert site_critical_path(LatencyModel()) == 0.0


def test_arm_chain_is_the_longest_path_when_only_arm_costs() -> None:
    # preflight, scope map (synchronous), token (LRO), password (LRO): 4 calls and 2 LROs
    m = LatencyModel(arm_latency_ms=100, lro_ms=1000)
    assert site_critical_path(m) == pytest.approx(0.4 + 2.0)


def test_site_chain_adds_up_pod_ready_restart_and_ssh() -> None:
    m = LatencyModel(ssh_rtt_ms=10, pod_ready_ms=2000, k3s_restart_ms=3000)
    # helm, service ip, registries.yaml, restart, canary: 5 ssh, 2 pods, 1 restart
    assert site_critical_path(m) == pytest.approx(0.05 + 4.0 + 3.0)


def test_fleet_bound_counts_waves() -> None:
    m = LatencyModel(arm_latency_ms=1000)
    one = site_critical_path(m)
    assert fleet_lower_bound(m, 1, 10) == one
    assert fleet_lower_bound(m, 10, 10) == one
    assert fleet_lower_bound(m, 11, 10) == 2 * one
    assert fleet_lower_bound(m, 0, 10) == 0.0


@given(ms, ms, ms, ms, ms, st.integers(1, 200), st.integers(1, 50))
def test_bound_monotone_and_at_least_each_step(
    a: float, lro: float, ssh: float, pod: float, rst: float, n: int, c: int
) -> None:
    m = LatencyModel(a, lro, ssh, pod, rst)
    path = site_critical_path(m)
    assert all(path >= s.seconds(m) - 1e-9 for s in SITE_GRAPH)
    assert fleet_lower_bound(m, n, c) == pytest.approx(math.ceil(n / c) * path)
    slower = LatencyModel(a + 1, lro, ssh, pod, rst)
    assert site_critical_path(slower) > path


def test_graph_order_and_bad_input_are_refused() -> None:
    with pytest.raises(ValueError, match="depends on"):
        site_critical_path(LatencyModel(), (Step("b", ("a",)), Step("a", ())))
    with pytest.raises(ValueError):
        LatencyModel(arm_latency_ms=-1)
    with pytest.raises(ValueError):
        fleet_lower_bound(LatencyModel(), 1, 0)


# -- ARM's throttle and LRO polling ----------------------------------------------------------


def test_arm_floors_match_the_issue_figures() -> None:
    # 1,000 fresh sites x 8 writes: the first 200 at once, the rest at 10/s
    assert arm_write_floor_s(8000) == pytest.approx(780.0)
    # 10 reads per site for status: 10,000 reads at 25/s after 250
    assert arm_read_floor_s(10_000) == pytest.approx(390.0)
    assert arm_delete_floor_s(400) == pytest.approx(20.0)
    assert arm_write_floor_s(150) == 0.0  # within the burst
    assert arm_write_floor_s(0) == 0.0
    # scaled rates (a short bench run)
    assert arm_write_floor_s(30, capacity=10, refill=2) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        arm_write_floor_s(10, refill=0)
    with pytest.raises(ValueError):
        arm_read_floor_s(-1)


def test_bench_rates_are_the_sandbox_defaults() -> None:
    from bench import model
    from sandbox.azure.throttle import ARM_RATES

    reads, writes = ARM_RATES["reads"], ARM_RATES["writes"]
    assert reads.capacity == model.ARM_READ_CAPACITY
    assert reads.refill_per_second == model.ARM_READ_REFILL
    assert writes.capacity == model.ARM_WRITE_CAPACITY
    assert writes.refill_per_second == model.ARM_WRITE_REFILL


def test_bound_is_the_largest_of_path_and_floors() -> None:
    assert bound_s(12.0) == 12.0
    assert bound_s(12.0, 780.0, 390.0) == 780.0
    assert bound_s(900.0, 780.0) == 900.0


def test_an_lro_costs_whole_retry_afters() -> None:
    assert lro_wait_s(0, 10) == 0.0
    assert lro_wait_s(2, 0) == 2.0  # Retry-After 0: polled again at once
    assert lro_wait_s(2, 10) == 10.0  # first poll at once (in progress), next after 10 s
    assert lro_wait_s(10, 10) == 10.0
    assert lro_wait_s(10.5, 10) == 20.0
    assert lro_wait_s(3, 1) == 3.0
    assert lro_polls(0, 10) == 1  # done at the first poll
    assert lro_polls(2, 10) == 2  # the recorded token LRO: at once, then 11 s later
    assert lro_polls(25, 10) == 4
    assert lro_polls(1, 0) == 21  # the 50 ms hook: 1 s in progress is 20 more polls
    with pytest.raises(ValueError):
        lro_wait_s(-1, 1)


def test_positive_retry_after_lengthens_the_critical_path_and_counts_polls() -> None:
    fast = LatencyModel(arm_latency_ms=100, lro_ms=1000)
    live = LatencyModel(arm_latency_ms=100, lro_ms=1000, lro_retry_after_ms=10_000)
    # preflight, scope map, token (LRO), password (LRO): each LRO now costs 10 s, not 1 s
    assert site_critical_path(fast) == pytest.approx(0.4 + 2.0)
    assert site_critical_path(live) == pytest.approx(0.4 + 20.0)
    lros = sum(step.lros for step in SITE_GRAPH)
    assert site_lro_polls(live) == lros * 2
    assert site_lro_polls(fast) == lros * 21
    assert site_lro_polls(LatencyModel()) == lros


@given(st.floats(0, 100, allow_nan=False), st.floats(0.5, 30, allow_nan=False))
def test_lro_wait_is_at_least_the_lro_and_less_than_one_retry_after_more(
    lro: float, retry_after: float
) -> None:
    wait = lro_wait_s(lro, retry_after)
    assert lro - 1e-6 <= wait < lro + retry_after + 1e-6
    assert lro_polls(lro, retry_after) == 1 + round(wait / retry_after)
