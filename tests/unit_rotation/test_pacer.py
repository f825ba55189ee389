"""The fleet's ARM write pacer never exceeds its budget over any window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.pacer import Pacer, TokenBucket


@given(
    st.lists(
        st.tuples(st.floats(0, 5, allow_nan=False), st.integers(0, 10)), min_size=1, max_size=60
    )
)
def test_writes_never_outrun_capacity_plus_refill(requests: list[tuple[float, int]]) -> None:
    bucket = TokenBucket(capacity=10, refill_per_second=10, tokens=10, updated=0)
    now = 0.0
    starts: list[tuple[float, int]] = []
    for gap, cost in requests:
        now += gap
        bucket, wait = bucket.take(now, cost)
        assert wait >= 0
        starts.append((now + wait, cost))
    # Over any interval [a, b] the writes started are at most capacity + refill * (b - a).
    for i, (a, _) in enumerate(starts):
        total = 0
        for b, cost in starts[i:]:
            if b < a:
                continue
            total += cost
            assert total <= 10 + 10 * (b - a) + 1e-6


def test_burst_then_paced() -> None:
    t = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        t[0] += s

    pacer = Pacer(TokenBucket(capacity=10, refill_per_second=10), clock=lambda: t[0], sleep=sleep)
    for _ in range(10):
        assert pacer.acquire(1) == 0
    assert pacer.acquire(8) == pytest.approx(0.8)
    assert pacer.acquire(8) == pytest.approx(0.8)
    assert pacer.waited == pytest.approx(1.6)


def test_bad_buckets_refused() -> None:
    with pytest.raises(ValueError):
        TokenBucket(capacity=0)
    with pytest.raises(ValueError):
        TokenBucket().take(0, -1)


def test_oversize_cost_waits_for_its_deficit() -> None:
    bucket, wait = TokenBucket(capacity=10, refill_per_second=10, updated=0).take(0, 25)
    assert wait == pytest.approx(1.5)
    _, wait2 = bucket.take(0, 1)
    assert wait2 == pytest.approx(1.6)
