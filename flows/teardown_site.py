"""teardown-site: retire one edge site, removing only what acr-edge owns.

One composition for the real run and the dry run: every step reads, plans (a deletion with its
reason, or a no-op saying why: absent, or not acr-edge's and left) and, unless dry, applies
exactly that plan. Order follows what the services require: the cluster side first (every
node's mirror entries, then its CA file, the pull secrets, the Helm release so the runtime
stops, then the TLS Secrets it served), then ARM: deactivate the connected
registry, delete it, then the tokens, then their scope maps. A re-run, or a run after a crash
at any step, re-reads everything and plans only what is left.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows import node_rollout, plan_runs
from flows.block_refs import ParentBlock, SiteBlock, block_name
from flows.host_keys import pin_host_keys
from flows.inputs import load_site_inputs
from flows.locks import locked_site
from flows.plan import rows_markdown
from flows.report import RunReport, artifact_key
from model.errors import PermanentError
from tasks.azure import teardown_steps as azt
from tasks.site import teardown_steps as stt
from tasks.site.connection import open_site

FLOW = "teardown-site"


@flow(
    name=FLOW,
    flow_run_name=plan_runs.run_name("teardown-{site_block}"),
    validate_parameters=True,
)
def teardown_site(
    site_block: SiteBlock, parent_block: ParentBlock, dry_run: bool = False
) -> dict[str, Any]:
    """Tear one site down: acr-edge's node mirror entries and CA files, pull secrets, Helm
    release and TLS Secrets on the cluster, then in ARM its connected registry (deactivated,
    then deleted), tokens and scope maps. What acr-edge does not own is left, and its row
    says so.

    Args:
        site_block: The EdgeSite block of the site (lowercase letters, digits, `-`).
            Required. Example: `plant01`.
        parent_block: The ParentRegistry block: the parent registry and its
            credentials. Required. Example: `contoso`.
        dry_run: List every deletion with its reason and write nothing. Default: off.
            Example: on, to see what would go before tearing down.
    """
    site_block = block_name(site_block, "site_block")
    parent_block = block_name(parent_block, "parent_block")
    logger = get_run_logger()
    if dry_run:
        plan_runs.mark_plan()
    inputs = load_site_inputs(site_block, parent_block)  # refused before any side effect
    site, cr, client = inputs.site, inputs.cr_name, inputs.client_token
    report = RunReport(FLOW, site.name, dry_run=dry_run)

    done = report.done

    outcome = "failed"
    blocked: plan_runs.PlanBlocked | None = None
    try:
        with locked_site(inputs) as ctx:
            # The deletes are checked before anything goes: a principal that may provision but
            # not delete (README's operator role alone) is refused with nothing removed.
            permissions = done(azt.check_teardown_permissions(ctx, dry_run=dry_run))
            if permissions.action == "blocked":
                raise PermanentError(permissions.message, resource=permissions.resource)
            with ExitStack() as stack:
                conn = stack.enter_context(open_site(site))
                # Every node reached (host key verified, file checked) before the first write.
                nodes = node_rollout.preflight(stack, conn, "all")
                keys = [conn.recorded_host_key] if conn.recorded_host_key else []
                keys += nodes.recorded_host_keys
                if keys and not dry_run:  # accepted on first use: pinned as provision does
                    pin_host_keys(inputs, list(dict.fromkeys(keys)), report)
                # The mirror host is the release's service: read before the release goes.
                host = stt.node_registry_host_task(conn)
                for node in nodes.conns:
                    done(stt.remove_node_mirror_task(node, host, dry_run=dry_run))
                # Only once no node's registries.yaml names it (a pull would fail otherwise).
                for node in nodes.conns:
                    done(stt.delete_node_ca_file_task(node, cr, dry_run=dry_run))
                for ns in inputs.app_namespaces:
                    done(
                        stt.delete_pull_secret_task(
                            conn, ns, site.pull_secret_name, client, dry_run=dry_run
                        )
                    )
                done(stt.uninstall_release_task(conn, dry_run=dry_run))
                # Nothing serves them any more: the site CA and both server certificate slots.
                for name in stt.tls_secret_names(site.release_name):
                    done(stt.delete_tls_secret_task(conn, name, dry_run=dry_run))
                done(stt.namespace_left_task(conn))
            done(azt.deactivate_connected_registry(ctx, cr, dry_run=dry_run))
            done(azt.delete_connected_registry(ctx, cr, dry_run=dry_run))
            done(azt.delete_client_token(ctx, client, dry_run=dry_run))
            done(azt.delete_sync_token(ctx, cr, dry_run=dry_run))
            done(azt.delete_client_scope_map(ctx, client, dry_run=dry_run))
            done(azt.delete_sync_scope_map(ctx, cr, dry_run=dry_run))
        written = "torn down" if report.writes else "already torn down"
        outcome = "planned" if dry_run else written
    except PermanentError as exc:
        if not dry_run:
            raise
        blocked = plan_runs.stop(report, exc)  # where the real run would stop: shown first
        outcome = f"blocked: {blocked}"
    finally:
        if dry_run:
            create_markdown_artifact(
                key=artifact_key("teardown-plan", site_block),
                markdown=_markdown(report),
                description=f"dry run of teardown-site for {site_block}: {outcome}",
            )
        else:
            create_table_artifact(
                key=artifact_key("teardown", site_block),
                table=report.table(),
                description=f"teardown-site {site_block}: {outcome}, {report.writes} write(s)",
            )
    logger.info("%s: %s with %d write(s)", site.name, outcome, report.writes)
    if dry_run:
        return plan_runs.finish(report.summary(outcome=outcome), blocked, outcome)
    return report.summary(outcome=outcome)


def _markdown(report: RunReport) -> str:
    return "\n".join(rows_markdown(f"teardown-site {report.site} (dry run)", report.rows)) + "\n"
