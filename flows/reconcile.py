"""reconcile-fleet: bring every site with a stored spec up to date with its parent, daily.

Each site's desired spec is stored in Prefect (``edge-site-spec`` blocks, by site or tag), so
this run takes no spec: it starts one provision-site run per site that a stored spec applies
to, with no spec parameter, and each run resolves its own spec and lists the repositories
under its namespaces live. New repositories in the parent therefore reach every site within a
day; a site whose spec would now remove repositories waits for approval in its own run (the
other sites go on). Sites without a stored spec are left alone (and named in the log).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows import fleet_report
from flows.block_refs import ParentBlock, block_name
from flows.fleet import FLEET_RUNNER, PROVISION, in_waves, select_site_names, with_wave_args
from flows.site_specs import stored_specs
from model import site_spec, waves

FLOW = "reconcile-fleet"


def edge_sites() -> dict[str, list[str]]:
    """Every EdgeSite block name with its tags (one API call, no secrets)."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        docs = client.read_block_documents_by_type("edge-site", include_secrets=False)
    return {d.name: list(d.data.get("tags") or []) for d in docs if d.name and not d.is_anonymous}


def sites_to_reconcile() -> tuple[list[str], list[str]]:
    """(sites a stored spec applies to, sites with no stored spec)."""
    sites = edge_sites()
    specs = stored_specs()
    # A site an invalid spec was meant for is started too: its run fails naming the block.
    every = specs.valid + [bad.spec for bad in specs.invalid]
    chosen = site_spec.covered_sites(sites, every)
    log = get_run_logger()
    for name in site_spec.unknown_sites(sites, every):
        log.warning("a stored spec names site %s, but no edge-site block has that name", name)
    return chosen, sorted(set(sites) - set(chosen))


@flow(
    name=FLOW,
    flow_run_name=fleet_report.fleet_run_name(FLOW),
    task_runner=FLEET_RUNNER,  # type: ignore[arg-type]
)
@with_wave_args
def reconcile_fleet(
    parent_block: ParentBlock,
    canary: int = waves.DEFAULT_CANARY,
    wave_size: int = waves.DEFAULT_WAVE_SIZE,
    max_failures: int | None = waves.DEFAULT_MAX_FAILURES,
    shard_size: int = waves.DEFAULT_SHARD_SIZE,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Provision every site that has a stored spec (edge-site-spec block) with that spec, so
    repositories added under its namespaces reach it; removals wait for approval per site.

    Args:
        parent_block: ParentRegistry block (the parent registry and its credentials). Required.
            Example: `parent-registry`.
        {waves}
    """
    parent_block = block_name(parent_block, "parent_block")
    chosen, without = sites_to_reconcile()
    log = get_run_logger()
    if without:
        log.info(
            "%d site(s) have no stored spec and are left alone: %s",
            len(without),
            ", ".join(without),
        )
    if not chosen:
        log.warning("no site has a stored spec: nothing to reconcile (save edge-site-spec blocks)")
        return {"sites": [], "failed": [], "without_spec": without}
    options = waves.WaveOptions(
        canary=canary, wave_size=wave_size, max_failures=max_failures, shard_size=shard_size
    )
    summary = in_waves(
        FLOW,
        PROVISION,
        select_site_names(chosen, None),
        {"parent_block": parent_block},  # no spec: each run resolves its site's own
        options,
        max_concurrency,
    )
    return {**summary, "without_spec": without}
