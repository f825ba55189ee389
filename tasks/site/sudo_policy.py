"""Pure: the only commands acr-edge runs under sudo on a node, as a check and as a sudoers recipe.

One rule book serves both. The SSH layer refuses, before sending it, any privileged command that
no rule matches (so a new code path cannot quietly widen what the SSH key may do as root), and
``acr-edge sudoers`` renders the same rules with one site's paths as sudoers lines.

No rule is a shell (``sh -c`` would be root for whoever holds the key), ``env`` (it runs any
program) or ``find`` (``-exec``). sudoers' ``*`` matches any text, spaces included, so a recipe
line with ``*`` in an argument would let the key holder append arguments: the recipe has none.
Variable parts are written as fixed-width character classes (a backup's time stamp, a helm
revision) or expanded to the site's concrete values (the mirror hosts under certs.d).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model import tls
from model.errors import PermanentError


@dataclass(frozen=True)
class Var:
    """A variable argument: ``check`` is the full-match regex the SSH layer applies;
    ``name`` says which of the site's values fill it in the recipe."""

    name: str
    check: str


# No spaces, quotes, globs or a leading "-" (an option). Relative paths are the sandbox's
# multi-node layout (each node's commands run in its own root); real blocks name absolute ones.
_P = r"[A-Za-z0-9._:/\[\]+@][A-Za-z0-9._:/\[\]+@-]*"
PATH = Var("path", _P)
TMP = Var("tmp", r"(?:" + _P + r"/)?\.[A-Za-z0-9._:\[\]+@-]+\.acr-edge\.tmp")
REVISION = Var("revision", r"[1-9][0-9]{0,2}")
MODE = Var("mode", r"[0-7]{3}")
BACKUP = Var("backup", _P + r"\.bak-[0-9]{8}T[0-9]{12}Z")
SERVICE = Var("service", r"[A-Za-z0-9@._-]+")
WORD = Var("word", r"[A-Za-z0-9._:/@+-]+")  # a release, namespace, chart, version, timeout

Token = str | Var
Rule = tuple[Token, ...]


def _dot_dot(argv: Sequence[str]) -> bool:
    return any(".." in a.split("/") for a in argv)


# The privileged commands acr-edge runs, by program. A PATH is further held to the site's
# managed files by the recipe; the SSH-layer check keeps every argument free of shell syntax.
RULES: tuple[Rule, ...] = (
    # reads (tasks.site.node_files, ssh_files, mirror)
    ("stat", "-c", "%F|%a|%u|%g|%s", "--", PATH),
    ("stat", "-c", "%.9Y", "--", PATH, PATH),
    ("cat", "--", PATH),
    ("ls", "-1", "--", PATH),
    # atomic replace (ssh_files): root-only temp file, content, attributes, rename
    ("install", "-m", "600", "--", "/dev/null", TMP),
    ("dd", Var("of", r"of=" + TMP.check), "status=none"),
    ("chmod", Var("ref", r"--reference=" + PATH.check), "--", TMP),
    ("chown", Var("ref", r"--reference=" + PATH.check), "--", TMP),
    ("chmod", MODE, "--", TMP),
    ("mv", "-f", "--", TMP, PATH),
    ("rm", "-f", "--", PATH),
    # backups and their restore (node_files)
    ("cp", "-p", "--", PATH, BACKUP),
    ("cp", "-p", "--", BACKUP, PATH),
    # directories containerd and acr-edge read (node_mirror)
    ("mkdir", "-p", "-m", "755", "--", PATH),
    ("mkdir", "-p", "-m", "700", "--", PATH),
    # the node's K3s service (mirror, node_mirror)
    ("systemctl", "is-active", SERVICE),
    ("systemctl", "restart", SERVICE),
)
HELM_VERBS: tuple[tuple[Token, ...], ...] = (
    ("status", WORD, "-n", WORD, "-o", "json"),
    ("get", "values", WORD, "-n", WORD, "-o", "json"),
    ("history", WORD, "-n", WORD, "-o", "json"),
    ("rollback", WORD, REVISION, "-n", WORD, "--wait", "--timeout", WORD),
    ("uninstall", WORD, "-n", WORD, "--wait"),
)
# helm upgrade: every flag acr-edge passes, values on stdin (`-f -`), the version optional.
HELM_UPGRADE: Rule = (
    "upgrade", "--install", WORD, WORD, "-n", WORD, "--create-namespace", "-f", "-",
    "--timeout", WORD,
)  # fmt: skip
HELM_VERSION: Rule = ("--version", WORD)


def _matches(rule: Sequence[Token], argv: Sequence[str]) -> bool:
    if len(rule) != len(argv):
        return False
    for token, arg in zip(rule, argv, strict=True):
        if isinstance(token, Var):
            if not re.fullmatch(token.check, arg, re.ASCII):
                return False
        elif token != arg:
            return False
    return True


def _helm_rules() -> Iterator[Rule]:
    head: Rule = ("helm", "--kubeconfig", PATH)
    for verb in HELM_VERBS:
        yield head + verb
    yield head + HELM_UPGRADE
    yield head + HELM_UPGRADE + HELM_VERSION


def allowed(argv: Sequence[str]) -> bool:
    """True when ``argv`` is one of the rules (every argument checked, no ``..``)."""
    if _dot_dot(argv):
        return False
    return any(_matches(rule, argv) for rule in (*RULES, *_helm_rules()))


def check(cmd: Sequence[str] | str, resource: str) -> list[str]:
    """``cmd`` as an argument vector when a rule allows it under sudo; refused otherwise."""
    if isinstance(cmd, str):
        raise PermanentError(
            f"refused to run a shell string under sudo: {_short(cmd)}",
            resource=resource,
            fix="acr-edge runs only the single commands of its sudoers recipe under sudo "
            "(tasks.site.sudo_policy); this is a bug in acr-edge: report it",
        )
    argv = list(cmd)
    if not allowed(argv):
        raise PermanentError(
            "refused to run a command outside acr-edge's sudoers recipe: "
            + _short(shlex.join(argv)),
            resource=resource,
            fix="acr-edge runs only the commands `acr-edge sudoers` lists; this is a bug in "
            "acr-edge: report it",
        )
    return argv


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- the recipe ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeValues:
    """One site's values that fill the rules (what the recipe allows and nothing else)."""

    registries_path: str
    ca_path: str
    hosts_dir: str
    mirror_hosts: tuple[str, ...]
    kubeconfig_path: str
    services: tuple[str, ...]
    release: str
    namespace: str
    chart_ref: str
    chart_version: str | None
    helm_timeout: str  # as passed, e.g. "300s"
    binaries: tuple[tuple[str, str], ...]  # program -> absolute path on the node


_COREUTILS = ("stat", "cat", "ls", "install", "dd", "chmod", "chown", "mv", "rm", "cp", "mkdir")
DEFAULT_BINARIES: tuple[tuple[str, str], ...] = (
    *((p, f"/usr/bin/{p}") for p in _COREUTILS),
    ("systemctl", "/usr/bin/systemctl"),
    ("helm", "/usr/local/bin/helm"),
)

_STAMP_GLOB = "[0-9]" * 8 + "T" + "[0-9]" * 12 + "Z"
_REVISION_GLOBS = ("[1-9]", "[1-9][0-9]", "[1-9][0-9][0-9]")
_MODE_GLOB = "[0-7][0-7][0-7]"


def temp_of(path: str) -> str:
    directory, _, base = path.rpartition("/")
    return f"{directory}/.{base}.acr-edge.tmp"


def recipe_lines(v: NodeValues) -> list[list[str]]:
    """Every command line the recipe allows for ``v``, as argument vectors (globs literal)."""
    hosts_files = [f"{v.hosts_dir.rstrip('/')}/{h}/hosts.toml" for h in v.mirror_hosts]
    host_dirs = [posixpath.dirname(f) for f in hosts_files]
    written = [v.registries_path, v.ca_path, *hosts_files]
    backup = f"{v.registries_path}.bak-{_STAMP_GLOB}"
    out: list[list[str]] = []
    for path in written:
        tmp = temp_of(path)
        out += [
            ["stat", "-c", "%F|%a|%u|%g|%s", "--", path],
            ["cat", "--", path],
            ["install", "-m", "600", "--", "/dev/null", tmp],
            ["dd", f"of={tmp}", "status=none"],
            ["chmod", f"--reference={path}", "--", tmp],
            ["chown", f"--reference={path}", "--", tmp],
            ["chmod", _MODE_GLOB, "--", tmp],
            ["mv", "-f", "--", tmp, path],
            ["rm", "-f", "--", tmp],
            ["rm", "-f", "--", path],
        ]
    out += [["stat", "-c", "%.9Y", "--", v.registries_path, f] for f in hosts_files]
    out += [
        # The API tunnel authenticates with the node's admin kubeconfig (root-only on K3s).
        ["cat", "--", v.kubeconfig_path],
        ["cat", "--", backup],
        ["ls", "-1", "--", posixpath.dirname(v.registries_path)],
        ["cp", "-p", "--", v.registries_path, backup],
        ["cp", "-p", "--", backup, v.registries_path],
    ]
    out += [["mkdir", "-p", "-m", "700", "--", d] for d in host_dirs]
    out.append(["mkdir", "-p", "-m", "755", "--", posixpath.dirname(v.ca_path)])
    for service in v.services:
        out += [["systemctl", "is-active", service], ["systemctl", "restart", service]]
    helm = ["helm", "--kubeconfig", v.kubeconfig_path]
    rel = [v.release, "-n", v.namespace]
    out += [
        [*helm, "status", *rel, "-o", "json"],
        [*helm, "get", "values", *rel, "-o", "json"],
        [*helm, "history", *rel, "-o", "json"],
        [*helm, "uninstall", *rel, "--wait"],
    ]
    out += [
        [*helm, "rollback", v.release, g, "-n", v.namespace, "--wait", "--timeout", v.helm_timeout]
        for g in _REVISION_GLOBS
    ]
    upgrade = [
        *helm, "upgrade", "--install", v.release, v.chart_ref, "-n", v.namespace,
        "--create-namespace", "-f", "-", "--timeout", v.helm_timeout,
    ]  # fmt: skip
    out.append([*upgrade, "--version", v.chart_version] if v.chart_version else upgrade)
    return out


def _sudoers_arg(arg: str) -> str:
    # sudoers treats these as syntax in a command line; the globs we write ([...]) stay.
    return re.sub(r"([\\,:=\s])", r"\\\1", arg)


def render_sudoers(user: str, v: NodeValues) -> str:
    """``/etc/sudoers.d/acr-edge`` for ``user``: one NOPASSWD command per line, exact."""
    binaries = dict(v.binaries)
    lines = [
        "# /etc/sudoers.d/acr-edge: the only commands acr-edge runs as root on this node.",
        "# Generated by `acr-edge sudoers`; check with `visudo -cf FILE`, install mode 0440.",
        "# Regenerate when the site block's paths, release, chart or the mirror host change.",
        "Defaults:" + user + " !requiretty",
    ]
    rendered = []
    for argv in recipe_lines(v):
        program = binaries.get(argv[0], argv[0])
        rendered.append(" ".join([program, *(_sudoers_arg(a) for a in argv[1:])]))
    lines.append("Cmnd_Alias ACR_EDGE = " + ", \\\n    ".join(rendered))
    lines.append(f"{user} ALL=(root) NOPASSWD: ACR_EDGE")
    return "\n".join(lines) + "\n"


def values_for(
    site: Any, service_ip: str, *, binaries: Mapping[str, str] | None = None
) -> NodeValues:
    """The recipe's values for an EdgeSite block: its paths, both K3s services, its release and
    chart, and the mirror hosts containerd reads under certs.d for ``service_ip`` (the pull
    host on the http and https ports: a migrated site keeps its http name)."""
    hosts = (f"{service_ip}:{tls.HTTP_PORT}", f"{service_ip}:{tls.HTTPS_PORT}")
    return NodeValues(
        registries_path=site.registries_path,
        ca_path=tls.node_ca_path(site.registries_path, site.release_name),
        hosts_dir=site.hosts_dir,
        mirror_hosts=hosts,
        kubeconfig_path=site.kubeconfig_path,
        services=tuple(dict.fromkeys((site.service_name, site.agent_service_name))),
        release=site.release_name,
        namespace=site.namespace,
        chart_ref=site.chart_ref,
        chart_version=site.chart_version,
        helm_timeout=f"{int(site.helm_timeout)}s",
        binaries=tuple({**dict(DEFAULT_BINARIES), **dict(binaries or {})}.items()),
    )
