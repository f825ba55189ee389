"""Fleet rollouts in waves with a failure budget (pure: no I/O).

A fleet operation runs a canary wave (the first ``canary`` sites) and then waves of
``wave_size`` sites. The next wave starts only while the failures so far are within
``max_failures`` (``None``: no budget, every wave runs); a wave already running always
finishes. Each wave is split into shards of at most ``shard_size`` sites, one process (one
deployment run) per shard.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from model.errors import InputError

DEFAULT_CANARY = 1
DEFAULT_WAVE_SIZE = 25
DEFAULT_SHARD_SIZE = 20
DEFAULT_MAX_FAILURES = 0


@dataclass(frozen=True)
class WaveOptions:
    canary: int = DEFAULT_CANARY
    wave_size: int = DEFAULT_WAVE_SIZE
    max_failures: int | None = DEFAULT_MAX_FAILURES
    shard_size: int = DEFAULT_SHARD_SIZE

    def __post_init__(self) -> None:
        if self.canary < 0:
            raise InputError(f"canary={self.canary} must be >= 0", resource="canary")
        if self.wave_size < 1:
            raise InputError(f"wave_size={self.wave_size} must be >= 1", resource="wave_size")
        if self.shard_size < 1:
            raise InputError(f"shard_size={self.shard_size} must be >= 1", resource="shard_size")
        if self.max_failures is not None and self.max_failures < 0:
            raise InputError(
                f"max_failures={self.max_failures} must be >= 0 (or empty for no budget)",
                resource="max_failures",
            )


def plan_waves(sites: list[str], options: WaveOptions) -> list[list[str]]:
    """The canary wave (if any) then waves of ``wave_size``, in the order given."""
    canary = sites[: options.canary]
    rest = sites[options.canary :]
    waves = [canary] if canary else []
    waves += [rest[i : i + options.wave_size] for i in range(0, len(rest), options.wave_size)]
    return waves


def split_shards(wave: list[str], shard_size: int) -> list[list[str]]:
    """As few shards as ``shard_size`` allows, balanced (25 at 20 per shard: 13 + 12), so no
    process is started for a stub of one or two sites."""
    if not wave:
        return []
    count = -(-len(wave) // shard_size)
    base, extra = divmod(len(wave), count)
    shards, start = [], 0
    for i in range(count):
        size = base + (1 if i < extra else 0)
        shards.append(wave[start : start + size])
        start += size
    return shards


@dataclass(frozen=True)
class WaveDecision:
    """Whether the next wave starts, and why (for the log and the summary)."""

    proceed: bool
    reason: str


def next_wave(
    done_waves: int, total_waves: int, failures: int, max_failures: int | None
) -> WaveDecision:
    """Decide whether wave ``done_waves`` (0-based) starts, given the failures so far."""
    if done_waves >= total_waves:
        return WaveDecision(False, f"all {total_waves} wave(s) done")
    budget = "no failure budget" if max_failures is None else f"budget {max_failures}"
    if max_failures is not None and failures > max_failures:
        return WaveDecision(
            False,
            f"{failures} site(s) failed after wave {done_waves}/{total_waves}, over the "
            f"failure budget of {max_failures}: later waves not started",
        )
    if done_waves == 0:
        return WaveDecision(True, f"wave 1/{total_waves} starts ({budget})")
    return WaveDecision(
        True,
        f"wave {done_waves + 1}/{total_waves} starts: {failures} failure(s) so far, "
        f"within {budget}",
    )


@dataclass
class Rollout:
    """Bookkeeping of a fleet run over its waves: which sites are ok, failed, not started."""

    waves: list[list[str]]
    max_failures: int | None
    ok: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    done_waves: int = 0
    halted: WaveDecision | None = None

    def decide(self) -> WaveDecision:
        decision = next_wave(self.done_waves, len(self.waves), len(self.failed), self.max_failures)
        if not decision.proceed and self.done_waves < len(self.waves):
            self.halted = decision
        return decision

    def record(self, ok: Iterable[str], failed: Iterable[str]) -> None:
        """The outcome of the wave just finished."""
        self.ok += list(ok)
        self.failed += list(failed)
        self.done_waves += 1

    @property
    def not_started(self) -> list[str]:
        return [s for wave in self.waves[self.done_waves :] for s in wave]
