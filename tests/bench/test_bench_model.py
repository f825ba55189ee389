"""The benchmark's lower bound is a pure function of the latency model."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.model import SITE_GRAPH, LatencyModel, Step, fleet_lower_bound, site_critical_path

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
