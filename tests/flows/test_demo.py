"""`acr-edge demo` end to end on the sandbox, in-process against the session's Prefect API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from acr_edge.demo import main as demo_main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any], Path]:
    tmp = tmp_path_factory.mktemp("demo")
    report, state = tmp / "report.json", tmp / "state"
    code = demo_main(["--report", str(report), "--state-dir", str(state), "--teardown"])
    return code, json.loads(report.read_text()), state


def test_demo_provisions_rotates_and_reports_both_sites(
    demo_run: tuple[int, dict[str, Any], Path],
) -> None:
    code, report, _ = demo_run
    assert code == 0, json.dumps(report, indent=2)
    assert report["ok"] is True
    sites = report["sites"]
    assert len(sites) == 2
    assert len({s["name"] for s in sites}) == 2
    for site in sites:
        assert site["connection_state"] == "Online"
        assert site["activation"] == "Active"
        assert site["canary_pull"] == "ok"
        assert site["client_password_slot"] in ("password1", "password2", "1", "2")
        assert site["rerun_writes"] == 0  # provisioning a converged site writes nothing
    assert [s["rotated"] for s in sites] == [True, False]
    # rotation moved site 1 to the other slot than a freshly provisioned site uses
    assert sites[0]["client_password_slot"] != sites[1]["client_password_slot"]


def test_demo_teardown_reports_what_is_left_read_back(
    demo_run: tuple[int, dict[str, Any], Path],
) -> None:
    code, report, state = demo_run
    assert code == 0, json.dumps(report, indent=2)
    info = json.loads((state / "sandbox.json").read_text())
    for site, node_info in zip(report["sites"], info["sites"], strict=True):
        assert site["teardown"] == {
            "arm_owned_left": 0,
            "nodes_clean": True,
            "release_removed": True,
            "left": [],
        }, site
        assert any("helm " in line and " uninstall " in line for line in _commands(node_info)), (
            site["name"]
        )


def _commands(site_info: dict[str, Any]) -> list[str]:
    return Path(site_info["command_log"]).read_text().splitlines()


def test_demo_keeps_the_state_dir_and_writes_no_secret_into_the_report(
    demo_run: tuple[int, dict[str, Any], Path],
) -> None:
    _, report, state = demo_run
    info = json.loads((state / "sandbox.json").read_text())
    assert report["state_dir"] == str(state.resolve())
    for site in info["sites"]:
        assert Path(site["command_log"]).read_text().strip()  # the flows really ran commands
    text = json.dumps(report)
    assert info["client_secret"] not in text
    for site in info["sites"]:
        key = Path(site["private_key_path"]).read_text()
        assert key.splitlines()[1] not in text


def test_demo_refuses_bad_arguments_before_starting_anything(tmp_path: Path) -> None:
    assert demo_main(["--sites", "0", "--state-dir", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


def test_summary_calls_each_site_by_its_block_name_as_runs_and_artifacts_do() -> None:
    from acr_edge.demo import DemoReport, SiteReport, render

    site = SiteReport(name="site1", block="sandbox-site-1", transport="https")
    text = render(DemoReport(ok=True, prefect_api="", state_dir=None, seconds=1.0, sites=[site]))
    assert "sandbox-site-1 (site1)" in text.splitlines()[1]
