"""`acr-edge demo`: the whole story on the embedded sandbox in one command.

Starts the Azure + K3s sandbox with two sites, a Prefect API (yours if PREFECT_API_URL answers,
else a private one), saves the sandbox's blocks, provisions both sites, rotates one site's
client token, runs site-status for both and prints a short summary. Exit status 0 only when
every step succeeded and both sites are Online, Active and pass a canary pull. With
``--teardown`` every site is then torn down through the teardown-site flow and the report says,
read back from ARM, the nodes and Helm, what is left (nothing, for the demo to pass).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from acr_edge.local_prefect import isolate_prefect_home

DEMO_NAMESPACES = ["samples", "edge/apps"]
ROTATED_SITE_INDEX = 1
# Inside rotate-client-token's default 14-day lead time, so its rotation is due.
SHORT_PASSWORD_DAYS = 7


@dataclass
class SiteReport:
    name: str
    block: str
    connection_state: str = "unknown"
    activation: str = "unknown"
    canary_pull: str = "not run"
    client_password_slot: str | None = None
    rotated: bool = False
    provision: str = "not run"
    transport: str = "unknown"
    # Writes made by provisioning the site a second time: the idempotence proof, must be 0.
    rerun_writes: int | None = None
    # One entry per node: name, role, mirror, hosts_toml, canary_pull, restarted.
    nodes: list[dict[str, Any]] = field(default_factory=list)
    restarted: dict[str, bool] = field(default_factory=dict, repr=False)
    # --teardown: {arm_owned_left, nodes_clean, release_removed, left}, read back afterwards.
    teardown: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            not self.errors
            and self.connection_state == "Online"
            and self.activation == "Active"
            and self.canary_pull == "ok"
            and self.rerun_writes == 0
            and bool(self.nodes)
            and all(
                n["mirror"] == "ok"
                and n["hosts_toml"] == "ok"
                and n["canary_pull"] == "ok"
                and n["tls"] in ("ok", "http")
                for n in self.nodes
            )
            and (
                self.teardown is None
                or (
                    self.teardown["arm_owned_left"] == 0
                    and self.teardown["nodes_clean"] is True
                    and self.teardown["release_removed"] is True
                )
            )
        )


@dataclass
class DemoReport:
    ok: bool
    prefect_api: str
    state_dir: str | None
    seconds: float
    sites: list[SiteReport]
    errors: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for site, raw in zip(self.sites, data["sites"], strict=True):
            raw["ok"] = site.ok
        return data


def _state_error(state: Any) -> str | None:
    """None when the run completed; else its failure text (already secret-free: flows redact)."""
    if state.is_completed():
        return None
    try:
        state.result()
    except Exception as exc:  # report whatever the run failed with
        return f"{type(exc).__name__}: {exc}"
    return f"run ended {state.name}"


def _apply_status(report: SiteReport, facts: dict[str, Any]) -> None:
    """Pick the demo's columns out of site-status's facts."""
    report.connection_state = str(facts.get("connection_state") or "unknown")
    report.activation = str(facts.get("activation") or "unknown")
    report.transport = str(facts.get("transport") or "unknown")
    canary = next((c for c in facts.get("checks", []) if c.get("check") == "canary pull"), None)
    if canary is not None:
        report.canary_pull = "ok" if canary.get("status") == "ok" else str(canary.get("value"))
    slots = facts.get("client_password_in_use") or []
    report.client_password_slot = ",".join(str(s) for s in slots) or None
    report.nodes = [
        {
            "name": n["name"],
            "role": n["role"],
            "mirror": n["mirror"],
            "hosts_toml": n["hosts_toml"],
            "canary_pull": n["canary_pull"],
            "tls": n.get("tls", "unknown"),
            "restarted": report.restarted.get(n["name"], False),
        }
        for n in facts.get("nodes") or []
    ]


def _teardown(reports: list[SiteReport], parent_block: str) -> None:
    """Tear every site down through the teardown-site flow, then read back what is left."""
    from acr_edge.teardown_readback import read_back, registry_host
    from flows.teardown_site import teardown_site

    for rep in reports:
        host = registry_host(rep.block)
        print(f"[demo] teardown-site {rep.block} ...")
        state = teardown_site(site_block=rep.block, parent_block=parent_block, return_state=True)
        err = _state_error(state)
        if err:
            rep.errors.append(f"teardown: {err}")
        rep.teardown = read_back(rep.block, parent_block, host)


def run_demo(
    state_dir: Path,
    *,
    sites: int = 2,
    nodes_per_site: int = 1,
    transport: str = "https",
    teardown: bool = False,
) -> DemoReport:
    from acr_edge.local_prefect import prefect_api, quiet_runs
    from acr_edge.sandbox_blocks import PARENT_BLOCK, register, site_block_name
    from flows.models import ProvisionSpec
    from flows.provision_site import provision_site
    from flows.rotate_client_token import rotate_client_token
    from flows.site_status import site_status
    from sandbox.runner import start_sandbox

    started = time.monotonic()
    errors: list[str] = []
    reports: list[SiteReport] = []
    with prefect_api() as api, quiet_runs():
        where = "private Prefect server" if api.own else f"Prefect UI: {api.ui_url}"
        print(f"[demo] Prefect API {api.url} ({where})")
        print(
            f"[demo] starting sandbox with {sites} sites of {nodes_per_site} node(s) in {state_dir}"
        )
        running = start_sandbox(state_dir, sites=sites, nodes_per_site=nodes_per_site)
        try:
            info = running.info
            blocks = register(info, transport=transport)
            print(f"[demo] saved blocks: {', '.join(blocks)}")
            reports = [
                SiteReport(name=s["name"], block=site_block_name(i))
                for i, s in enumerate(info["sites"], 1)
            ]

            def spec_for(index: int) -> ProvisionSpec:
                # The sandbox registry starts like a fresh Premium one: data endpoint off.
                # The site to rotate gets a short-lived client password, so rotation is due.
                return ProvisionSpec(
                    namespaces=DEMO_NAMESPACES,
                    enable_data_endpoint=True,
                    client_password_days=SHORT_PASSWORD_DAYS if index == ROTATED_SITE_INDEX else 90,
                )

            for index, rep in enumerate(reports, 1):
                spec = spec_for(index)
                print(f"[demo] provision-site {rep.block} ({rep.name}) ...")
                state = provision_site(
                    site_block=rep.block, parent_block=PARENT_BLOCK, spec=spec, return_state=True
                )
                err = _state_error(state)
                rep.provision = "ok" if err is None else "failed"
                if err:
                    rep.errors.append(f"provision: {err}")
                else:
                    for row in state.result().get("nodes") or []:
                        rep.restarted[row["name"]] = bool(row.get("restarted"))
            specs = {rep.block: spec_for(index) for index, rep in enumerate(reports, 1)}
            rotated = reports[ROTATED_SITE_INDEX - 1]
            if not rotated.errors:
                print(f"[demo] rotate-client-token {rotated.block} ...")
                state = rotate_client_token(
                    site_block=rotated.block, parent_block=PARENT_BLOCK, return_state=True
                )
                err = _state_error(state)
                if err:
                    rotated.errors.append(f"rotate: {err}")
                else:
                    outcome = state.result()
                    rotated.rotated = bool(outcome.get("changed"))
                    if not rotated.rotated:
                        rotated.errors.append(f"rotate: nothing rotated ({outcome.get('outcome')})")
            for rep in reports:
                if rep.errors:
                    continue
                print(f"[demo] provision-site {rep.block} again (converged: must write nothing)")
                state = provision_site(
                    site_block=rep.block,
                    parent_block=PARENT_BLOCK,
                    spec=specs[rep.block],
                    return_state=True,
                )
                err = _state_error(state)
                if err:
                    rep.errors.append(f"re-provision: {err}")
                else:
                    rep.rerun_writes = int(state.result()["writes"])
                    if rep.rerun_writes:
                        rep.errors.append(f"re-provision wrote {rep.rerun_writes} time(s)")
                    again = [
                        r["name"] for r in state.result().get("nodes") or [] if r.get("restarted")
                    ]
                    if again:
                        rep.errors.append(f"re-provision restarted {', '.join(again)}")
            for rep in reports:
                print(f"[demo] site-status {rep.block} ...")
                state = site_status(
                    site_block=rep.block, parent_block=PARENT_BLOCK, return_state=True
                )
                err = _state_error(state)
                if err:
                    rep.errors.append(f"status: {err}")
                else:
                    _apply_status(rep, state.result())
            if teardown:
                _teardown(reports, PARENT_BLOCK)
        except Exception as exc:  # the demo reports, then exits non-zero
            errors.append(f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            running.stop()
    ok = not errors and bool(reports) and all(r.ok for r in reports)
    return DemoReport(
        ok=ok,
        prefect_api=api.url,
        state_dir=str(state_dir),
        seconds=round(time.monotonic() - started, 1),
        sites=reports,
        errors=errors,
    )


def render(report: DemoReport) -> str:
    lines = [f"acr-edge demo: {'OK' if report.ok else 'FAILED'} in {report.seconds} s"]
    for s in report.sites:
        mark = "ok " if s.ok else "BAD"
        lines.append(
            # The block's name, as every run and artifact calls the site; the connected
            # registry's name beside it.
            f"  [{mark}] {s.block} ({s.name})  {s.connection_state}/{s.activation} over "
            f"{s.transport}  "
            f"canary pull: {s.canary_pull}  client password slot: {s.client_password_slot}"
            + ("  (rotated)" if s.rotated else "")
            + (f"  re-run writes: {s.rerun_writes}" if s.rerun_writes is not None else "")
        )
        for n in s.nodes:
            lines.append(
                f"        node {n['name']:<10} {n['role']:<6} mirror: {n['mirror']}  "
                f"hosts.toml: {n['hosts_toml']}  tls: {n['tls']}  canary: {n['canary_pull']}"
                + ("  (restarted)" if n["restarted"] else "")
            )
        if s.teardown is not None:
            t = s.teardown
            lines.append(
                f"        teardown: ARM resources left {t['arm_owned_left']}  nodes clean: "
                f"{t['nodes_clean']}  release removed: {t['release_removed']}"
            )
            lines.extend(f"          left: {x}" for x in t.get("left") or [])
        lines.extend(f"        {e}" for e in s.errors)
    lines.extend(f"  error: {e}" for e in report.errors)
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="acr-edge demo", description=__doc__)
    p.add_argument("--report", type=Path, help="also write the summary as JSON to FILE")
    p.add_argument(
        "--state-dir",
        type=Path,
        help="keep the sandbox's files here (sandbox.json, node roots, command logs)",
    )
    p.add_argument("--sites", type=int, default=2, help=argparse.SUPPRESS)
    p.add_argument(
        "--transport",
        choices=("https", "http"),
        default="https",
        help="https (default): every node trusts the site CA and pulls over TLS; http: the "
        "first version's plain-http mode (no encryption, no server identity)",
    )
    p.add_argument(
        "--nodes-per-site",
        type=int,
        default=1,
        help="nodes per simulated site: node 1 a server, the rest agents (default 1)",
    )
    p.add_argument(
        "--teardown",
        action="store_true",
        help="end by tearing every site down; the report says what is left (read back)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.sites < 1:
        print("acr-edge demo: --sites must be >= 1", file=sys.stderr)
        return 2
    if not 1 <= args.nodes_per_site <= 16:
        print("acr-edge demo: --nodes-per-site must be between 1 and 16", file=sys.stderr)
        return 2
    isolate_prefect_home()
    keep = args.state_dir is not None
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="acr-edge-demo-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = run_demo(
            state_dir.resolve(),
            sites=args.sites,
            nodes_per_site=args.nodes_per_site,
            transport=args.transport,
            teardown=args.teardown,
        )
    finally:
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)
    if not keep:
        report.state_dir = None
    print(render(report))
    if args.report:
        args.report.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
