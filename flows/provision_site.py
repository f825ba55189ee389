"""provision-site: one edge site from nothing (or from any partial state) to pulling images.

Composition only, and one composition for the real run and the dry run: every step is called
with ``dry_run=spec.dry_run`` and reads, plans (a pure decision with its reason) and, unless
dry, applies exactly that plan. The dry run therefore lists the rows the real run performs. In
a dry run the secret steps (sync credential, client password, a Helm release with a new
connection string) are metadata rows only: nothing is generated or written, and a step that
depends on a resource the run would create is planned from the facts available.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from flows import approval, node_rollout, plan_runs, site_tls
from flows.block_refs import ParentBlock, SiteBlock, block_name
from flows.host_keys import pin_or_plan, recorded_keys
from flows.inputs import SiteInputs, load_site, load_site_inputs
from flows.locks import site_lock
from flows.models import ProvisionSpec
from flows.node_rollout import SiteNodes
from flows.plan import ProvisionPlan
from flows.provision_node import FLOW, Done, node_side, sync_side
from flows.report import RunReport, artifact_key
from flows.site_specs import spec_for_site
from model import names, scope_shrink
from model.azure import ConnectedRegistryInfo, PasswordMeta
from model.azure_context import AzureContext
from model.errors import InputError, PermanentError
from model.site import ReleaseFact
from tasks.azure import steps as az
from tasks.azure.spec import ConnectedRegistrySpec
from tasks.site import steps as st
from tasks.site.connection import SiteConnection
from tasks.site.node_mirror_plan import Proof
from tasks.site.plans import canary_image


def _cr_spec(inputs: SiteInputs, spec: ProvisionSpec) -> ConnectedRegistrySpec:
    try:
        return ConnectedRegistrySpec(
            name=inputs.cr_name,
            mode=spec.mode,
            sync_schedule=spec.sync_schedule,
            sync_window=spec.sync_window,
            message_ttl=spec.message_ttl,
            # None = not stated: created with the az CLI defaults, otherwise left as it is
            log_level=spec.log_level,
            audit_log_status=(
                None
                if spec.audit_logs_enabled is None
                else ("Enabled" if spec.audit_logs_enabled else "Disabled")
            ),
            gc_enabled=spec.gc_enabled,
            gc_schedule=spec.gc_schedule,
            notifications=None if spec.notifications is None else tuple(spec.notifications),
        )
    except ValueError as exc:  # pragma: no cover - InputError is raised for every known case
        raise InputError(str(exc), resource="spec") from None


@flow(
    name=FLOW,
    flow_run_name=plan_runs.run_name("provision-{site_block}"),
    task_runner=ThreadPoolTaskRunner(max_workers=6),  # type: ignore[arg-type]
    validate_parameters=True,
)
def provision_site(
    site_block: SiteBlock,
    parent_block: ParentBlock,
    spec: ProvisionSpec | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Provision one site: in ARM the sync scope map, token and connected registry, beside
    them the client scope map and token (attached to the connected registry); on the node the
    Helm release, registries.yaml mirror and pull secrets; then a canary pull.

    Parameters name saved blocks (picked in the run form, or by name), never secrets. A
    re-run on a converged site writes nothing.
    ``spec.dry_run`` runs the same steps without their applies and reports the plan (a run
    named plan-provision-<site>, tagged plan, ending Planned, or Blocked with its blocker and
    fix first when the real run would stop). A spec that would remove repositories from the
    site's sync scope waits for approval in the UI.

    Args:
        site_block: EdgeSite block of the site (its SSH, node paths and app namespaces).
            Required. Example: `plant01`.
        parent_block: ParentRegistry block (the parent registry and its credentials). Required.
            Example: `parent-registry`.
        spec: What to provision: namespaces, sync mode and schedule, client token, dry run. Leave
            empty to use the site's stored spec (the edge-site-spec block naming the site, or else
            the one matching its tags). Default: empty. Example: `{"namespaces": ["samples"]}`.
        dry_run: Plan only (as spec.dry_run), e.g. for the site's stored spec. Default: `false`.
            Example: `true`.
    """
    site_block = block_name(site_block, "site_block")
    parent_block = block_name(parent_block, "parent_block")
    logger = get_run_logger()
    # Everything below is refused before the first side effect.
    site = load_site(site_block)
    source = "spec parameter"
    if spec is None:
        spec, resolved = spec_for_site(site_block, site.tags)
        source = resolved.why
    if dry_run and not spec.dry_run:
        spec = spec.model_copy(update={"dry_run": True})
    if spec.dry_run:  # named and tagged a plan (a stored spec's dry_run is known only now)
        plan_runs.mark_plan()
    inputs = load_site_inputs(
        site_block,
        parent_block,
        client_token_name=spec.client_token_name,
        app_namespaces=spec.app_namespaces,
        site=site,
    )
    cr_spec = _cr_spec(inputs, spec)
    report = RunReport(FLOW, inputs.site.name, dry_run=spec.dry_run)
    plan = ProvisionPlan(site_block, report.rows, report.details)
    outcome = "failed"
    blocked: plan_runs.PlanBlocked | None = None
    try:
        ctx = inputs.parent.azure_context()
        try:
            # Read and decide the scope before the lock and before any node is reached: an
            # approval may take hours and must hold neither.
            scope = _desired_scope(ctx, inputs, spec, report, source)
            with site_lock(inputs.parent, inputs.site.name):
                kept = _provision(ctx, inputs, spec, cr_spec, report, plan, scope)
        finally:
            ctx.close()
        if spec.dry_run:
            outcome = "planned"
        else:
            outcome = "converged" if report.writes else "already converged"
        if kept:
            outcome += f"; removal of {len(kept)} repositories not approved (kept)"
    except PermanentError as exc:
        if not spec.dry_run:
            raise
        # Where the real run would stop: the plan says so first, and the run is not green.
        blocked = plan_runs.stop(report, exc)
        outcome = f"blocked: {blocked}"
    finally:
        if spec.dry_run:
            create_markdown_artifact(
                key=artifact_key("provision-plan", site_block),
                markdown=plan.markdown(),
                description=f"dry run of provision-site for {site_block}: {outcome}",
            )
        else:
            create_table_artifact(
                key=artifact_key("provision", site_block),
                table=report.table(),
                description=f"provision-site {site_block}: {outcome}, {report.writes} write(s)",
            )
    if spec.dry_run:
        logger.info("%s: %s, %d change(s), wrote nothing", inputs.site.name, outcome, plan.writes)
        return plan_runs.finish(plan.summary(), blocked, outcome)
    logger.info("%s: %s with %d write(s)", inputs.site.name, outcome, report.writes)
    return report.summary(outcome=outcome, nodes=plan.nodes, kept_repositories=list(kept))


def _desired_scope(
    ctx: AzureContext, inputs: SiteInputs, spec: ProvisionSpec, report: RunReport, source: str
) -> tuple[list[str], tuple[str, ...]]:
    """Permissions, the repositories under the namespaces (listed live) and the removals from
    the site's current scope the run may apply (approved, or planned in a dry run)."""
    dry = spec.dry_run
    # Permissions first: a principal that lacks any action is refused before the first write
    # (a dry run shows the same verdict as its blocker row, then stops).
    permissions = report.done(az.check_permissions(ctx, dry_run=dry))
    if permissions.action == "blocked":
        raise PermanentError(permissions.message, resource=permissions.resource)
    repos = az.list_repositories(ctx, spec.namespaces, allow_empty=spec.allow_empty_namespaces)
    report.note(
        "list-repositories",
        f"registries/{ctx.registry}",
        f"{len(repos)} repositories under {', '.join(spec.namespaces)} (spec: {source})",
    )
    approved = approval.gate(
        ctx,
        inputs.cr_name,
        inputs.site.name,
        repos,
        timeout=spec.shrink_approval_timeout,
        dry_run=dry,
        report=report,
    )
    return repos, approved


def _provision(
    ctx: AzureContext,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    cr_spec: ConnectedRegistrySpec,
    report: RunReport,
    plan: ProvisionPlan,
    scope: tuple[list[str], tuple[str, ...]],
) -> tuple[str, ...]:
    """Returns the repositories kept in scope because their removal was not approved."""
    site, dry = inputs.site, spec.dry_run

    done = report.done

    with ExitStack() as stack:
        # The node side needs nothing from Azure until the connection string exists: connect
        # to every node and check its files while ARM is read. Nothing is written anywhere
        # (ARM or node) until every node is reached, its host key verified and every input
        # checked: `ready` is that barrier.
        conn_f = st.open_site_task.submit(stack, site)
        nodes_f = preflight_nodes_task.submit(stack, conn_f, spec.nodes)  # type: ignore[call-overload]
        release_f = st.read_helm_release_task.submit(conn_f)  # type: ignore[call-overload]

        def ready() -> SiteNodes:
            wait([conn_f, nodes_f, release_f])
            conn_f.result()  # its error first: the node pre-flight never ran without it
            site_nodes: SiteNodes = nodes_f.result()
            _check_transport(site, release_f.result())
            return site_nodes

        try:
            repos, kept, info, sync_passwords = _azure_side(
                ctx, inputs, spec, cr_spec, report, done, ready, scope
            )
        except BaseException:
            # Never close the connection under a running node step: let them finish first.
            wait([conn_f, nodes_f, release_f])
            keys = recorded_keys(conn_f, nodes_f)
            if keys:  # the keys were accepted: pin them even though this run fails
                pin_or_plan(inputs, keys, report, dry)
            raise
        conn: SiteConnection = conn_f.result()
        site_nodes = ready()
        keys = recorded_keys(conn_f, nodes_f)
        if keys:
            pin_or_plan(inputs, keys, report, dry)
        done(st.ensure_namespace_task(conn, site.namespace, dry_run=dry))
        release: ReleaseFact = release_f.result()
        current_host = st.registry_host_task(conn) if release.exists else None
        tls_state = None
        if site.transport == "https":
            ip = site_tls.service_ip(site, current_host)
            tls_state = site_tls.prepare(conn, inputs.cr_name, release, info, ip, dry, done)
            if current_host and site_tls.serving_transport(release) == "http":
                _bridge(site_nodes, current_host, site, release, tls_state, repos, done, dry)
        sync_side(
            ctx,
            conn,
            inputs,
            info,
            sync_passwords,
            release,
            dry,
            plan,
            done,
            tls_secret=tls_state.tls_secret if tls_state else None,
        )
        # An upgrade keeps the address and the recorded pull port: read it only for a release
        # this run installed (a dry run of a new site has no service, so no address, yet).
        host = current_host or (None if dry else st.registry_host_task(conn))
        route = None
        if host is not None:
            now = release if dry else st.read_helm_release_task(conn)
            route = site_tls.route(host, site, now, tls_state)
        node_side(ctx, conn, site_nodes, inputs, spec, repos, host, plan, done, route)
        if tls_state is not None:
            # Pulls through the served certificate are proven (nodes and canary): the other
            # slot's certificate goes.
            site_tls.retire_idle_slot(conn, tls_state.tls_secret, dry, done)
    return kept


def _check_transport(site: Any, release: ReleaseFact) -> None:
    """Refused before the first write: https needs the address its certificate names, and a
    migration of the node auth model needs two credentials K3s would have to hold."""
    if site.transport != "https":
        return
    if not release.exists and not site.service_cluster_ip:
        site_tls.service_ip(site, None)  # raises the InputError naming the fix
    if site.auth_model == "node" and site_tls.serving_transport(release) == "http":
        raise InputError(
            "an http site with auth_model 'node' cannot move to https in place: K3s would "
            "need the node credential under the https endpoint too",
            resource=site.resource,
            fix="switch the site to auth_model 'pull-secret' first, or tear it down and "
            "provision it over https",
        )


def _bridge(
    nodes: SiteNodes,
    host: str,
    site: Any,
    release: ReleaseFact,
    state: site_tls.SiteTls,
    repos: list[str],
    done: Done,
    dry: bool,
) -> None:
    """Migration http -> https, before the release switches: every node trusts the site CA
    and tries https first, http second, so pulls work now, during the upgrade and after it.
    Each node is proven with a pull (still over http) as in any rollout."""
    route = site_tls.route(host, site, release, state)
    image = canary_image(host, repos[0]) if repos else None
    proof = Proof(site.app_namespaces[0], image, site.pull_secret_name, site.canary_timeout)
    node_rollout.roll_out(nodes, route, None, proof, done, dry_run=dry)


@task(name="preflight-nodes", cache_policy=NO_CACHE, persist_result=False)
def preflight_nodes_task(stack: ExitStack, conn: SiteConnection, selector: str) -> SiteNodes:
    return node_rollout.preflight(stack, conn, selector)


def _azure_side(
    ctx: AzureContext,
    inputs: SiteInputs,
    spec: ProvisionSpec,
    cr_spec: ConnectedRegistrySpec,
    report: RunReport,
    done: Done,
    ready: Callable[[], object],
    scope: tuple[list[str], tuple[str, ...]],
) -> tuple[list[str], tuple[str, ...], ConnectedRegistryInfo | None, list[PasswordMeta]]:
    """The scope re-read under the lock, preflight, then the sync chain (scope map, token,
    connected registry) beside the client scope map and token; the client token attached;
    then reads."""
    cr, client, dry = inputs.cr_name, inputs.client_token, spec.dry_run
    # Re-read under the lock: another run may have changed the scope since the gate read it,
    # and only the removals the gate approved may happen.
    desired, approved = scope
    decision = scope_shrink.decide(approval.read_sync_scope(ctx, cr), desired, approved)
    repos = list(decision.repositories)
    report.note("sync-scope", f"scopeMaps/{names.sync_scope_map_name(cr)}", decision.message)
    ready()  # every node reached and checked before the first write (preflight may write)
    done(
        az.preflight_parent(
            ctx,
            repositories=repos,
            client_token_count=1,
            enable_data_endpoint=spec.enable_data_endpoint,
            dry_run=dry,
        )
    )
    # The client scope map and token need only the repository list: they converge beside the
    # sync chain, and the token is attached once the connected registry exists.
    client_map_f = az.ensure_client_scope_map.submit(ctx, client, repos, dry_run=dry)  # type: ignore[call-overload]
    client_token_f = az.ensure_client_token.submit(  # type: ignore[call-overload]
        ctx, client, client, dry_run=dry, wait_for=[client_map_f]
    )
    try:
        done(az.ensure_sync_scope_map(ctx, cr, repos, spec.mode, dry_run=dry))
        done(az.ensure_sync_token(ctx, cr, dry_run=dry))
        done(az.ensure_connected_registry(ctx, cr_spec, dry_run=dry))
        done(client_map_f.result())
        done(client_token_f.result())
    finally:
        wait([client_map_f, client_token_f])  # never leave a write running behind a failure
    done(az.attach_client_token(ctx, cr, client, dry_run=dry))
    info = az.read_connected_registry(ctx, cr)
    if not dry and (info is None or not info.gateway_endpoint):
        raise PermanentError(
            "connected registry has no parent gateway endpoint after creation",
            resource=f"connectedRegistries/{cr}",
            fix="check that the parent's dedicated data endpoint is enabled",
        )
    # A dry run may plan a sync token that does not exist yet: it has no password.
    return repos, decision.kept, info, az.read_token_passwords(ctx, cr, missing_ok=dry)
