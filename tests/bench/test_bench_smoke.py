"""`acr-edge bench --sites 1` runs end to end and prints the figures (structure only: the
timings are not asserted). It also exercises the private Prefect server the CLI starts when no
API is configured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main as bench_main


def test_bench_one_site_prints_figures_and_a_converged_rerun_writes_nothing(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    code = bench_main(["--sites", "1", "--arm-latency-ms", "5", "--state-dir", str(tmp_path)])
    out = capsys.readouterr().out
    figures = json.loads(out[out.index("{") :])
    assert code == 0, figures
    for key in (
        "wall_s", "lower_bound_s", "wall_over_bound", "arm_reads_per_site",
        "arm_writes_per_site", "ssh_commands_per_site", "second_run_arm_writes", "peak_rss_mb",
    ):  # fmt: skip
        assert key in figures
    assert figures["sites"] == 1
    assert figures["arm_writes_per_site"] > 0
    assert figures["ssh_commands_per_site"] > 0
    assert figures["second_run_arm_writes"] == 0
    assert figures["wall_s"] >= figures["lower_bound_s"] > 0
