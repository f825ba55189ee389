"""Fleet flows: provision, rotate, check or tear down many sites, in waves, sharded.

Sites are EdgeSite block documents chosen by name or tag. A fleet run goes in waves
(model.waves): a canary wave of the first ``canary`` sites, then waves of ``wave_size``; the
next wave starts only while the failed sites so far are within ``max_failures``. Each wave is
split into shards of at most ``shard_size`` sites, and each shard is one run of the
``fleet-shard`` deployment (flows/fleet_shard.py), spread over the work pool's workers, which
runs its sites as named subflows (``provision-<site>`` ...) with their own artifacts. So a
process starts per shard, not per site. The fleet run's summary artifact names each site, its
run and the run's URL; a halted fleet names the failed sites and those not started, emits
``acr-edge.fleet.wave-halted`` and fails. ARM pacing is not done here: every ARM request draws
from the shared rate limits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from flows import fleet_report, plan_runs
from flows.block_refs import ParentBlock, SiteBlock, block_name, block_names
from flows.fleet_facts import FleetFacts
from flows.fleet_shard import (
    PROVISION,
    ROTATE,
    ROTATE_SYNC,
    STATUS,
    TEARDOWN,
    SiteJob,
    failed_row,
    run_shard,
)
from flows.models import ProvisionSpec
from model import waves
from model.errors import InputError
from model.names import validate_block_name
from tasks import sync_rotation

HALTED_EVENT = fleet_report.HALTED_EVENT
# One thread per shard of a wave (the default pool is cpu+4 threads: 6 shards on 2 cores).
FLEET_RUNNER: ThreadPoolTaskRunner[Any] = ThreadPoolTaskRunner(max_workers=64)
PROVISION_DEPLOYMENT = PROVISION.deployment
ROTATE_DEPLOYMENT = ROTATE.deployment
STATUS_DEPLOYMENT = STATUS.deployment
__all__ = ["PROVISION", "ROTATE", "ROTATE_SYNC", "STATUS", "TEARDOWN", "SiteJob"]


def select_sites(
    sites: Sequence[object] | None, tag: str | None, *, default_all: bool = False
) -> list[str]:
    """Block names of the chosen EdgeSite documents (see :func:`select_site_names`)."""
    return list(select_site_names(sites, tag, default_all=default_all))


def select_site_names(
    picked: Sequence[object] | None, tag: str | None, *, default_all: bool = False
) -> dict[str, str]:
    """Block name -> site (connected registry) name of the chosen EdgeSite documents (given
    as saved blocks or names), read in one call; refuses unknown names and empty picks.

    With ``default_all`` (rotation, status) choosing neither means every edge-site block;
    provisioning always needs an explicit choice.
    """
    from prefect.client.orchestration import get_client

    sites = block_names(picked, "sites")
    if sites is not None and tag is not None:
        raise InputError(
            "choose sites either by name (sites=[...]) or by tag (tag=...), exactly one",
            resource="sites/tag",
        )
    if sites is None and tag is None and not default_all:
        raise InputError(
            "choose sites either by name (sites=[...]) or by tag (tag=...), exactly one",
            resource="sites/tag",
        )
    with get_client(sync_client=True) as client:
        docs = client.read_block_documents_by_type("edge-site", include_secrets=False)
    known = {d.name: d for d in docs if d.name}
    if sites is not None:
        missing = [s for s in sites if s not in known]
        if missing:
            raise InputError(
                f"no edge-site block named {', '.join(missing)}",
                resource="sites",
                fix="create the blocks first (prefect block ls)",
            )
        chosen = list(dict.fromkeys(sites))
    elif tag is not None:
        validate_block_name(tag, "tag")  # the same rule deploy's --status-tag follows
        chosen = sorted(n for n, d in known.items() if tag in (d.data.get("tags") or []))
        if not chosen:
            raise InputError(f"no edge-site block has tag {tag!r}", resource="tag")
    else:
        chosen = sorted(known)
    if not chosen:
        raise InputError(
            "no edge-site blocks exist", resource="sites", fix="save an EdgeSite block per site"
        )
    return {n: str(known[n].data.get("name") or "") for n in chosen}


def in_waves(
    fleet: str,
    job: SiteJob,
    names: dict[str, str],
    parameters: dict[str, Any],
    options: waves.WaveOptions,
    max_concurrency: int,
    site_facts: Callable[[list[str]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Run ``job`` on the sites in waves of shards (one fleet-shard run per shard), the next
    wave only within the failure budget; writes the ``<fleet>-summary`` table artifact and
    raises PermanentError naming failed and not-started sites when any site did not complete.
    ``site_facts``: each site's ARM facts for a wave (fleet-status), passed to its shard."""
    if max_concurrency < 1:
        raise InputError(f"max_concurrency={max_concurrency} must be >= 1", resource="fleet")
    logger = get_run_logger()
    roll = waves.Rollout(waves.plan_waves(list(names), options), options.max_failures)
    rows: list[dict[str, Any]] = []
    progress = fleet_report.Progress(fleet, len(names))
    order = {site: i for i, site in enumerate(names)}
    while (decision := roll.decide()).proceed:
        logger.info("%s: %s", fleet, decision.reason)
        wave_no = roll.done_waves + 1
        shards = waves.split_shards(roll.waves[roll.done_waves], options.shard_size)
        facts = site_facts(roll.waves[roll.done_waves]) if site_facts else {}
        started: list[tuple[list[str], PrefectFuture[dict[str, Any]]]] = []
        for i, shard in enumerate(shards, 1):
            label = f"w{wave_no}-{i}of{len(shards)}"
            shard_params = {
                "kind": job.kind,
                "site_blocks": shard,
                "parameters": parameters,
                "lock_names": {s: names[s] for s in shard if names[s]},
                "max_concurrency": max_concurrency,
                "label": label,
            }
            if facts:
                shard_params["arm_facts"] = {s: facts[s] for s in shard if s in facts}
            started.append((shard, run_shard.submit(job, label, shard, shard_params)))
        shard_of = {id(f): shard for shard, f in started}
        wave_rows: list[dict[str, Any]] = []
        for future in as_completed([f for _, f in started]):
            shard = shard_of[id(future)]
            try:
                got = future.result()["rows"]
            except Exception as exc:  # the shard run could not be started or watched
                got = [failed_row(job, s, "NotStarted", str(exc)) for s in shard]
            wave_rows += got
            progress.add(got)
        wave_rows.sort(key=lambda r: order.get(r["site"], 0))  # plan order, not finish order
        rows += wave_rows
        roll.record(
            ok=[r["site"] for r in wave_rows if r["ok"]],
            failed=[r["site"] for r in wave_rows if not r["ok"]],
        )
    not_started = roll.not_started
    if roll.halted is not None:
        logger.warning("%s: %s", fleet, roll.halted.reason)
        fleet_report.emit_halted(fleet, roll.failed, not_started, roll.halted.reason)
        rows += [
            {**failed_row(job, s, "NotStarted", roll.halted.reason), "run": ""} for s in not_started
        ]
    halted = roll.halted.reason if roll.halted else None
    return fleet_report.finish(
        fleet, rows, not_started, halted, with_picture=job.kind == STATUS.kind
    )


def _options(
    canary: int, wave_size: int, max_failures: int | None, shard_size: int
) -> waves.WaveOptions:
    return waves.WaveOptions(
        canary=canary, wave_size=wave_size, max_failures=max_failures, shard_size=shard_size
    )


F = TypeVar("F", bound=Callable[..., Any])
WAVE_ARGS = """        canary: Sites in the first (canary) wave; 0 for none. Default: `1`
            (fleet-status: `0`). Example: `2`.
        wave_size: Sites per later wave. Default: `25`. Example: `50`.
        max_failures: Failed sites tolerated before no further wave starts (0: stop after
            the first wave with a failure; empty: no budget). Default: `0` (fleet-status:
            empty). Example: `3`.
        shard_size: Sites per fleet-shard run (one process on a worker) within a wave.
            Default: `20`. Example: `10`.
        max_concurrency: Sites running at the same time within each shard. Default: `10`.
            Example: `5`."""


def _doc(fn: F) -> F:
    """The wave options' Args: text, one copy for every fleet flow (the run form reads it)."""
    fn.__doc__ = (fn.__doc__ or "").replace("        {waves}", WAVE_ARGS)
    return fn


with_wave_args = _doc  # for fleet flows defined elsewhere (reconcile-fleet)


@flow(
    name="provision-fleet",
    flow_run_name=fleet_report.fleet_run_name("provision-fleet"),
    task_runner=FLEET_RUNNER,  # type: ignore[arg-type]
)
@_doc
def provision_fleet(
    parent_block: ParentBlock,
    spec: ProvisionSpec | None = None,
    sites: list[SiteBlock] | None = None,
    tag: str | None = None,
    canary: int = waves.DEFAULT_CANARY,
    wave_size: int = waves.DEFAULT_WAVE_SIZE,
    max_failures: int | None = waves.DEFAULT_MAX_FAILURES,
    shard_size: int = waves.DEFAULT_SHARD_SIZE,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Provision the chosen sites in waves, each site a provision-site run (named
    provision-<site>) inside a fleet-shard run.

    Args:
        parent_block: ParentRegistry block (the parent registry and its credentials). Required.
            Example: `parent-registry`.
        spec: What to provision on every chosen site; empty: each site's own stored spec. Default:
            empty. Example: `{"namespaces": ["samples"]}`.
        sites: EdgeSite blocks to provision (or use tag). Default: empty. Example: `["plant01",
            "plant02"]`.
        tag: Provision every EdgeSite block carrying this tag (or use sites). Default: empty.
            Example: `north`.
        {waves}
    """
    parent_block = block_name(parent_block, "parent_block")
    if spec is not None and spec.dry_run:
        plan_runs.mark_plan()  # every site's run is a plan: so is the fleet's
    options = _options(canary, wave_size, max_failures, shard_size)
    names = select_site_names(sites, tag)
    params: dict[str, Any] = {"parent_block": parent_block}
    if spec is not None:  # omitted: provision-site resolves each site's stored spec
        params["spec"] = spec.model_dump(mode="json")
    return in_waves("provision-fleet", PROVISION, names, params, options, max_concurrency)


@flow(
    name="rotate-fleet-tokens",
    flow_run_name=fleet_report.fleet_run_name("rotate-fleet-tokens"),
    task_runner=FLEET_RUNNER,  # type: ignore[arg-type]
)
@_doc
def rotate_fleet_tokens(
    parent_block: ParentBlock,
    sites: list[SiteBlock] | None = None,
    tag: str | None = None,
    lifetime_days: int = 90,
    canary: int = waves.DEFAULT_CANARY,
    wave_size: int = waves.DEFAULT_WAVE_SIZE,
    max_failures: int | None = waves.DEFAULT_MAX_FAILURES,
    shard_size: int = waves.DEFAULT_SHARD_SIZE,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Rotate each chosen site's client token where due (or finish an interrupted rotation),
    in waves, each site a rotate-client-token run (rotate-<site>).

    Args:
        parent_block: ParentRegistry block (the parent registry and its credentials). Required.
            Example: `parent-registry`.
        sites: EdgeSite blocks (leave empty with no tag for every site). Default: empty.
            Example: `["plant01", "plant02"]`.
        tag: Only EdgeSite blocks carrying this tag. Default: empty. Example: `north`.
        lifetime_days: Lifetime of each new client password, in days. Default: `90`. Example: `30`.
        {waves}
    """
    parent_block = block_name(parent_block, "parent_block")
    options = _options(canary, wave_size, max_failures, shard_size)
    names = select_site_names(sites, tag, default_all=True)
    params = {"parent_block": parent_block, "lifetime_days": lifetime_days}
    return in_waves("rotate-fleet-tokens", ROTATE, names, params, options, max_concurrency)


@flow(
    name="fleet-status",
    flow_run_name=fleet_report.fleet_run_name("fleet-status"),
    task_runner=FLEET_RUNNER,  # type: ignore[arg-type]
)
@_doc
def fleet_status(
    parent_block: ParentBlock,
    sites: list[SiteBlock] | None = None,
    tag: str | None = None,
    canary: int = 0,
    wave_size: int = waves.DEFAULT_WAVE_SIZE,
    max_failures: int | None = None,
    shard_size: int = waves.DEFAULT_SHARD_SIZE,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Check every chosen site (a site-status run each, status-<site>); fails when any site is
    unhealthy or unreachable, naming those sites and their runs. Read-only, so by default no
    canary and no failure budget: every site is checked.

    Args:
        parent_block: ParentRegistry block (the parent registry and its credentials). Required.
            Example: `parent-registry`.
        sites: EdgeSite blocks (leave empty with no tag for every site). Default: empty.
            Example: `["plant01", "plant02"]`.
        tag: Only EdgeSite blocks carrying this tag. Default: empty. Example: `north`.
        {waves}
    """
    parent_block = block_name(parent_block, "parent_block")
    options = _options(canary, wave_size, max_failures, shard_size)
    names = select_site_names(sites, tag, default_all=True)
    params = {"parent_block": parent_block}
    facts = FleetFacts(parent_block, names).for_wave  # one bulk ARM read, not four per site
    return in_waves("fleet-status", STATUS, names, params, options, max_concurrency, facts)


@flow(
    name="teardown-fleet",
    flow_run_name=fleet_report.fleet_run_name("teardown-fleet"),
    task_runner=FLEET_RUNNER,  # type: ignore[arg-type]
)
@_doc
def teardown_fleet(
    parent_block: ParentBlock,
    sites: list[SiteBlock] | None = None,
    tag: str | None = None,
    dry_run: bool = False,
    canary: int = waves.DEFAULT_CANARY,
    wave_size: int = waves.DEFAULT_WAVE_SIZE,
    max_failures: int | None = waves.DEFAULT_MAX_FAILURES,
    shard_size: int = waves.DEFAULT_SHARD_SIZE,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Tear down the chosen sites in waves (only what acr-edge owns; each site's
    teardown-<site> run says what it left). Sites must be chosen explicitly.

    Args:
        parent_block: ParentRegistry block (the parent registry and its credentials). Required.
            Example: `parent-registry`.
        sites: EdgeSite blocks to tear down (or use tag). Default: empty. Example: `["plant01",
            "plant02"]`.
        tag: Tear down every EdgeSite block carrying this tag (or use sites). Default: empty.
            Example: `north`.
        dry_run: Every site's run lists its deletions and writes nothing. Default: `false`. Example:
            `true`.
        {waves}
    """
    parent_block = block_name(parent_block, "parent_block")
    if dry_run:
        plan_runs.mark_plan()  # every site's run is a plan: so is the fleet's
    options = _options(canary, wave_size, max_failures, shard_size)
    names = select_site_names(sites, tag)  # never "every site" by default: this deletes
    params = {"parent_block": parent_block, "dry_run": dry_run}
    return in_waves("teardown-fleet", TEARDOWN, names, params, options, max_concurrency)


@flow(
    name="rotate-fleet-sync",
    flow_run_name=fleet_report.fleet_run_name("rotate-fleet-sync"),
    task_runner=FLEET_RUNNER,  # type: ignore[arg-type]
)
@_doc
def rotate_fleet_sync(
    parent_block: ParentBlock,
    sites: list[SiteBlock] | None = None,
    tag: str | None = None,
    lifetime_days: int = sync_rotation.SYNC_PASSWORD_DAYS,
    lead_days: int = sync_rotation.SYNC_LEAD_DAYS,
    canary: int = waves.DEFAULT_CANARY,
    wave_size: int = waves.DEFAULT_WAVE_SIZE,
    max_failures: int | None = waves.DEFAULT_MAX_FAILURES,
    shard_size: int = waves.DEFAULT_SHARD_SIZE,
    max_concurrency: int = 10,
) -> dict[str, Any]:
    """Rotate each chosen site's sync password where due (or finish an interrupted rotation),
    in waves, each site a rotate-sync-credential run (rotate-sync-<site>).

    Args:
        parent_block: ParentRegistry block (the parent registry and its credentials). Required.
            Example: `parent-registry`.
        sites: EdgeSite blocks (leave empty with no tag for every site). Default: empty.
            Example: `["plant01", "plant02"]`.
        tag: Only EdgeSite blocks carrying this tag. Default: empty. Example: `north`.
        lifetime_days: Lifetime of each new sync password, in days. Default: `365`. Example: `30`.
        lead_days: Rotate when the password in use expires within this many days. Default: `30`.
            Example: `14`.
        {waves}
    """
    parent_block = block_name(parent_block, "parent_block")
    options = _options(canary, wave_size, max_failures, shard_size)
    names = select_site_names(sites, tag, default_all=True)
    params = {"parent_block": parent_block, "lifetime_days": lifetime_days, "lead_days": lead_days}
    return in_waves("rotate-fleet-sync", ROTATE_SYNC, names, params, options, max_concurrency)
