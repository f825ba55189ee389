"""Screenshots of the Prefect UI pages an operator uses, taken with headless Chromium.

Starts a private Prefect server with its UI (acr_edge.local_prefect), the sandbox with a few
sites and their blocks (acr_edge.sandbox_blocks, as `sandbox up --register-blocks`), applies
the deployments (`acr-edge deploy`) and starts a process worker for the fleet's shard runs.
Then a dry-run provision of one site, a provision-fleet run and a fleet-status run, in this
process, so the artifacts exist; finds each page's URL through the Prefect client and
screenshots it. Writes README.md beside the pictures. Everything it starts is stopped at the
end, also on error.

Run: ./dev run python -m bench.screenshots --out docs/screenshots
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
WIDTH = 1600
HEIGHT = 1400
# Virtual time: Chromium fast-forwards timers and waits for the network, so the Vue app has
# loaded its data and rendered when the picture is taken (not its loading spinner).
VIRTUAL_TIME_MS = 20000
# Pages fade in (a 0.25 s CSS transition on the router view). Without this flag the compositor
# runs on wall time and a busy host captures the page half faded; with it every frame is drawn
# on virtual time, so the fade has finished.
DETERMINISTIC = "--run-all-compositor-stages-before-draw"
SHOT_TIMEOUT_S = 180.0
SITES = 3
POOL = "acr-edge"  # the deployments' default pool
COMMAND = "./dev run python -m bench.screenshots --out docs/screenshots"

Kind = Literal["deployment-run", "block-create", "block-edit", "artifact", "progress"]


@dataclass(frozen=True)
class Page:
    file: str  # PNG name in the output folder
    what: str  # one line for the README
    kind: Kind
    ref: str  # deployment name, block type slug, "slug/block name", artifact key or flow name
    height: int = HEIGHT  # the whole page, as far as it goes (forms are long)
    parameters: dict[str, Any] | None = None  # run form: prefilled as the UI's ?parameters=


def site_artifact_key(prefix: str, site: str) -> str:
    """As flows.report.artifact_key (kept here: bench must not need a flow to name a page)."""
    clean = "".join(c if c.isalnum() else "-" for c in site.lower()).strip("-")
    return f"{prefix}-{clean}"


def pages(site_block: str, site_id: str | None = None) -> list[Page]:
    """Every page to take, in README order; ``site_block`` names the site the per-site
    artifacts (dry-run plan, status) belong to (artifacts are keyed by the block's name).
    The prefilled form picks that block as the UI's picker does, by ``site_id`` (its block
    document id; by slug when not given)."""
    picked = (
        {"$ref": {"block_document_id": site_id}}
        if site_id
        else {"$ref": {"block_document_slug": f"edge-site/{site_block}"}}
    )
    return [
        Page(
            "provision-site-run-form.png",
            "provision-site deployment, Run > Custom run: the parameter form and its help text",
            "deployment-run",
            "provision-site/provision-site",
        ),
        Page(
            "provision-site-run-form-spec.png",
            "the same form prefilled (?parameters=) with a site and a spec: the ProvisionSpec "
            "fields and their help",
            "deployment-run",
            "provision-site/provision-site",
            3500,
            {"site_block": picked, "spec": {"namespaces": ["samples", "edge/apps"]}},
        ),
        Page(
            "fleet-status-run-form.png",
            "fleet-status deployment, Run > Custom run: sites picked from the saved blocks, or "
            "a tag; the wave options",
            "deployment-run",
            "fleet-status/fleet-status",
            2400,
        ),
        Page(
            "edge-site-block-create.png",
            "EdgeSite block, create form (Blocks > + > Edge Site): fields and their help",
            "block-create",
            "edge-site",
            6300,
        ),
        Page(
            "edge-site-block-edit.png",
            f"EdgeSite block `{site_block}`, edit form as the sandbox saved it",
            "block-edit",
            f"edge-site/{site_block}",
            6300,
        ),
        Page(
            "parent-registry-block-create.png",
            "ParentRegistry block, create form: fields and their help",
            "block-create",
            "parent-registry",
            3000,
        ),
        Page(
            "parent-registry-block-edit.png",
            "ParentRegistry block `parent-registry`, edit form as the sandbox saved it",
            "block-edit",
            "parent-registry/parent-registry",
            3000,
        ),
        Page(
            "fleet-status-overview.png",
            "fleet-status overview artifact (markdown): counts per state, then every site",
            "artifact",
            "fleet-status-overview",
        ),
        Page(
            "fleet-status-summary.png",
            "fleet-status summary artifact (table): one row per site, worst first",
            "artifact",
            "fleet-status-summary",
        ),
        Page(
            "fleet-status-progress.png",
            "fleet-status progress artifact: share of sites finished",
            "progress",
            "fleet-status",
        ),
        Page(
            "provision-fleet-overview.png",
            "provision-fleet overview artifact (markdown)",
            "artifact",
            "provision-fleet-overview",
        ),
        Page(
            "provision-plan.png",
            f"provision-site dry-run plan artifact of `{site_block}` (before its first run)",
            "artifact",
            site_artifact_key("provision-plan", site_block),
            2400,
        ),
        Page(
            "site-status.png",
            f"site-status artifact of `{site_block}` (table of checks)",
            "artifact",
            site_artifact_key("site-status", site_block),
        ),
    ]


def page_path(kind: Kind, ident: str) -> str:
    """The UI route of a page; ``ident`` is the id the route takes (slug for block-create)."""
    routes = {
        "deployment-run": "/deployments/deployment/{}/run",
        "block-create": "/blocks/catalog/{}/create",
        "block-edit": "/blocks/block/{}/edit",
        "artifact": "/artifacts/artifact/{}",
        "progress": "/artifacts/artifact/{}",
    }
    return routes[kind].format(ident)


def page_url(ui_url: str, path: str, parameters: dict[str, Any] | None = None) -> str:
    """``parameters`` prefill a run form: the UI reads ?parameters= as URI-encoded JSON."""
    url = ui_url.rstrip("/") + path
    if parameters is not None:
        url += "?parameters=" + quote(json.dumps(parameters, separators=(",", ":")), safe="")
    return url


def chromium_argv(
    url: str,
    out: Path,
    *,
    profile: Path,
    width: int = WIDTH,
    height: int = HEIGHT,
    budget_ms: int = VIRTUAL_TIME_MS,
    chromium: str = CHROMIUM,
) -> list[str]:
    return [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        DETERMINISTIC,
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={out}",
        url,
    ]


def readme(shots: Sequence[Page]) -> str:
    lines = [
        "# Prefect UI screenshots",
        "",
        "Taken with headless Chromium against a private Prefect server and the sandbox "
        "(3 sites). Regenerate them all with:",
        "",
        f"    {COMMAND}",
        "",
    ]
    lines += [f"- [{p.file}]({p.file}): {p.what}" for p in shots]
    return "\n".join(lines) + "\n"


# --- running things ----------------------------------------------------------------------


def _resolve(client: Any, page: Page, fleet_runs: dict[str, Any]) -> str:
    """The id the page's route takes, read through the Prefect client."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        ArtifactFilterType,
    )
    from prefect.client.schemas.sorting import ArtifactSort

    if page.kind == "deployment-run":
        return str(client.read_deployment_by_name(page.ref).id)
    if page.kind == "block-create":
        return page.ref
    if page.kind == "block-edit":
        slug, name = page.ref.split("/", 1)
        return str(client.read_block_document_by_name(name, slug, include_secrets=False).id)
    if page.kind == "artifact":
        flt = ArtifactFilter(key=ArtifactFilterKey(any_=[page.ref]))
    else:
        flt = ArtifactFilter(
            type=ArtifactFilterType(any_=["progress"]),
            flow_run_id=ArtifactFilterFlowRunId(any_=[fleet_runs[page.ref]]),
        )
    found = client.read_artifacts(artifact_filter=flt, sort=ArtifactSort.CREATED_DESC, limit=1)
    if not found:
        raise RuntimeError(f"no artifact for {page.file} ({page.kind} {page.ref})")
    return str(found[0].id)


def shoot(url: str, out: Path, height: int, work: Path) -> None:
    profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=work))
    argv = chromium_argv(url, out, profile=profile, height=height)
    out.unlink(missing_ok=True)
    with open(work / "chromium.log", "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=SHOT_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=10)
    shutil.rmtree(profile, ignore_errors=True)
    if not out.exists():
        raise RuntimeError(f"chromium wrote no {out.name} for {url} (see {work}/chromium.log)")


@contextmanager
def worker(api_url: str, work: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process worker on the pool: fleet runs start their shards as deployment runs."""
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "0",
    }
    argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--limit", "4"]
    with open(work / "worker.log", "wb") as log:
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        # Its flow-run children are in its process group: stop them with it.
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


def _say(text: str) -> None:
    print(f"[screenshots] {text}", flush=True)


def _final(state: Any, what: str) -> None:
    if not state.is_completed():
        _say(f"warning: {what} ended {state.name}: {state.message}")


def make_runs(site_blocks: list[str]) -> dict[str, Any]:
    """Dry-run plan of site 1 (before anything exists), then the fleet provision and the
    fleet check; returns the fleet runs' ids by flow name."""
    from acr_edge.sandbox_blocks import PARENT_BLOCK
    from flows.fleet import fleet_status, provision_fleet
    from flows.provision_site import provision_site

    _say(f"provision-site {site_blocks[0]} dry run ...")
    _final(provision_site(site_blocks[0], PARENT_BLOCK, dry_run=True, return_state=True), "dry run")
    runs: dict[str, Any] = {}
    for name, fleet_flow in (("provision-fleet", provision_fleet), ("fleet-status", fleet_status)):
        _say(f"{name} over {len(site_blocks)} sites ...")
        state = fleet_flow(parent_block=PARENT_BLOCK, sites=site_blocks, return_state=True)
        _final(state, name)
        runs[name] = state.state_details.flow_run_id
    return runs


def run(out: Path, only: Sequence[str] = ()) -> list[Path]:
    work = Path(tempfile.mkdtemp(prefix="acr-edge-shots-"))
    # Before prefect is imported: the client's settings and caches stay in this run's folder.
    os.environ["PREFECT_HOME"] = str(work / "home")
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    out.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []
    try:
        with ExitStack() as stack:
            from acr_edge.local_prefect import own_server, quiet_runs
            from acr_edge.sandbox_blocks import register
            from deployments.register import deploy
            from sandbox.runner import start_sandbox

            api = stack.enter_context(own_server(ui=True))
            stack.enter_context(quiet_runs())
            _say(f"Prefect UI {api.ui_url}; starting the sandbox ({SITES} sites)")
            running = start_sandbox(work / "sandbox", sites=SITES, lro_retry_after=1)
            stack.callback(running.stop)
            blocks = register(running.info)[1:]
            _say(f"blocks {', '.join(blocks)}; deploying")
            for outcome in deploy(work_pool=POOL):
                _say(outcome.line())
            stack.enter_context(worker(api.url, work))
            fleet_runs = make_runs(blocks)
            taken = _shoot_all(api.ui_url, out, work, blocks[0], running.info, fleet_runs, only)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return taken


def _shoot_all(
    ui_url: str,
    out: Path,
    work: Path,
    site_block: str,
    info: dict[str, Any],
    fleet_runs: dict[str, Any],
    only: Sequence[str],
) -> list[Path]:
    from prefect.client.orchestration import get_client

    taken = []
    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(name=site_block, block_type_slug="edge-site")
        chosen = pages(site_block, str(doc.id))
        (out / "README.md").write_text(readme(chosen))
        for page in chosen:
            if only and page.file not in only:
                continue
            path = page_path(page.kind, _resolve(client, page, fleet_runs))
            url = page_url(ui_url, path, page.parameters)
            _say(f"{page.file}: {url}")
            shoot(url, out / page.file, page.height, work)
            taken.append(out / page.file)
    return taken


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.screenshots", description=__doc__)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    p.add_argument("--only", nargs="*", default=[], metavar="FILE", help="just these PNGs")
    args = p.parse_args(list(sys.argv[1:] if argv is None else argv))
    # A SIGTERM must unwind like an error, so every process started is stopped on the way out.
    signal.signal(signal.SIGTERM, lambda signum, _: sys.exit(128 + signum))
    started = time.monotonic()
    taken = run(args.out.resolve(), args.only)
    _say(f"{len(taken)} screenshot(s) in {args.out} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
