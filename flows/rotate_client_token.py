"""rotate-client-token: move a site's pull secrets to a fresh client-token password, safely.

The state machine is :func:`tasks.rotation_plan.plan_rotation`; it is re-derived from ARM and the
cluster on every run, so a crash at any step is finished by the next run. Order:
generate the unused slot → canary with the NEW password (retried until propagated) → (node
model: registries.yaml + restart, then a pull with no pull secret) → write the pull secrets →
canary again → revoke the old slot. The slot workloads use is never written before the new one
is proven.
"""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from pydantic import SecretStr

from flows import checkpoints, node_rollout, plan_runs, site_tls
from flows.block_refs import ParentBlock, SiteBlock, block_name
from flows.host_keys import pin_host_keys
from flows.inputs import SiteInputs, load_site_inputs
from flows.locks import locked_site
from flows.node_rollout import SiteNodes
from flows.report import RunReport, artifact_key
from model.azure_context import AzureContext
from model.errors import PermanentError
from model.result import StepResult
from model.site import NodeAuth, PullSecretMeta
from tasks import rotation, rotation_plan
from tasks.azure import steps as az
from tasks.site import steps as st
from tasks.site.connection import SiteConnection, open_site
from tasks.site.node_mirror_plan import Proof
from tasks.site.plans import canary_image

FLOW = "rotate-client-token"
SCRATCH_SUFFIX = "-canary"


@flow(name=FLOW, flow_run_name=plan_runs.run_name("rotate-{site_block}"))
def rotate_client_token(
    site_block: SiteBlock,
    parent_block: ParentBlock,
    client_token_name: str | None = None,
    lifetime_days: int = 90,
    propagation_timeout_seconds: float = 300,
    lead_days: int = 14,
    force: bool = False,
) -> dict[str, Any]:
    """Rotate the site's client-token password when it is due (expires within ``lead_days``),
    or finish a rotation an earlier run left half done. Parameters are names and numbers only.

    Args:
        site_block: The EdgeSite block of the site (lowercase letters, digits, `-`).
            Required. Example: `plant01`.
        parent_block: The ParentRegistry block: the parent registry and its
            credentials. Required. Example: `contoso`.
        client_token_name: Client token to rotate. Default: `{site}-client` (the name
            provision-site gave it). Example: `plant01-pull`.
        lifetime_days: Days the new password stays valid. Default: `90`. Example: `30`.
        propagation_timeout_seconds: Seconds the new password may take to reach the site's
            connected registry before the rotation gives up (the old one stays valid).
            Default: `300`. Example: `900` on a slow link.
        lead_days: Rotate when the password in use expires within this many days. Default:
            `14`. Example: `30`.
        force: Rotate now even if not due: for a leaked or suspect password. Same zero-downtime
            steps (the old password is revoked only after the new one pulls); refused while an
            interrupted rotation has pull secrets split between both slots. Default: off.
            Example: on after a leak.
    """
    site_block = block_name(site_block, "site_block")
    parent_block = block_name(parent_block, "parent_block")
    life = rotation.validate_lifetime(lifetime_days, lead_days, propagation_timeout_seconds)
    inputs = load_site_inputs(site_block, parent_block, client_token_name=client_token_name)
    report = RunReport(FLOW, inputs.site.name)
    outcome = "failed"
    try:
        with locked_site(inputs) as ctx, open_site(inputs.site) as conn, ExitStack() as stack:
            # The node model's consumers are every node: reach them all first.
            nodes = (
                node_rollout.preflight(stack, conn, "all")
                if inputs.site.auth_model == "node"
                else None
            )
            keys = [conn.recorded_host_key] if conn.recorded_host_key else []
            keys += nodes.recorded_host_keys if nodes else []
            if keys:
                pin_host_keys(inputs, list(dict.fromkeys(keys)), report)
            outcome = _rotate(ctx, conn, nodes, inputs, life, lifetime_days, report, force)
    finally:
        create_table_artifact(
            key=artifact_key("rotate", site_block),
            table=report.table(),
            description=f"rotate-client-token {site_block}: {outcome}",
        )
    get_run_logger().info("%s: %s (%d write(s))", inputs.site.name, outcome, report.writes)
    return report.summary(outcome=outcome)


def _rotate(
    ctx: AzureContext,
    conn: SiteConnection,
    nodes: SiteNodes | None,
    inputs: SiteInputs,
    life: rotation.Lifetime,
    lifetime_days: int,
    report: RunReport,
    force: bool = False,
) -> str:
    site, token = inputs.site, inputs.client_token
    namespaces = inputs.app_namespaces

    def reached(step: str) -> None:
        checkpoints.reached(FLOW, site.name, step)

    def done(step: str, result: StepResult) -> None:
        report.step(step, result)
        reached(step)

    passwords = az.read_token_passwords(ctx, token)
    host = st.registry_host_task(conn)
    consumers: dict[str, PullSecretMeta | None] = dict(
        st.read_pull_secrets_task(conn, namespaces, site.pull_secret_name)
    )
    node_conns: dict[str, SiteConnection] = {}
    if site.auth_model == "node":
        # Every node's registries.yaml credential is a consumer too: its slot is never
        # regenerated under it (e.g. after a crash between its rewrite and the pull secrets',
        # or a rollout that stopped with some nodes on the other slot).
        consumers[rotation.NODE_CONSUMER] = st.read_node_credential_task(conn, host)
        node_conns[rotation.NODE_CONSUMER] = conn
        for target, node_conn in zip(nodes.targets, nodes.conns, strict=True) if nodes else ():
            key = rotation.node_consumer(target.name)
            consumers[key] = st.read_node_credential_task(node_conn, host)
            node_conns[key] = node_conn
    refs = rotation.refs_of(consumers, token)
    now = datetime.now(UTC)
    plan = rotation_plan.plan_rotation(passwords, refs, now, life.lead, force=force)
    report.note("plan", f"tokens/{token}", f"{plan.action}: {plan.reason}")
    reached("planned")
    if plan.action == "noop":
        return "not due"
    assert plan.target is not None

    repos = az.client_repositories(ctx, token)
    if not repos:
        raise PermanentError(
            f"client scope map {token} grants no repository to pull",
            resource=f"scopeMaps/{token}",
            fix="re-run provision-site with namespaces that match repositories",
        )
    image = canary_image(host, repos[0])
    canary_ns = namespaces[0]

    username: str = token
    password: SecretStr | None = None
    meta: PullSecretMeta | None = None
    if plan.generate:
        gen = az.generate_password(
            ctx, token, plan.target, expiry=rotation.expiry_for(now, lifetime_days)
        )
        username, password = gen.username, gen.password
        meta = PullSecretMeta(token, gen.meta.slot, rotation.created_text(gen.meta.creation_time))
        report.note(
            "generate",
            f"tokens/{token}/{plan.target}",
            f"generated {plan.target} (expires {gen.meta.expiry}); {plan.revoke or 'no slot'} "
            "stays valid until the new one is proven",
            changed=True,
            writes=1,
        )
        reached("generated")
    elif plan.adopt:
        source = rotation.preferred_source(plan.value_sources)
        kind = rotation.NODE_CONSUMER if rotation.is_node_consumer(source) else source
        username, password = st.read_consumer_password_task(
            node_conns.get(source, conn), kind, host, plan.target, rerun=FLOW
        )
        meta = consumers.get(source)  # a value source is a consumer with a valid record
        report.note(
            "recover",
            f"{source}/{site.pull_secret_name}",
            f"took the live {plan.target} from {source} (no regeneration)",
        )

    if password is not None and meta is not None:
        # Prove the new password through the node before any workload depends on it.
        scratch = f"{site.pull_secret_name}{SCRATCH_SUFFIX}"
        st.ensure_pull_secrets_task(conn, [canary_ns], scratch, host, username, password, meta)
        proven = st.canary_until_propagated_task(
            conn,
            canary_ns,
            image,
            scratch,
            deadline_seconds=float(life.propagation.total_seconds()),
        )
        st.delete_secret_task(conn, canary_ns, scratch)
        report.note("canary-new", f"{canary_ns}/{image}", f"new password pulls: {proven.reason}")
        reached("proven")
        if site.auth_model == "node":
            # Only a proven password goes into the node's credentials: workloads without a
            # pull secret switch to it at this restart.
            # The header written with it records the slot, so a crash after this write leaves
            # the node a known consumer of the new slot (never regenerated by the re-run).
            node_auth = NodeAuth(username, password, meta.slot, meta.created)
            # Node by node, each proven with a pull by the node's own credential (no pull
            # secret) on a pod pinned to it; a failed node is rolled back and stops it.
            assert nodes is not None  # reached before planning in the node model
            proof = Proof(canary_ns, image, None, site.canary_timeout)
            route, _ = site_tls.current_route(conn, host)
            node_rollout.roll_out(nodes, route, node_auth, proof, lambda r: report.step(r.step, r))
            reached("registries-yaml")
            report.note(
                "canary-node",
                f"{canary_ns}/{image}",
                f"node credential pulls on every node ({', '.join(nodes.names)})",
            )
            reached("node-proven")
        if plan.adopt:
            done(
                "pull-secrets",
                st.ensure_pull_secrets_task(
                    conn,
                    namespaces,
                    site.pull_secret_name,
                    host,
                    username,
                    password,
                    meta,
                    patch_default_service_account=site.patch_default_service_account,
                ),
            )
        del password

    verified = st.canary_until_propagated_task(
        conn,
        canary_ns,
        image,
        site.pull_secret_name,
        deadline_seconds=float(life.propagation.total_seconds()),
    )
    report.note("canary", f"{canary_ns}/{image}", f"pull secret pulls: {verified.reason}")
    reached("verified")
    if plan.revoke is not None:
        done("revoke", az.revoke_password(ctx, token, plan.revoke))
    if force and plan.action == "rotate":
        return "rotated (forced)"
    return {
        "rotate": "rotated",
        "resume": "rotated (resumed)",
        "adopt": "adoption finished",
        "finish": "old slot revoked",
        "repair": "repaired",
    }[plan.action]
