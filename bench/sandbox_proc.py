"""The sandbox for `acr-edge bench`, in a child process of its own.

In-process, the emulated Azure and the N simulated nodes (SSH servers, Kubernetes APIs, kubelets)
compete with the flows under test for one interpreter lock; on a 2-core machine the sandbox's
work then shows up as our wall time. As a child it gets the other core, like the real Azure and
real sites would be elsewhere. The parent reads `sandbox.json` and talks to it over its real
protocols only; the site latency knobs (which live on each simulated node) are set here.

Protocol: `python -m bench.sandbox_proc --state-dir D --sites N --ssh-rtt-ms ... ` prints one
JSON line `{"ready": true, "sandbox_json": ..., "start_s": ...}` when every knob is applied, then
runs until its stdin closes (the parent exited or is done), and stops the sandbox.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

READY_TIMEOUT = 300.0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.sandbox_proc")
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--sites", type=int, required=True)
    p.add_argument("--nodes-per-site", type=int, default=1)
    p.add_argument("--ssh-rtt-ms", type=float, default=0.0)
    p.add_argument("--pod-ready-ms", type=float, default=0.0)
    p.add_argument("--k3s-restart-ms", type=float, default=0.0)
    p.add_argument("--propagation-ms", type=float, default=0.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from sandbox.runner import start_sandbox

    t0 = time.monotonic()
    running = start_sandbox(
        args.state_dir,
        sites=args.sites,
        nodes_per_site=args.nodes_per_site,
        propagation_delay=args.propagation_ms / 1000.0,
    )
    try:
        for site in running.sites:
            for node in site.nodes:
                node.knobs.ssh.latency = args.ssh_rtt_ms / 1000.0
            site.knobs.ssh.latency = args.ssh_rtt_ms / 1000.0
            site.knobs.pod_ready_time = args.pod_ready_ms / 1000.0
            site.knobs.restart_time = args.k3s_restart_ms / 1000.0
        ready = {
            "ready": True,
            "sandbox_json": str(running.json_path),
            "start_s": round(time.monotonic() - t0, 2),
        }
        print(json.dumps(ready), flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or dies)
    finally:
        running.stop()
    return 0


class SandboxProcess:
    """Start the child, wait until it is ready; `.info` is its sandbox.json; `.stop()` ends it."""

    def __init__(self, state_dir: Path, sites: int, model: Any, *, nodes_per_site: int = 1) -> None:
        cmd = [
            sys.executable,
            "-m",
            "bench.sandbox_proc",
            "--state-dir",
            str(state_dir),
            "--sites",
            str(sites),
            "--nodes-per-site",
            str(nodes_per_site),
            "--ssh-rtt-ms",
            str(model.ssh_rtt_ms),
            "--pod-ready-ms",
            str(model.pod_ready_ms),
            "--k3s-restart-ms",
            str(model.k3s_restart_ms),
            "--propagation-ms",
            str(model.propagation_ms),
        ]
        self.log_path = state_dir / "sandbox-process.log"
        state_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=str(Path(__file__).resolve().parent.parent),
        )
        try:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()  # blocks until ready or exit
            if not line:
                self.proc.wait(timeout=READY_TIMEOUT)
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"sandbox process exited before it was ready:\n{tail}")
            ready = json.loads(line)
            self.start_s = float(ready["start_s"])
            self.info: dict[str, Any] = json.loads(Path(ready["sandbox_json"]).read_text())
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


if __name__ == "__main__":
    raise SystemExit(main())
