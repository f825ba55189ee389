"""The wave planner: canary, waves, shards and the failure budget (pure)."""

from __future__ import annotations

import pytest

from model.errors import InputError
from model.waves import Rollout, WaveOptions, next_wave, plan_waves, split_shards

SITES = [f"s{i:02d}" for i in range(1, 12)]


def test_canary_then_waves_of_wave_size_in_order() -> None:
    waves = plan_waves(SITES, WaveOptions(canary=1, wave_size=4))
    assert waves == [["s01"], SITES[1:5], SITES[5:9], SITES[9:]]
    assert plan_waves(SITES, WaveOptions(canary=0, wave_size=100)) == [SITES]
    assert plan_waves(SITES[:2], WaveOptions(canary=5)) == [SITES[:2]]  # all in the canary
    assert plan_waves([], WaveOptions()) == []


def test_shards_are_few_and_balanced() -> None:
    wave = [f"x{i}" for i in range(25)]
    shards = split_shards(wave, 20)
    assert [len(s) for s in shards] == [13, 12]
    assert [x for s in shards for x in s] == wave
    assert split_shards(wave, 25) == [wave]
    assert [len(s) for s in split_shards(wave, 1)] == [1] * 25
    assert split_shards([], 20) == []


def test_bad_options_are_refused() -> None:
    for bad in ({"canary": -1}, {"wave_size": 0}, {"shard_size": 0}, {"max_failures": -1}):
        with pytest.raises(InputError):
            WaveOptions(**bad)  # type: ignore[arg-type]


def test_a_wave_starts_only_within_the_budget_and_says_why() -> None:
    first = next_wave(0, 3, 0, 0)
    assert first.proceed and "wave 1/3" in first.reason
    assert next_wave(1, 3, 0, 0).proceed
    halted = next_wave(1, 3, 1, 0)
    assert not halted.proceed and "over the failure budget of 0" in halted.reason
    assert next_wave(1, 3, 2, 2).proceed  # at the budget still goes on
    assert not next_wave(2, 3, 3, 2).proceed
    assert next_wave(2, 3, 50, None).proceed  # no budget
    done = next_wave(3, 3, 0, 0)
    assert not done.proceed and "all 3 wave(s) done" in done.reason


def test_rollout_lists_ok_failed_and_not_started() -> None:
    waves = plan_waves(SITES, WaveOptions(canary=1, wave_size=5))
    roll = Rollout(waves, max_failures=0)
    assert roll.decide().proceed
    roll.record(ok=[], failed=["s01"])
    decision = roll.decide()
    assert not decision.proceed and roll.halted == decision
    assert roll.failed == ["s01"] and roll.ok == []
    assert roll.not_started == SITES[1:]

    roll = Rollout(waves, max_failures=1)
    for wave in waves:
        assert roll.decide().proceed
        roll.record(ok=[s for s in wave if s != "s03"], failed=[s for s in wave if s == "s03"])
    assert not roll.decide().proceed and roll.halted is None  # finished, not halted
    assert roll.not_started == [] and roll.failed == ["s03"] and len(roll.ok) == 10
