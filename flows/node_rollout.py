"""The site is a cluster: reach every node before any write, then converge them one at a time.

Pre-flight (before the first write anywhere, ARM or node): list the nodes through the API,
select and order them (agents first, servers last, unless the block says otherwise), connect
to each with its own pinned host key, and read each node's registries.yaml (a file K3s would
refuse, a link, an oversized file stop the run here). The rollout then converges node by node:
each changed node is written, restarted only when needed, proven with a canary pinned to it,
and rolled back if the proof fails, which stops the rollout with the rest untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from model.result import StepResult
from model.site import MirrorRoute, NodeAuth, NodeTarget, PullSecretMeta
from tasks.site import node_plans
from tasks.site import steps as st
from tasks.site.connection import SiteConnection
from tasks.site.node_mirror_plan import Proof

Done = Callable[[StepResult], StepResult]


@dataclass
class SiteNodes:
    """The site's selected nodes, in rollout order, each with its own connection."""

    targets: list[NodeTarget]
    conns: list[SiteConnection]
    recorded_host_keys: list[str]

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.targets]


def preflight(stack: ExitStack, conn: SiteConnection, selector: str) -> SiteNodes:
    """Reach and check every selected node; raises naming every node that failed."""
    site = conn.site
    facts = st.read_nodes_task(conn)
    selected = node_plans.order_nodes(node_plans.select_nodes(facts, selector), site.node_order)
    targets = node_plans.node_targets(site, selected)
    conns = st.open_nodes_task(stack, conn, targets)
    for node in conns:
        st.check_node_file_task(node)
    keys = [c.recorded_host_key for c in conns if c.recorded_host_key]
    return SiteNodes(targets=targets, conns=conns, recorded_host_keys=keys)


def roll_out(
    nodes: SiteNodes,
    host: MirrorRoute | str,
    auth: NodeAuth | None,
    proof: Proof,
    done: Done,
    *,
    node_ref: PullSecretMeta | None = None,
    dry_run: bool = False,
) -> list[StepResult]:
    """One node at a time, in order; the first failure (already rolled back) stops it."""
    results: list[StepResult] = []
    for conn in nodes.conns:
        result = st.ensure_node_mirror_task(
            conn, host, auth, proof, node_ref=node_ref, dry_run=dry_run
        )
        results.append(done(result))
    return results


def node_rows(nodes: SiteNodes, results: list[StepResult]) -> list[dict[str, object]]:
    """Per-node summary for the run's return value and the demo's report."""
    rows = []
    for target, result in zip(nodes.targets, results, strict=False):
        rows.append(
            {
                "name": target.name,
                "role": target.role,
                "action": result.action,
                "restarted": bool(result.details.get("restarted")),
                "restart_pending": bool(result.details.get("restart_pending")),
                "canary": str(result.details.get("canary") or ""),
                "why": result.message,
            }
        )
    return rows
