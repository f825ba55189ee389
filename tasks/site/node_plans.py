"""Which nodes a run touches, in which order, and how each is reached (pure: no I/O).

The facts come from the Kubernetes API (:func:`tasks.site.nodes.read_nodes`); the site's
settings say how the nodes differ from the defaults. Everything here is decided before the
first connection to any node, so a typo in a selector or an override is refused before any
side effect.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from model.errors import InputError
from model.site import NodeFact, NodeOverrideSettings, NodeTarget, SiteSettings

ORDERS = ("agents-first", "servers-first")

# Kubernetes label syntax: an optional DNS-subdomain prefix, a name, and a value that may be
# empty. Checked here so that `kubernetes.io/hostname=` typos are refused, not matched to nothing.
_LABEL_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_LABEL_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_LABEL_KEY = re.compile(rf"^({_LABEL_PREFIX}/)?{_LABEL_NAME}$")
_LABEL_VALUE = re.compile(rf"^({_LABEL_NAME})?$")

_SELECTOR_FIX = (
    "give nodes='all' or one label as key=value, e.g. kubernetes.io/hostname=<node> or "
    "node-role.kubernetes.io/control-plane=true"
)


def _names(facts: Iterable[NodeFact]) -> str:
    return ", ".join(sorted(f.name for f in facts)) or "none"


def parse_selector(selector: str) -> tuple[str, str] | None:
    """None for ``all``; else the (key, value) of a ``key=value`` label selector."""
    text = selector.strip()
    if text == "all":
        return None
    key, sep, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if (
        not sep
        or "=" in value
        or len(key.rpartition("/")[0]) > 253
        or not _LABEL_KEY.match(key)
        or not _LABEL_VALUE.match(value)
    ):
        raise InputError(
            f"nodes selector {selector!r} is neither 'all' nor one label key=value",
            resource="nodes parameter",
            fix=_SELECTOR_FIX,
        )
    return key, value


def select_nodes(facts: Sequence[NodeFact], selector: str) -> list[NodeFact]:
    """The nodes ``selector`` names (``all``, or one ``key=value`` label); refused when it is
    malformed or matches no node (a selector that selects nothing is a typo, not a no-op)."""
    label = parse_selector(selector)
    chosen = list(facts) if label is None else [f for f in facts if label in f.labels]
    if not chosen:
        raise InputError(
            f"nodes selector {selector!r} matches no node of the cluster (nodes: {_names(facts)})",
            resource="nodes parameter",
            fix=_SELECTOR_FIX,
        )
    return chosen


def order_nodes(facts: Sequence[NodeFact], order: str) -> list[NodeFact]:
    """Agents first and servers last (``agents-first``), or the reverse; by name within a role.

    Agents first by default: an agent that fails to come back costs its own pods, a server
    that fails costs the API, so the servers converge once the change is proven elsewhere.
    """
    if order not in ORDERS:
        raise InputError(
            f"node_order {order!r} is not one of {', '.join(ORDERS)}", resource="site block"
        )
    first = "agent" if order == "agents-first" else "server"
    return sorted(facts, key=lambda f: (f.role != first, f.name))


def check_overrides(site: SiteSettings, facts: Sequence[NodeFact]) -> None:
    """Refuse an override naming no node of the cluster: a typo would otherwise leave the node
    it meant on the defaults, unnoticed."""
    known = {f.name for f in facts}
    unknown = sorted(o.name for o in site.nodes if o.name not in known)
    if unknown:
        raise InputError(
            f"the nodes override names no node of the cluster: {', '.join(unknown)} (nodes: "
            f"{_names(facts)})",
            resource=site.resource,
            fix="correct or remove the override on the site block",
        )


def _override(site: SiteSettings, name: str) -> NodeOverrideSettings | None:
    return next((o for o in site.nodes if o.name == name), None)


def service_for(site: SiteSettings, role: str) -> str:
    """The unit K3s/RKE2 runs as on a node of ``role`` (k3s / k3s-agent, rke2-server / -agent)."""
    return site.service_name if role == "server" else site.agent_service_name


def node_targets(site: SiteSettings, facts: Sequence[NodeFact]) -> list[NodeTarget]:
    """How each node is reached, in the order given.

    Host: the override's, else the node's InternalIP; port and user: the override's, else the
    site's. The node at the site's own ``ssh_host`` is reached directly (it is the jump host);
    the others through it when ``site.ssh_jump``, else directly.
    """
    targets = []
    for fact in facts:
        override = _override(site, fact.name)
        host = (override.ssh_host if override else None) or fact.internal_ip
        if not host:
            raise InputError(
                f"node {fact.name} has no InternalIP to reach it at",
                resource=site.resource,
                fix=f"add a nodes override with ssh_host for {fact.name} to the site block",
            )
        port = (override.ssh_port if override else None) or site.ssh_port
        user = (override.ssh_user if override else None) or site.ssh_user
        targets.append(
            NodeTarget(
                name=fact.name,
                role=fact.role,
                host=host,
                port=port,
                user=user,
                service=service_for(site, fact.role),
                via_jump=site.ssh_jump and host != site.ssh_host,
                known_hosts=tuple(override.known_hosts) if override else (),
            )
        )
    return targets
