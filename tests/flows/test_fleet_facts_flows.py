"""fleet-status reads ARM in bulk (issue 11 item 3): a few list pages for the whole fleet, none
inside the site-status runs, the same verdicts as live reads, and a live read whenever a
site's facts are stale or do not cover a name. Real sandbox, real SDKs, a real process worker
running the fleet-shard runs.

Prints "ARM reads per site" before (each site-status reading live, as every fleet-status run
did before the bulk read) and after; ``ACR_EDGE_FACTS_SITES=10`` measures 10 sites."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from deploykit import KWARGS, worker_argv, worker_env
from flowkit import FlowSandbox, spec, start

from acr_edge.local_prefect import stop_process
from deployments.register import deploy
from flows.fleet import fleet_status, provision_fleet
from flows.models import ProvisionSpec
from flows.report import artifact_key
from flows.site_status import site_status
from model import names
from model.arm_facts import ArmFacts

pytestmark = pytest.mark.prefect
ROOT = Path(__file__).resolve().parents[2]
SITES = int(os.environ.get("ACR_EDGE_FACTS_SITES", "3"))
LISTS = ("/connectedregistries", "/tokens", "/scopemaps")
# The harness's Prefect API is on SQLite, which answers 503 under 10 concurrent site runs (issue
# 11); the ARM figures do not depend on how many sites run at once.
CONCURRENCY = 4


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("facts"), sites=SITES)
    try:
        yield box
    finally:
        box.running.stop()


@pytest.fixture(scope="module")
def provisioned(fsb: FlowSandbox) -> Iterator[FlowSandbox]:
    """Every site provisioned by provision-fleet (shards on a process worker)."""
    deploy(**KWARGS)
    log = open(os.environ.get("ACR_EDGE_FACTS_WORKER_LOG", os.devnull), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        worker_argv("--limit", "4"),
        cwd=ROOT,
        env=worker_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        out = provision_fleet(
            fsb.parent_block,
            ProvisionSpec(**spec(enable_data_endpoint=True)),
            tag=fsb.tag,
            canary=0,
            max_concurrency=CONCURRENCY,
        )
        assert out["failed"] == [], out
        yield fsb
    finally:
        stop_process(proc, timeout=10)
        log.close()


def _arm_reads(fsb: FlowSandbox) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(list pages, every other ARM read) since the log was cleared. Resource reads only:
    the cloud metadata (``/metadata/endpoints``, read once per process by the SDK's cloud
    set-up) is no subscription read and no ARM throttle counts it."""
    reads = [
        r
        for r in fsb.azure.requests("arm")
        if r["method"] == "GET" and r["path"].startswith("/subscriptions/")
    ]
    pages = [r for r in reads if r["path"].lower().rstrip("/").endswith(LISTS)]
    return pages, [r for r in reads if r not in pages]


def _verdict(rows: Any) -> list[tuple[str, str]]:
    """Each check and whether it passed; values such as a sync's age change between runs,
    and the "ARM facts" note says where the facts came from."""
    rows = json.loads(rows) if isinstance(rows, str) else rows
    return [(r["check"], r["status"]) for r in rows if r["status"] != "info"]


def _ctx(fsb: FlowSandbox) -> Any:
    from blocks.parent_registry import ParentRegistry

    parent: Any = ParentRegistry.load(fsb.parent_block)
    return parent.azure_context()


def _cr(fsb: FlowSandbox, i: int) -> str:
    return str(fsb.info["sites"][i]["name"])


@pytest.mark.timeout(1200)
def test_converged_fleet_status_reads_arm_only_in_bulk(provisioned: FlowSandbox) -> None:
    from prefect.artifacts import Artifact

    fsb = provisioned
    fsb.azure.clear_requests()
    out = fleet_status(fsb.parent_block, tag=fsb.tag, max_concurrency=CONCURRENCY)
    pages, per_site = _arm_reads(fsb)
    assert out["failed"] == [], out
    assert per_site == [], per_site  # no site-status run read ARM itself
    assert len(pages) == 3, pages  # one page per list: the sandbox pages by 100, as ARM does
    fleet_verdicts = {}
    for block in fsb.site_blocks:
        art = Artifact.get(artifact_key("site-status", block))
        assert art is not None and "ARM facts from the fleet's read at" in str(art.data)
        fleet_verdicts[block] = _verdict(art.data)

    # The same sites checked by hand, reading live: the same verdicts, 4 ARM reads a site.
    fsb.azure.clear_requests()
    for block in fsb.site_blocks:
        live = site_status(block, fsb.parent_block)
        assert _verdict(live["checks"]) == fleet_verdicts[block], block
        assert ("ARM facts", "read live") in [(r["check"], r["value"]) for r in live["checks"]]
    _, live_reads = _arm_reads(fsb)
    before = len(live_reads) / SITES
    after = len(per_site) / SITES
    fleet_pages = len(pages) / SITES
    print(
        f"\nARM reads per site, converged fleet-status of {SITES} sites: before {before:.2f} "
        f"(each site-status reading live), after {after + fleet_pages:.2f} ({after:.2f} "
        f"inside the site-status runs + {len(pages)} fleet list pages / {SITES} sites)"
    )
    assert before == 4


def test_stale_or_uncovered_facts_fall_back_to_live_reads(provisioned: FlowSandbox) -> None:
    from tasks.azure.bulk_reads import read_arm_facts

    fsb = provisioned
    block, cr = fsb.site_blocks[0], _cr(fsb, 0)
    client = names.client_token_name(cr)
    ctx = _ctx(fsb)
    try:
        facts = read_arm_facts(ctx)
    finally:
        ctx.close()

    # Fresh, covering every name: no ARM read at all.
    fsb.azure.clear_requests()
    site_status(block, fsb.parent_block, arm_facts=facts.for_sites([cr], [client]).to_json())
    assert _arm_reads(fsb)[1] == []

    # Covering the connected registry and sync token only: the client token and its scope map
    # are unknown (not "absent"), so exactly those two are read live.
    fsb.azure.clear_requests()
    site_status(block, fsb.parent_block, arm_facts=facts.for_sites([cr], []).to_json())
    paths = sorted(r["path"].rsplit("/", 2)[-2] for r in _arm_reads(fsb)[1])
    assert paths == ["scopeMaps", "tokens"], paths

    # Stale: ignored, every read live, and the run says so.
    stale = facts.for_sites([cr], [client]).to_json()
    stale["read_at"] = (facts.read_at - timedelta(minutes=16)).isoformat()
    fsb.azure.clear_requests()
    out = site_status(block, fsb.parent_block, arm_facts=stale)
    assert len(_arm_reads(fsb)[1]) == 4
    assert "is stale" in dict((r["check"], r["value"]) for r in out["checks"])["ARM facts"]


def test_facts_carry_no_password_values(provisioned: FlowSandbox) -> None:
    from tasks.azure.bulk_reads import list_tokens, read_arm_facts

    fsb = provisioned
    ctx = _ctx(fsb)
    # What ARM's token list itself answers: password names and expiries, never a value.
    listed = [p for t in list_tokens(ctx) for p in t["properties"]["credentials"]["passwords"]]
    assert listed and all(p.get("expiry") and "value" not in p for p in listed), listed
    fsb.azure.set_knobs(arm_page_size=2)  # the lists follow nextLink across pages
    try:
        fsb.azure.clear_requests()
        paged = read_arm_facts(ctx)
        pages, _ = _arm_reads(fsb)
        fsb.azure.set_knobs(arm_page_size=100)
        facts = read_arm_facts(ctx)
    finally:
        fsb.azure.set_knobs(arm_page_size=100)
        ctx.close()
    # SITES connected registries, 2 * SITES tokens and scope maps (sync + client), 2 a page
    assert len(pages) == -(-SITES // 2) + 2 * -(-2 * SITES // 2), pages
    assert paged.resources == facts.resources
    assert len(facts.resources["connectedRegistries"]) == SITES
    text = json.dumps(facts.to_json())
    assert ArmFacts.from_json(json.loads(text)) == facts
    tokens = facts.to_json()["resources"]["tokens"]
    entries = [
        p for t in tokens.values() for p in t["properties"]["credentials"].get("passwords") or []
    ]
    assert entries and all("expiry" in p and "value" not in p for p in entries), entries
    for secret in fsb.azure.secrets():
        assert secret not in text
