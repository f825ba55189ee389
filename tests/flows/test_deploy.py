"""`acr-edge deploy` against the real Prefect API (harness), read back through the API, and a
real process worker running a deployment's flow run against the sandbox."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploykit import (
    ARGS,
    PARENT,
    POOL,
    STATUS_SITES,
    TZ,
    ref_name,
    site_ref,
    wait_final,
    worker_argv,
    worker_env,
)
from prefect.client.orchestration import get_client
from prefect.exceptions import ObjectNotFound

from deployments.definitions import INTERVAL_ANCHOR, definitions
from deployments.register import main as deploy_main
from model.errors import InputError

FLOWS = (
    "provision-site",
    "rotate-client-token",
    "site-status",
    "rotate-sync-credential",
    "teardown-site",
    "re-home-site",
    "provision-fleet",
    "rotate-fleet-tokens",
    "fleet-status",
    "teardown-fleet",
    "rotate-fleet-sync",
    "reconcile-fleet",
)
# Started only by the fleet flows (no parent_block of its own: the shard passes the fleet's).
FLEET_INTERNAL = ("fleet-shard",)
PER_SITE = (
    "provision-site",
    "rotate-client-token",
    "site-status",
    "rotate-sync-credential",
    "teardown-site",
    "re-home-site",
)


def _deployment(name: str) -> Any:
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(f"{name}/{name}")


@pytest.fixture(scope="module")
def first_deploy_output() -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert deploy_main(ARGS) == 0
    return buf.getvalue()


def test_deploy_registers_pool_block_types_and_every_deployment(first_deploy_output: str) -> None:
    assert f"work-pool  {POOL}" in first_deploy_output
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool(POOL)
        assert pool.type == "process"
        slugs = {bt.slug for bt in client.read_block_types()}
    assert {"parent-registry", "edge-site", "edge-site-spec"} <= slugs
    for name in FLOWS:
        dep = _deployment(name)
        assert dep.work_pool_name == POOL
        assert dep.entrypoint.startswith("flows.")
        assert dep.path is None  # module entrypoint: nothing tied to this checkout
        assert "acr-edge" in dep.tags
        assert dep.description
        assert ref_name(dep.parameters["parent_block"]) == PARENT  # a reference, not a name


def test_second_deploy_updates_in_place(first_deploy_output: str, capsys: Any) -> None:
    ids = {name: _deployment(name).id for name in FLOWS}
    assert deploy_main(ARGS) == 0
    out = capsys.readouterr().out
    for name in FLOWS:
        assert f"{name}/{name}" in out
        line = next(li for li in out.splitlines() if f"{name}/{name}" in li)
        assert " updated " in f"{line} "
        assert _deployment(name).id == ids[name]
    assert "exists" in next(li for li in out.splitlines() if POOL in li)
    # schedules were replaced, not duplicated
    assert len(_deployment("rotate-fleet-tokens").schedules) == 1
    assert len(_deployment("fleet-status").schedules) == 1
    assert len(_deployment("rotate-fleet-sync").schedules) == 1


def test_schedules_read_back_with_cron_interval_timezone_and_site_parameters(
    first_deploy_output: str,
) -> None:
    rotate = _deployment("rotate-fleet-tokens")
    [sched] = rotate.schedules
    assert sched.schedule.cron == "0 3 * * 1"
    assert sched.schedule.timezone == TZ
    assert sched.active
    assert sched.parameters == {}  # every site, rotated where due
    # Sync passwords rotate on the client tokens' schedule (one run per site, where due).
    [sync] = _deployment("rotate-fleet-sync").schedules
    assert (sync.schedule.cron, sync.schedule.timezone) == ("0 3 * * 1", TZ)
    assert sync.active and sync.parameters == {}
    assert not _deployment("teardown-fleet").schedules  # never on a schedule: it deletes
    # Daily reconcile: every site with a stored spec, no spec parameter.
    [daily] = _deployment("reconcile-fleet").schedules
    assert (daily.schedule.cron, daily.schedule.timezone) == ("0 2 * * *", TZ)
    assert daily.active and daily.parameters == {}
    assert "spec" not in _deployment("reconcile-fleet").parameters
    status = _deployment("fleet-status")
    [every] = status.schedules
    assert every.active
    assert every.schedule.interval.total_seconds() == 15 * 60
    assert every.schedule.timezone == TZ
    # anchored on a quarter hour, so runs land on :00/:15/:30/:45 whenever deploy ran
    assert every.schedule.anchor_date.timestamp() % 900 == 0
    # --site-status-sites narrows it, to references of those blocks
    assert [ref_name(s) for s in every.parameters["sites"]] == list(STATUS_SITES)
    assert every.slug == "every-15-minutes"
    # a scheduled fleet-status run overlapping the previous one is dropped, not queued
    assert status.global_concurrency_limit.limit == 1
    assert status.concurrency_options.collision_strategy == "CANCEL_NEW"
    for name in PER_SITE:  # started by hand or by a fleet flow, never on their own schedule
        dep = _deployment(name)
        assert not dep.schedules
        assert dep.global_concurrency_limit.limit == 10
    assert _deployment("rotate-fleet-tokens").global_concurrency_limit.limit == 1


def test_status_schedule_covers_every_site_unless_narrowed() -> None:
    def every(**kw: Any) -> dict[str, Any]:
        defn = next(d for d in definitions(**kw) if d.name == "fleet-status")
        [sched] = defn.schedules
        assert sched.interval_seconds == 15 * 60 and sched.anchor == INTERVAL_ANCHOR
        return sched.parameters

    assert every() == {}
    assert every(status_tag="north") == {"tag": "north"}
    assert every(status_sites=("a-1", "b-2")) == {"sites": ["a-1", "b-2"]}
    with pytest.raises(InputError, match="not both"):
        every(status_sites=("a-1",), status_tag="north")


def test_parameter_schemas_describe_the_ui_form(first_deploy_output: str) -> None:
    schema = _deployment("provision-site").parameter_openapi_schema
    props = schema["properties"]
    assert {"site_block", "parent_block", "spec"} <= set(props)
    assert set(schema["required"]) >= {"site_block"}
    assert "spec" not in schema["required"]  # none: the site's stored spec
    assert props["site_block"]["description"].startswith("EdgeSite block")
    spec_def = schema["definitions"]["ProvisionSpec"]
    assert spec_def["properties"]["namespaces"]["description"]
    assert spec_def["properties"]["mode"]["enum"] == ["ReadOnly", "ReadWrite"]
    status = _deployment("site-status").parameter_openapi_schema
    assert "site_block" in status["required"]

    rotate_site = _deployment("rotate-client-token").parameter_openapi_schema
    assert "site_block" in rotate_site["required"]
    rprops = rotate_site["properties"]
    assert rprops["lifetime_days"]["default"] == 90
    assert rprops["lead_days"]["default"] == 14
    for name in ("site_block", "parent_block", "lifetime_days", "lead_days"):
        assert rprops[name]["description"], name
    # names and numbers only: no secret field in the form
    assert all(p.get("format") != "password" for p in rprops.values())

    for fleet in (
        "rotate-fleet-tokens",
        "fleet-status",
        "provision-fleet",
        "teardown-fleet",
        "rotate-fleet-sync",
    ):
        fprops = _deployment(fleet).parameter_openapi_schema["properties"]
        for name in ("parent_block", "sites", "tag", "max_concurrency"):
            assert fprops[name]["description"], (fleet, name)
        assert fprops["max_concurrency"]["default"] == 10
    rotate = _deployment("rotate-fleet-tokens").parameter_openapi_schema["properties"]
    assert rotate["lifetime_days"]["default"] == 90
    teardown = _deployment("teardown-fleet").parameter_openapi_schema["properties"]
    assert teardown["dry_run"]["default"] is False
    assert "dry_run" in _deployment("teardown-site").parameter_openapi_schema["properties"]
    assert "spec" in _deployment("re-home-site").parameter_openapi_schema["required"]

    # Sites and parents are picked from the saved blocks: the UI renders a block-document
    # picker for a parameter that refers to a block type's definition, and nothing else.
    for name in FLOWS:
        schema = _deployment(name).parameter_openapi_schema
        for param, slug in (("site_block", "edge-site"), ("parent_block", "parent-registry")):
            if param in schema["properties"]:
                prop = schema["properties"][param]
                assert "anyOf" not in prop, (name, param)  # no free-text branch
                definition = prop["$ref"].rpartition("/")[2]
                assert schema["definitions"][definition]["block_type_slug"] == slug
        if "sites" in schema["properties"]:
            options = schema["properties"]["sites"]["anyOf"]
            assert {"type": "array", "items": {"$ref": "#/definitions/EdgeSite"}} in options

    # Every parameter of every deployment explains itself in the form (from the flow's Args:).
    undescribed = [
        (name, param)
        for name in FLOWS
        for param, prop in _deployment(name).parameter_openapi_schema["properties"].items()
        if not str(prop.get("description") or "").strip()
    ]
    assert not undescribed, f"parameters without a description: {undescribed}"

    # Titled as the spec's fields are (sentence case), not with the Python name.
    assert props["site_block"]["title"] == "Site (EdgeSite block)"
    assert props["dry_run"]["title"] == "Dry run"
    raw = [
        (name, param)
        for name in (*FLOWS, *FLEET_INTERNAL)
        for param, prop in _deployment(name).parameter_openapi_schema["properties"].items()
        if prop.get("title") == param or not str(prop.get("title"))[:1].isupper()
    ]
    assert not raw, f"parameters titled with their Python name: {raw}"


def test_bad_input_is_refused_before_any_write(capsys: Any) -> None:
    for bad in (
        ["--work-pool", "never-made", "--timezone", "Mars/Olympus"],
        ["--work-pool", "never-made", "--rotate-cron", "every monday"],
        ["--work-pool", "never-made", "--site-status-sites", "Bad_Site"],
        ["--work-pool", "never-made", "--site-status-sites", "a-1", "--status-tag", "north"],
    ):
        assert deploy_main(bad) == 2
        assert "Fix:" in capsys.readouterr().err
    with get_client(sync_client=True) as client, pytest.raises(ObjectNotFound):
        client.read_work_pool("never-made")


def test_prefect_yaml_matches_the_python_definitions() -> None:
    from prefect.client.schemas.schedules import IntervalSchedule

    from deployments.register import prefect_yaml

    text = Path("deployments/prefect.yaml").read_text()
    doc = yaml.safe_load(text)
    regenerated = prefect_yaml(prefect_version=doc["prefect-version"])
    assert text == regenerated, "regenerate: acr-edge deploy --write-prefect-yaml <path>"
    by_name = {d["name"]: d for d in doc["deployments"]}
    assert set(by_name) == set(FLOWS) | set(FLEET_INTERNAL)
    for defn in definitions():
        entry = by_name[defn.name]
        assert entry["entrypoint"] == defn.entrypoint
        assert entry["description"] == defn.description
        assert tuple(entry["tags"]) == defn.tags
        assert entry["parameters"] == defn.parameters
        limit = entry["concurrency_limit"]
        if defn.collision_strategy:
            assert limit == {
                "limit": defn.concurrency_limit,
                "collision_strategy": defn.collision_strategy,
            }
        else:
            assert limit == defn.concurrency_limit
        assert entry["work_pool"]["name"] == "acr-edge"
        got = [
            (s.get("cron"), s.get("interval"), s.get("anchor_date"), s["timezone"], s["slug"])
            for s in entry["schedules"]
        ]
        assert got == [
            (s.cron, s.interval_seconds, s.anchor, s.timezone, s.slug) for s in defn.schedules
        ]
        for s in entry["schedules"]:
            if "interval" in s:  # what `prefect deploy` makes of it: the same quarter-hour grid
                sched = IntervalSchedule(
                    interval=s["interval"], anchor_date=s["anchor_date"], timezone=s["timezone"]
                )
                assert sched.anchor_date.timestamp() % 900 == 0


# ---- a real worker executes a deployment's run against the sandbox -------------------------


@pytest.fixture(scope="module")
def sandbox_blocks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from acr_edge.sandbox_blocks import register
    from sandbox.runner import start_sandbox

    running = start_sandbox(tmp_path_factory.mktemp("deploy-sandbox"), sites=1)
    try:
        register(running.info)
        yield running.info
    finally:
        running.stop()


def test_worker_provisions_a_sandbox_site_from_the_deployment(
    first_deploy_output: str, sandbox_blocks: dict[str, Any]
) -> None:
    from prefect.exceptions import PrefectHTTPStatusError

    from blocks.edge_site import EdgeSite
    from blocks.parent_registry import ParentRegistry

    # Deployed again now the blocks are saved: the parent default is the saved block's id, so
    # the form shows it chosen (before, the sandbox's blocks did not exist: a slug reference).
    assert deploy_main(ARGS) == 0
    dep = _deployment("provision-site")
    parent: Any = ParentRegistry.load(PARENT)
    assert dep.parameters["parent_block"] == {
        "$ref": {"block_document_id": str(parent._block_document_id)}
    }
    site: Any = EdgeSite.load("sandbox-site-1")
    spec = {"namespaces": ["samples"], "enable_data_endpoint": True}
    with get_client(sync_client=True) as client:
        # A typed name is refused at submit, as the form refuses it: the field is a picker.
        with pytest.raises(PrefectHTTPStatusError, match=r"409|422"):
            client.create_flow_run_from_deployment(
                dep.id, parameters={"site_block": "sandbox-site-1", "spec": spec}
            )
        # What the form's picker submits: the saved block's document id.
        picked = {"$ref": {"block_document_id": str(site._block_document_id)}}
        run = client.create_flow_run_from_deployment(
            dep.id, parameters={"site_block": picked, "spec": spec}
        )
        # A script may refer to the block by slug instead.
        scripted = client.create_flow_run_from_deployment(
            dep.id, parameters={"site_block": site_ref("sandbox-site-1"), "spec": spec}
        )
        client.delete_flow_run(scripted.id)
    worker = subprocess.run(
        worker_argv("--run-once"),
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=180,
        cwd="/",  # the module entrypoint must resolve without this checkout as cwd
    )
    assert worker.returncode == 0, worker.stderr[-3000:]
    state = wait_final(run.id, timeout=30)
    assert state is not None and state.is_completed(), (state, worker.stderr[-3000:])
    with get_client(sync_client=True) as client:
        done = client.read_flow_run(run.id)
    assert done.name == "provision-sandbox-site-1"  # the block's name, one name per site
    assert done.parameters["site_block"] == picked  # a reference: no block field stored
    # the run made the connected registry through the block's ARM endpoint
    ctx = parent.azure_context()
    try:
        cr_name = sandbox_blocks["sites"][0]["name"]
        cr = ctx.cr_mgmt.connected_registries.get(ctx.resource_group, ctx.registry, cr_name)
        assert cr.name == cr_name
    finally:
        ctx.close()
