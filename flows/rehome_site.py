"""re-home-site: move a site's connected registry to the hardware its block now names.

The block already names the new hardware (ssh_host, keys, paths); the old hardware's runtime
may still be running and activated. Composition of existing pieces, plan first:

1. Under the site's lock, read what the block's (new) hardware runs: when acr-edge's release
   there holds a live sync password and its runtime is Ready, the re-home is done (a re-run):
   nothing to deactivate or revoke.
2. Otherwise revoke every live sync password (none is the new hardware's: it holds none that
   is live), so the old runtime can no longer sync or activate again, then deactivate the
   connected registry in ARM so the new runtime can activate (the service refuses a second
   instance otherwise: "already activated by another instance"). Revoking first closes the
   window in which the old runtime could activate again with its still-valid password.
3. Release the lock and run provision-site as a subflow with the given spec (it takes the
   lock itself): on the new hardware it generates a fresh sync password, installs, proves
   Online, and finishes the nodes and the canary.

``spec.dry_run`` lists the revocations and the deactivation, then provision's own plan.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows import plan_runs
from flows.block_refs import ParentBlock, SiteBlock, block_name
from flows.inputs import load_site_inputs
from flows.locks import locked_site
from flows.models import ProvisionSpec
from flows.plan import BLOCKED, rows_markdown
from flows.provision_site import provision_site
from flows.report import RunReport, artifact_key
from model import names
from model.errors import PermanentError
from model.plan import Change
from model.result import StepResult
from tasks import rotation
from tasks.azure import steps as az
from tasks.azure import teardown_steps as azt
from tasks.site import steps as st
from tasks.site.connection import open_site

FLOW = "re-home-site"
DEACTIVATE_STEP = "deactivate-connected-registry"
REVOKE_STEP = "revoke-old-sync-password"


@flow(
    name=FLOW,
    flow_run_name=plan_runs.run_name("rehome-{site_block}"),
    validate_parameters=True,
)
def rehome_site(
    site_block: SiteBlock, parent_block: ParentBlock, spec: ProvisionSpec
) -> dict[str, Any]:
    """Re-home one site on the hardware its block now names: revoke the old runtime's sync
    passwords, deactivate the connected registry, then provision-site with a fresh sync
    password. A re-run after a finished re-home changes nothing.

    Args:
        site_block: The EdgeSite block of the site, already naming the new hardware
            (lowercase letters, digits, `-`). Required. Example: `plant01`.
        parent_block: The ParentRegistry block: the parent registry and its
            credentials. Required. Example: `contoso`.
        spec: What to provision on the new hardware, as for provision-site (its fields say
            their defaults); Dry run lists the plan and writes nothing. Required. Example:
            `{"namespaces": ["samples"]}`.
    """
    site_block = block_name(site_block, "site_block")
    parent_block = block_name(parent_block, "parent_block")
    logger = get_run_logger()
    if spec.dry_run:
        plan_runs.mark_plan()
    inputs = load_site_inputs(
        site_block,
        parent_block,
        client_token_name=spec.client_token_name,
        app_namespaces=spec.app_namespaces,
    )  # refused before any side effect
    site, cr, dry = inputs.site, inputs.cr_name, spec.dry_run
    report = RunReport(FLOW, site.name, dry_run=dry)

    done = report.done

    outcome = "failed"
    provision: dict[str, Any] = {}
    blocked: plan_runs.PlanBlocked | None = None
    try:
        with locked_site(inputs) as ctx:
            with ExitStack() as stack:
                # The new hardware is reached (host key verified) before anything is written.
                conn = stack.enter_context(open_site(site))
                release = st.read_helm_release_task(conn)
                ready = st.deployment_ready_task(conn) if release.digest else None
            passwords = az.read_token_passwords(ctx, names.sync_token_name(cr), missing_ok=True)
            state = rotation.normalise_passwords(passwords)
            held = release.sync_ref if release.digest else None
            ref = rotation.ref_from_record(held.slot, held.created) if held else None
            holds = rotation.ref_is_valid(ref, state, datetime.now(UTC))
            serving = holds and ready is not None and ready.ok
            resource = f"connectedRegistries/{cr}"
            if serving:
                assert held is not None
                why = (
                    f"the runtime on {site.ssh_host} is Ready with sync password {held.slot}: "
                    "already re-homed"
                )
                done(StepResult.from_change(Change.none(REVOKE_STEP, resource, why), writes=0))
                done(StepResult.from_change(Change.none(DEACTIVATE_STEP, resource, why), writes=0))
            else:
                keep = held.slot if holds and held is not None else None
                stale = [p.slot for p in passwords if p.slot != keep]
                if not stale:
                    why = "no live sync password other than the new hardware's: nothing to revoke"
                    done(StepResult.from_change(Change.none(REVOKE_STEP, resource, why), writes=0))
                for slot in stale:
                    done(
                        az.revoke_password(
                            ctx, names.sync_token_name(cr), slot, step=REVOKE_STEP, dry_run=dry
                        )
                    )
                done(azt.deactivate_connected_registry(ctx, cr, dry_run=dry))
        # provision-site takes the site's lock itself.
        provision = provision_site(site_block, parent_block, spec)
        writes = report.writes + int(provision.get("writes") or 0)
        outcome = "planned" if dry else ("re-homed" if writes else "already re-homed")
    except PermanentError as exc:
        if not dry:
            raise
        if isinstance(exc, plan_runs.PlanBlocked):  # provision's plan, its blocker first
            provision = exc.summary
            blocked = plan_runs.stop(report, exc, step="provision-site")
        else:
            blocked = plan_runs.stop(report, exc)
        outcome = f"blocked: {blocked}"
    finally:
        if dry:
            create_markdown_artifact(
                key=artifact_key("rehome-plan", site_block),
                markdown=_markdown(report, provision),
                description=f"dry run of re-home-site for {site_block}: {outcome}",
            )
        else:
            create_table_artifact(
                key=artifact_key("rehome", site_block),
                table=report.table(),
                description=f"re-home-site {site_block}: {outcome}, {report.writes} write(s) "
                "before provision-site",
            )
    logger.info("%s: %s", site.name, outcome)
    summary = report.summary(
        outcome=outcome,
        writes=report.writes + int(provision.get("writes") or 0),
        rehome_writes=report.writes,
        provision=provision,
    )
    return plan_runs.finish(summary, blocked, outcome) if dry else summary


def _markdown(report: RunReport, provision: dict[str, Any]) -> str:
    lines = rows_markdown(f"re-home-site {report.site} (dry run)", report.rows)
    lines += ["", "Then provision-site on the new hardware:", ""]
    for r in provision.get("steps") or []:
        if r.get("action") == BLOCKED:
            continue  # the Blocked section above names it
        why = str(r.get("message", "")).replace("|", "\\|")
        lines.append(f"- {r.get('step')} {r.get('resource')}: {r.get('action')} ({why})")
    return "\n".join(lines) + "\n"
