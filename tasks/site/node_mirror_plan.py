"""Pure: what one node needs so that containerd pulls through the mirror, and whether that
takes a restart.

K3s reads registries.yaml only when it starts, but containerd reads
``certs.d/<host>/hosts.toml`` at every pull. So a change to mirrors or endpoints is made live
by writing registries.yaml (for persistence) and the hosts.toml exactly as K3s would render it
(with K3s's header line, so K3s owns and regenerates it at its next start): no restart. Node
credentials are different: K3s puts them in containerd's config.toml at start, so a change of
``configs.<host>.auth`` needs the restart. ``restart_policy`` ("auto", "always", "never")
chooses; "never" writes and reports "restart pending" instead.
"""

from __future__ import annotations

import base64
import difflib
from dataclasses import dataclass
from urllib.parse import urlsplit

from pydantic import SecretStr

from model.errors import PermanentError
from model.plan import Change
from model.site import MirrorRoute, NodeAuth, PullSecretMeta, as_route
from tasks.site import hosts_toml as hosts_toml_text
from tasks.site import plans, registries_decode

STEP = "node-mirror"
POLICIES = ("auto", "always", "never")


@dataclass(frozen=True)
class NodeMirrorFact:
    """One node's mirror as read: registries.yaml (``text`` None: no file; ``exists``), the
    hosts.toml for our host (None: none), whether registries.yaml is newer than that
    hosts.toml (written after K3s last rendered it: a change it has not loaded), and over
    https the node's site-CA file (None: none)."""

    text: SecretStr | None
    exists: bool
    hosts_toml: str | None
    pending: bool
    ca_text: str | None = None


@dataclass(frozen=True)
class Proof:
    """The canary each changed node must pull (``image`` None: nothing synced yet, so the
    proof is the node Ready and its hosts.toml)."""

    namespace: str
    image: str | None
    pull_secret: str | None
    deadline_seconds: float


def routes_http(hosts_toml: str | None, host: str) -> bool:
    """The hosts.toml sends pulls for ``host`` to ``http://host`` (K3s writes it with /v2)."""
    if not hosts_toml:
        return False
    try:
        _, urls = hosts_toml_text.routes(hosts_toml, host)
    except PermanentError:
        return False  # unreadable: not routing; the plan writes it again
    return any(urlsplit(u).scheme == "http" and urlsplit(u).netloc == host for u in urls)


def routes_live(hosts_toml: str | None, rendered: str | None, route: MirrorRoute) -> bool:
    """containerd already routes ``route``: the hosts.toml on the node means what K3s would
    render from the merged file (same endpoints in order, same CA files)."""
    if not route.https and rendered is None:
        return routes_http(hosts_toml, route.host)
    return hosts_toml_text.same_routes(hosts_toml, rendered, route.host)


MASK = "********"


def _secret_values(text: str | None, path: str) -> set[str]:
    """Every credential value in a registries file, each alone and in its base64 forms."""
    if not text:
        return set()
    found: set[str] = set()
    reg = registries_decode.decode(text, path)
    auths = [c.auth for c in (reg.configs or {}).values() if c and c.auth]
    auths += list((reg.auths or {}).values())
    for auth in auths:
        for value in (auth.password, auth.auth, auth.identity_token):
            if len(value) >= 4:  # a shorter "secret" would mask ordinary text
                found.add(value)
                found.add(base64.b64encode(value.encode()).decode())
        if auth.password:
            pair = f"{auth.username}:{auth.password}".encode()
            found.add(base64.b64encode(pair).decode())
    return found


def masked_diff(old: str | None, new: str, path: str) -> str:
    """A unified diff of the file with every credential value masked wherever it appears
    (a one-line JSON file too: masking is by value, not by line)."""
    secrets = sorted(_secret_values(old, path) | _secret_values(new, path), key=len, reverse=True)

    def mask(text: str) -> str:
        for value in secrets:
            text = text.replace(value, MASK)
        return text

    return "".join(
        difflib.unified_diff(
            mask(old or "").splitlines(keepends=True),
            mask(new).splitlines(keepends=True),
            fromfile=f"{path} (now)",
            tofile=f"{path} (planned)",
        )
    )


def plan_node_mirror(
    fact: NodeMirrorFact,
    route: MirrorRoute | str,
    auth: NodeAuth | None,
    *,
    node: str,
    service: str,
    path: str,
    policy: str = "auto",
    node_model: bool = False,
    node_ref: PullSecretMeta | None = None,
) -> Change:
    """The node's change: write registries.yaml and/or hosts.toml, restart or not; the
    reason says which and why. The payload (never shown) is the new registries.yaml."""
    if policy not in POLICIES:
        raise ValueError(f"restart_policy {policy!r} is not one of {', '.join(POLICIES)}")
    route = as_route(route)
    host = route.host
    resource = f"node {node}: {path}"
    reg = plans.plan_registries_yaml(
        fact.text, route, auth, resource=resource, path=path, node_ref=node_ref
    )
    write_file = reg.needed
    rendered = reg.shown.get("hosts_toml")
    auth_changed = bool(reg.shown.get("auth_changed"))
    live = routes_live(fact.hosts_toml, rendered, route)
    # The CA file first: containerd loads it with the hosts.toml that names it.
    write_ca = bool(route.ca_file and route.ca_text and fact.ca_text != route.ca_text)
    # A file written but never loaded matters for credentials only: routing is live as soon
    # as hosts.toml routes it.
    stale_auth = fact.pending and node_model and not write_file
    needs_restart = auth_changed or stale_auth
    if policy == "always":
        restart = write_file or needs_restart or (fact.pending and not live)
    elif policy == "auto":
        restart = needs_restart or (rendered is None and write_file)
    else:
        restart = False
    write_hosts = not restart and rendered is not None and (write_file or not live)
    pending = not restart and (needs_restart or (rendered is None and write_file))
    parts: list[str] = []
    if write_ca:
        verb = "replaces" if fact.ca_text is not None else "writes"
        parts.append(f"{verb} the site CA {route.ca_file}")
    if write_file:
        parts.append(reg.reason)
    if write_hosts:
        why = "containerd reads it at every pull" if write_file else "it does not route " + host
        parts.append(f"writes hosts.toml for {host} as K3s renders it ({why}): no restart")
    if restart:
        why = (
            "node credentials load only when K3s starts"
            if needs_restart
            else "restart_policy is 'always'"
        )
        parts.append(f"restarts {service} ({why})")
    if pending:
        parts.append(f"restart pending: restart_policy is 'never' and {service} must restart")
    diff = ""
    if write_file:
        old = fact.text.get_secret_value() if fact.text is not None else None
        diff = masked_diff(old, reg.payload.get_secret_value(), path)
        del old
    shown = {
        "diff": diff,
        "node": node,
        "path": path,
        "replaces": fact.exists,
        "write_file": write_file,
        "hosts_toml": rendered if write_hosts else None,
        "restart": restart,
        "restart_pending": pending,
        "ca_file": route.ca_file if write_ca else None,
        "ca_text": route.ca_text if write_ca else None,
        "ca_existed": fact.ca_text is not None,
    }
    if not (write_file or write_hosts or restart or write_ca):
        reason = reg.reason
        if route.ca_file:
            reason += f"; the site CA {route.ca_file} is in place"
        if live:
            reason += f"; hosts.toml routes {host}"
        if pending:
            reason += "; " + parts[-1]
        return Change.none(STEP, resource, reason, **shown)
    action = "write" if write_file or write_hosts or write_ca else "restart"
    return Change(STEP, resource, action, "; ".join(parts), payload=reg.payload, shown=shown)
