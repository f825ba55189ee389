"""``acr-edge sandbox up``: run the sandbox in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import importlib.util
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sandbox.azure import SeedConfig
from sandbox.azure.config import DEFAULT_PROPAGATION_DELAY
from sandbox.runner import RunningSandbox, start_sandbox


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acr-edge sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="start the Azure + K3s-site emulator and write sandbox.json")
    up.add_argument("--state-dir", type=Path, required=True)
    up.add_argument("--sites", type=int, default=0)
    up.add_argument("--port", type=int, default=0)
    up.add_argument("--repos", type=int, default=None, help="number of seeded repositories")
    up.add_argument(
        "--propagation-delay",
        type=float,
        default=DEFAULT_PROPAGATION_DELAY,
        help="seconds before new passwords/client tokens work at a connected registry "
        f"(default {DEFAULT_PROPAGATION_DELAY:g}; 0 = at once)",
    )
    up.add_argument(
        "--register-blocks",
        action="store_true",
        help="register Prefect blocks for the sandbox (needs a Prefect API)",
    )
    return parser


def _register_blocks(running: RunningSandbox) -> None:
    # HOOK (flows engineer): sandbox/blocks_registration.py provides register(info).
    if importlib.util.find_spec("sandbox.blocks_registration") is None:
        print("--register-blocks: sandbox.blocks_registration is not available yet; skipped")
        return
    from sandbox import blocks_registration  # type: ignore[attr-defined]

    blocks_registration.register(running.info)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    seed = SeedConfig()
    if args.repos is not None:
        seed.repo_count = max(0, args.repos)
    started = time.perf_counter()
    if args.propagation_delay < 0:
        print("--propagation-delay must be >= 0")
        return 2
    running = start_sandbox(
        args.state_dir,
        sites=args.sites,
        seed=seed,
        port=args.port,
        propagation_delay=args.propagation_delay,
    )
    elapsed = time.perf_counter() - started
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.register_blocks:
            _register_blocks(running)
        print(f"sandbox up: {running.json_path} (started in {elapsed:.3f} s)", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
