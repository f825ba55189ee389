"""`deployments/prefect.yaml`, generated from the same definitions `acr-edge deploy` applies
(`acr-edge deploy --write-prefect-yaml PATH`; a test keeps the checked-in file in step)."""

from __future__ import annotations

from typing import Any

from deployments.definitions import DEFAULT_WORK_POOL, definitions

PREFECT_YAML_HEADER = """\
# acr-edge deployments for `prefect deploy --all` (run from this folder, with the acr-edge
# package installed on the worker host: entrypoints are module paths, no code is pulled).
# `acr-edge deploy` applies the same definitions (deployments/definitions.py), also registers
# the block types, creates the work pool and adds help text to the run forms; a test keeps this
# file in step with definitions.py. Regenerate it with `acr-edge deploy --write-prefect-yaml`.
#
# Fleet flows run their sites in waves of fleet-shard runs; each shard runs the per-site flows
# (provision-site, rotate-client-token, rotate-sync-credential, site-status, teardown-site) as
# named subflows, and those deployments stay for hand-started runs, so keep those names.
# fleet-status checks every EdgeSite block every 15 minutes; to narrow it, give its schedule
# parameters, e.g. {sites: [plant01, plant02]} or {tag: north}. Workers: fleet runs wait on
# their shard runs, so give the pool room for both.
"""


def prefect_yaml(work_pool: str = DEFAULT_WORK_POOL, prefect_version: str | None = None) -> str:
    """``deployments/prefect.yaml`` as the default definitions describe it."""
    import yaml
    from prefect import __version__

    entries: list[dict[str, Any]] = []
    for defn in definitions():
        limit: Any = defn.concurrency_limit
        if defn.collision_strategy:
            limit = {"limit": defn.concurrency_limit, "collision_strategy": defn.collision_strategy}
        schedules: list[dict[str, Any]] = []
        for s in defn.schedules:
            sched: dict[str, Any] = (
                {"cron": s.cron}
                if s.cron
                else {"interval": s.interval_seconds, "anchor_date": s.anchor}
            )
            sched.update(timezone=s.timezone, slug=s.slug)
            if s.parameters:
                sched["parameters"] = s.parameters
            schedules.append(sched)
        entries.append(
            {
                "name": defn.name,
                "entrypoint": defn.entrypoint,
                "description": defn.description,
                "tags": list(defn.tags),
                "parameters": defn.parameters,
                "concurrency_limit": limit,
                "work_pool": {"name": work_pool, "work_queue_name": "default"},
                "schedules": schedules,
            }
        )
    doc = {
        "name": "acr-edge",
        "prefect-version": prefect_version or __version__,
        "pull": [],
        "deployments": entries,
    }
    return PREFECT_YAML_HEADER + yaml.safe_dump(doc, sort_keys=False, width=100)
