"""`acr-edge` console command: a thin dispatcher; each subcommand lives with what it runs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any


def _sandbox(argv: Sequence[str]) -> int:
    from acr_edge.sandbox_blocks import register
    from sandbox.cli import main as sandbox_main

    def register_and_say(info: dict[str, Any]) -> list[str]:
        # Say what was saved: these are the names runs and `acr-edge deploy` refer to.
        names = register(info)
        print(f"saved blocks: {', '.join(names)} (parent first; the deployments' default)")
        return names

    return sandbox_main(list(argv), register_blocks=register_and_say)


def _demo(argv: Sequence[str]) -> int:
    from acr_edge.demo import main as demo_main

    return demo_main(list(argv))


def _deploy(argv: Sequence[str]) -> int:
    from deployments.register import main as deploy_main

    return deploy_main(list(argv))


def _bench(argv: Sequence[str]) -> int:
    from bench.cli import main as bench_main

    return bench_main(list(argv))


def _sudoers(argv: Sequence[str]) -> int:
    from acr_edge.sudoers import main as sudoers_main

    return sudoers_main(list(argv))


COMMANDS: dict[str, tuple[Callable[[Sequence[str]], int], str]] = {
    "sandbox": (_sandbox, "run the Azure + K3s-site emulator (`sandbox up`)"),
    "demo": (_demo, "provision two sandbox sites end to end, rotate a token, report status"),
    "deploy": (_deploy, "block types, work pool, deployments (--notify BLOCK: alert automations)"),
    "bench": (_bench, "benchmarks against the sandbox; prints JSON figures"),
    "sudoers": (_sudoers, "print the sudoers recipe: the only commands acr-edge runs as root"),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        parser = argparse.ArgumentParser(prog="acr-edge", description=__doc__)
        parser.add_argument("command", choices=sorted(COMMANDS))
        parser.print_help()
        print("\ncommands:\n" + "\n".join(f"  {k:<8} {v[1]}" for k, v in COMMANDS.items()))
        return 0 if args and args[0] in ("-h", "--help") else 2
    handler, _ = COMMANDS[args[0]]
    return handler(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
