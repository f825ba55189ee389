"""provision-site converges in ONE run with transient faults on every Azure path and on SSH.

Faults (fixed seeds): every ARM, Entra ID and data-plane request fails with probability
``rate``, split evenly over 429, 500, 503 (429/503 with ``Retry-After: 0``) and a dropped
connection; on the site, that fraction of SSH connections is dropped at accept (the sandbox's
``drop_rate``). The second test also drops the connection under that fraction of commands
after they ran, before their exit status (``drop_exec_rate``: the client cannot tell whether
the command happened). The flow is the real one, run as a black box; the only settings
raised are the retry attempts (block fields ``retry_attempts``), as ``ATTEMPTS`` says.

Printed per rate (``pytest -s``): faults fired per kind and path family, SSH drops, runs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flowkit import FlowSandbox, spec, start

from flows.models import ProvisionSpec
from flows.provision_site import provision_site

pytestmark = pytest.mark.prefect

KINDS = ("429", "500", "503", "drop")
SEED = 7
MAX_RUNS = 3
# Attempts per request / per re-read (first try included), raised with the rate so that one
# request's chance of failing every attempt stays near 1e-4: 0.2**6, 0.4**10, 0.6**18.
ATTEMPTS = {0.2: 6, 0.4: 10, 0.6: 18}


def _inject(fsb: FlowSandbox, rate: float) -> list[Any]:
    """Rules in order, each conditional on the earlier ones not firing, so every kind fires
    with probability rate/4 and some fault with probability ``rate``."""
    fsb.azure.faults.reseed(SEED)
    share, left, rules = rate / len(KINDS), 1.0, []
    for kind in KINDS:
        rules.append(fsb.azure.add_fault(kind, rate=share / left, times=None))
        left -= share
    return rules


def _tune(fsb: FlowSandbox, attempts: int) -> None:
    from blocks.edge_site import EdgeSite
    from blocks.parent_registry import ParentRegistry

    parent: Any = ParentRegistry.load(fsb.parent_block)
    parent.retry_attempts = attempts
    parent.retry_base_delay = 0.01  # keep the test quick; the cap is what bounds the waits
    parent.retry_max_delay = 0.05
    parent.save(fsb.parent_block, overwrite=True)
    site: Any = EdgeSite.load(fsb.site_blocks[0])
    site.retry_attempts = attempts
    site.save(fsb.site_blocks[0], overwrite=True)


@pytest.fixture
def box(tmp_path: Path) -> Iterator[FlowSandbox]:
    fsb = start(tmp_path, sites=1)
    try:
        yield fsb
    finally:
        fsb.azure.clear_faults()
        fsb.running.stop()


@pytest.mark.parametrize("rate", sorted(ATTEMPTS))
def test_provision_converges_in_one_run_under_transient_faults(
    box: FlowSandbox, rate: float
) -> None:
    _converges_in_one_run(box, rate, under_commands=False)


@pytest.mark.parametrize("rate", sorted(ATTEMPTS))
def test_provision_converges_in_one_run_when_ssh_drops_under_commands(
    box: FlowSandbox, rate: float
) -> None:
    _converges_in_one_run(box, rate, under_commands=True)


def _converges_in_one_run(fsb: FlowSandbox, rate: float, *, under_commands: bool) -> None:
    node = fsb.site()
    cr = fsb.info["sites"][0]["name"]
    _tune(fsb, ATTEMPTS[rate])
    rules = _inject(fsb, rate)
    node.ssh.reseed(SEED)
    node.knobs.ssh.drop_rate = rate
    node.knobs.ssh.drop_exec_rate = rate if under_commands else 0.0

    runs, failures, result = 0, [], None
    while runs < MAX_RUNS and result is None:
        runs += 1
        try:
            out = provision_site(
                fsb.site_blocks[0],
                fsb.parent_block,
                ProvisionSpec(**spec(enable_data_endpoint=True)),
            )
        except Exception as exc:  # a failed run: counted, and the next run is tried
            failures.append(f"run {runs}: {type(exc).__name__}: {exc}"[:400])
            continue
        result = out

    fired = Counter({rule.kind: rule.fired for rule in rules})
    faulted = Counter(
        (r["kind"], "drop" if r["status"] == 0 else str(r["status"]))
        for r in fsb.azure.requests()
        if r["status"] in (0, 429, 500, 503)
    )
    ssh = {"connects": node.ssh.connections, "refused": node.ssh.dropped}
    ssh |= {"commands": node.ssh.execs, "dropped after running": node.ssh.exec_dropped}
    print(
        f"\nrate {rate:.0%} attempts {ATTEMPTS[rate]} drops under commands {under_commands}: "
        f"runs {runs}, "
        f"Azure faults fired {sum(fired.values())} {dict(fired)} "
        f"by path {dict(sorted(faulted.items()))}, of {len(fsb.azure.requests())} requests; "
        f"SSH {ssh}"
    )
    for line in failures:
        print("  ", line)
    fsb.azure.clear_faults()
    node.knobs.ssh.drop_rate = node.knobs.ssh.drop_exec_rate = 0

    assert sum(fired.values()) > 0  # the faults did fire (SSH ones are printed: a single
    # connect at 20% may well get through)
    if under_commands:
        assert node.ssh.exec_dropped > 0
    assert result is not None and runs == 1, failures
    assert result["outcome"] == "converged", result
    _assert_one_of_each(fsb, cr)
    again = provision_site(fsb.site_blocks[0], fsb.parent_block, ProvisionSpec(**spec()))
    assert again["outcome"] == "already converged" and again["writes"] == 0, again


def _assert_one_of_each(fsb: FlowSandbox, cr: str) -> None:
    """No duplicate resource; one live password slot per token; one release, one revision
    history that the site's Helm and K3s show once."""
    snapshot = fsb.azure.snapshot()
    (registry,) = snapshot.values()
    for kind in ("scopeMaps", "tokens", "connectedRegistries"):
        names = [r["name"] for r in registry[kind]]
        assert len(names) == len(set(names)), (kind, names)
    connected = [r["name"] for r in registry["connectedRegistries"]]
    assert connected == [cr], connected
    tokens = {r["name"]: r for r in registry["tokens"]}
    assert len(tokens) == 2, sorted(tokens)  # the sync token and the client token
    for name, token in tokens.items():
        slots = token["properties"]["credentials"].get("passwords") or []
        assert len(slots) == 1, (name, [s["name"] for s in slots])
        assert len(fsb.azure.password_values(name)) == 1, name
    state = fsb.azure.resource("connectedRegistries", cr)
    assert state is not None and state["properties"]["connectionState"] == "Online"
