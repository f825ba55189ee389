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
        "arm_write_floor_s", "arm_read_floor_s", "bound_s", "arm_429s", "failed_sites",
        "second_run_wall_over_bound", "cpu_s_per_site_bench_process",
    ):  # fmt: skip
        assert key in figures
    assert figures["sites"] == 1
    assert figures["arm_writes_per_site"] > 0
    assert figures["ssh_commands_per_site"] > 0
    assert figures["second_run_arm_writes"] == 0
    assert figures["wall_s"] >= figures["lower_bound_s"] > 0
    assert figures["failed_sites"] == 0
    assert figures["bound_s"] >= figures["lower_bound_s"]  # one site: far below ARM's floors
    assert figures["arm_write_floor_s"] == figures["arm_read_floor_s"] == 0


def test_a_scaled_throttle_shows_its_floor_and_every_429_is_absorbed(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Buckets scaled down so two sites exceed them: the write floor is positive, the flows'
    shared budget paces the writes, and no site fails whatever 429s the sandbox answered."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("ACR_EDGE_ARM_RATES", raising=False)
    argv = ["--sites", "2", "--arm-writes", "4/2", "--arm-reads", "30/10"]
    code = bench_main([*argv, "--state-dir", str(tmp_path)])
    out = capsys.readouterr().out
    figures = json.loads(out[out.index("{") :])
    assert code == 0, figures
    assert figures["failed_sites"] == 0 and figures["second_run_arm_writes"] == 0
    assert figures["arm_rates"]["writes"] == {"capacity": 4.0, "refill_per_second": 2.0}
    assert figures["arm_write_floor_s"] > 0
    assert figures["bound_s"] >= figures["arm_write_floor_s"]


def test_the_fleet_path_runs_shards_on_workers_and_counts_every_process(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--workers 1`: a provision-fleet deployment run whose shards run on a process worker.
    The work happens in other processes, so the whole-tree CPU exceeds the bench process's,
    and the server's access log gives the Prefect API calls."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_LOGGING_LEVEL", raising=False)
    argv = ["--sites", "2", "--workers", "1", "--shard-size", "1", "--state-dir", str(tmp_path)]
    # No API configured, also not by a test harness another module started in this process:
    # the bench starts its own server, whose access log counts the API calls.
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        code = bench_main(argv)
    out = capsys.readouterr().out
    figures = json.loads(out[out.index("{") :])
    assert code == 0, figures
    assert figures["driver"].startswith("provision-fleet deployment run, 1 process worker(s)")
    assert figures["driver"].endswith("private server (SQLite)")
    assert figures["failed_sites"] == 0 and figures["second_run_arm_writes"] == 0
    assert figures["arm_writes_per_site"] > 0
    assert figures["prefect_api_calls_per_site"] > 0
    assert figures["second_run_prefect_api_calls_per_site"] > 0
    assert figures["cpu_s_per_site"] > figures["cpu_s_per_site_bench_process"]
    assert figures["second_run_cpu_s_per_site"] > 0
