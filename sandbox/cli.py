"""``acr-edge sandbox up``: run the sandbox in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from sandbox.azure import SeedConfig
from sandbox.azure.config import DEFAULT_PROPAGATION_DELAY
from sandbox.azure.throttle import parse_rate_spec
from sandbox.runner import start_sandbox


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="acr-edge sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="start the Azure + K3s-site emulator and write sandbox.json")
    up.add_argument("--state-dir", type=Path, required=True)
    up.add_argument("--sites", type=int, default=0)
    up.add_argument(
        "--nodes-per-site",
        type=int,
        default=1,
        help="nodes per simulated site: node 1 the K3s server, the rest agents (default 1)",
    )
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
        "--data-endpoint",
        choices=("on", "off"),
        default="on",
        help="the seeded registry's dedicated data endpoint (default on, so the first "
        "provision passes preflight; off reproduces that preflight failure)",
    )
    up.add_argument(
        "--no-arm-throttle",
        action="store_true",
        help="serve ARM without its request throttle (on by default, at ARM's rates)",
    )
    for kind, default in (("reads", "250/25"), ("writes", "200/10"), ("deletes", "200/10")):
        up.add_argument(
            f"--arm-{kind}",
            type=_rate,
            default=None,
            metavar="CAPACITY/REFILL",
            help=f"ARM {kind} bucket per principal and subscription (default {default}; "
            "the subscription's global bucket is 15 times it)",
        )
    up.add_argument(
        "--lro-retry-after",
        type=int,
        default=None,
        help="Retry-After seconds on long-running operations (default 10, as ACR answers)",
    )
    up.add_argument(
        "--register-blocks",
        action="store_true",
        help="register Prefect blocks for the sandbox (needs a Prefect API)",
    )
    return parser


def _rate(text: str) -> dict[str, float]:
    try:
        return parse_rate_spec(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _throttle(args: argparse.Namespace) -> dict[str, Any]:
    knob: dict[str, Any] = {"enabled": not args.no_arm_throttle}
    for kind in ("reads", "writes", "deletes"):
        given = getattr(args, f"arm_{kind}")
        if given is not None:
            knob[kind] = given
    return knob


# Saves the sandbox's endpoints as acr-edge blocks. The caller (acr_edge.cli) passes it in:
# the sandbox knows no production module, so it cannot build the blocks itself.
RegisterBlocks = Callable[[dict[str, Any]], object]


def main(
    argv: Sequence[str] | None = None, *, register_blocks: RegisterBlocks | None = None
) -> int:
    args = _parser().parse_args(list(argv) if argv is not None else None)
    if args.register_blocks and register_blocks is None:
        print("--register-blocks: start the sandbox with `acr-edge sandbox up` to save blocks")
        return 2
    seed = SeedConfig(data_endpoint_enabled=args.data_endpoint == "on")
    if args.repos is not None:
        seed.repo_count = max(0, args.repos)
    started = time.perf_counter()
    if args.propagation_delay < 0:
        print("--propagation-delay must be >= 0")
        return 2
    if not 1 <= args.nodes_per_site <= 254:
        print("--nodes-per-site must be between 1 and 254")
        return 2
    if args.lro_retry_after is not None and args.lro_retry_after < 0:
        print("--lro-retry-after must be >= 0")
        return 2
    extra: dict[str, Any] = {}
    if args.lro_retry_after is not None:
        extra["lro_retry_after"] = args.lro_retry_after
    running = start_sandbox(
        args.state_dir,
        sites=args.sites,
        nodes_per_site=args.nodes_per_site,
        seed=seed,
        port=args.port,
        propagation_delay=args.propagation_delay,
        throttle=_throttle(args),
        **extra,
    )
    elapsed = time.perf_counter() - started
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.register_blocks and register_blocks is not None:
            register_blocks(running.info)
        print(f"sandbox up: {running.json_path} (started in {elapsed:.3f} s)", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        running.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
