"""Pure: provision-site's dry-run plan, rendered from the rows the steps returned.

The dry run is the real run's composition with ``dry_run=True``: every step reads, plans and
returns its planned change as a row (step, resource, action, why), the same row the real run
then reports. This module only groups and renders those rows (ARM, node, secrets as metadata,
notes) with the masked registries.yaml diff and the Helm values diff; it decides nothing.

Only metadata and masked values: registries.yaml auth passwords and the connection string are
replaced before any diff is computed, so the plan can be logged and stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from model.names import short_label

MASK = "***"
# The reason first and a short resource label: the UI clips a wide table's last columns.
TABLE_HEAD = "| why | step | action | resource |"

ARM_STEPS = (
    "preflight-permissions",
    "preflight-parent",
    "sync-scope-map",
    "sync-token",
    "connected-registry",
    "client-scope-map",
    "client-token",
    "attach-client-token",
)
NODE_STEPS = ("namespace", "helm-release", "node-mirror", "registries-yaml", "restart", "canary")
SECRET_STEPS = {
    "sync-credential": "sync",
    "client-password": "client",
    "sync-old-slot": "sync, old slot",
    "pull-secrets": "pull secret",
}
# A canary pull proves the chain; its pod is not a change the plan counts as a write.
CHECK_STEPS = frozenset({"canary"})
PROVISIONAL = "provisional"  # a row planned before a resource it depends on exists
# A row's action where the real run would stop (tasks.azure.registry.BLOCKED, or the error a
# dry run met): such rows lead every plan, each with its fix.
BLOCKED = "blocked"
FIX = " Fix: "  # how model.errors.PermanentError joins a message and its fix


def blockers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r["action"] == BLOCKED]


def blocked_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The ``## Blocked`` section (empty without blockers): what stops the real run and the
    fix, before anything else a person reads."""
    found = blockers(rows)
    if not found:
        return []
    lines = [
        "## Blocked",
        "",
        "The real run would stop here; fix these first, then plan again.",
        "",
        "| blocker | fix | step | resource |",
        "|---|---|---|---|",
    ]
    for r in found:
        text = " ".join(str(r["message"]).split())
        blocker, _, fix = text.partition(FIX)
        where = f"{r['step']} | {short_label(str(r['resource']))}"
        lines.append(f"| {_cell(blocker)} | {_cell(fix) or '-'} | {where} |")
    return [*lines, ""]


def rows_markdown(title: str, rows: list[dict[str, Any]]) -> list[str]:
    """A report-based plan (teardown, re-home): the title, the blockers, then every other row."""
    lines = [f"# {title}", "", *blocked_markdown(rows)]
    lines += [TABLE_HEAD, "|---|---|---|---|"]
    for r in rows:
        if r["action"] != BLOCKED:
            why = _cell(r["message"])
            lines.append(f"| {why} | {r['step']} | {r['action']} | {short_label(r['resource'])} |")
    return lines


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _value(value: Any) -> str:
    """A Helm value as YAML would write it (not Python's None/False); empty is said."""
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return "(set by the real run)" if value == "" else str(value)


def helm_rows(changes: list[tuple[str, Any, Any]]) -> list[dict[str, Any]]:
    """Plan rows for (path, now, planned) value changes, one per leaf: a map added or removed as
    a whole (``pvc``) shows as its settings (``pvc.storageRequest``)."""
    rows: list[dict[str, Any]] = []

    def walk(path: str, old: Any, new: Any) -> None:
        if isinstance(old, dict) or isinstance(new, dict):
            before = old if isinstance(old, dict) else {}
            after = new if isinstance(new, dict) else {}
            if (old is None or isinstance(old, dict)) and (new is None or isinstance(new, dict)):
                for key in sorted(set(before) | set(after), key=str):
                    walk(f"{path}.{key}", before.get(key), after.get(key))
                return
        if old != new:
            rows.append({"path": path, "now": old, "planned": new})

    for path, old, new in changes:
        walk(path, old, new)
    return rows


def _row(r: dict[str, Any]) -> dict[str, str]:
    return {
        "step": r["step"],
        "resource": r["resource"],
        "action": r["action"],
        "why": r["message"],
    }


@dataclass
class ProvisionPlan:
    """The plan of one site: the report's rows (each with its StepResult's details) plus the
    two diffs the artifact shows."""

    site: str
    rows: list[dict[str, Any]]
    details: list[dict[str, Any]] = field(default_factory=list)
    registries_diff: str = ""
    helm: list[dict[str, Any]] = field(default_factory=list)
    # One row per node of the rollout (name, role, action, restarted, canary, why).
    nodes: list[dict[str, Any]] = field(default_factory=list)

    def _of(self, steps: Any) -> list[dict[str, str]]:
        return [_row(r) for r in self.rows if r["step"] in steps and r["action"] != BLOCKED]

    @property
    def blocked(self) -> list[dict[str, str]]:
        return [_row(r) for r in blockers(self.rows)]

    @property
    def arm(self) -> list[dict[str, str]]:
        return self._of(ARM_STEPS)

    @property
    def node(self) -> list[dict[str, str]]:
        return self._of(NODE_STEPS)

    @property
    def secrets(self) -> list[dict[str, str]]:
        """Credential steps as metadata: which slot, what happens, why. Never a value."""
        out = []
        for r in self.rows:
            kind = SECRET_STEPS.get(r["step"])
            if kind is not None:
                out.append(
                    {
                        "secret": f"{r['resource']} ({kind})",
                        "action": r["action"],
                        "detail": r["message"],
                    }
                )
            if r["step"] == "sync-credential" and r["action"] == "generate":
                out.append(
                    {
                        "secret": "helm release connectionString",
                        "action": "replace",
                        "detail": f"a new connection string carrying {r['resource']}",
                    }
                )
        return out

    @property
    def notes(self) -> list[str]:
        known = set(ARM_STEPS) | set(NODE_STEPS) | set(SECRET_STEPS)
        out = [
            f"{r['step']}: {r['message']}"
            for r in self.rows
            if r["step"] not in known and r["action"] != BLOCKED
        ]
        out += [
            f"{r['step']}: planned from the facts available ({d[PROVISIONAL]})"
            for r, d in zip(self.rows, self.details, strict=False)
            if d.get(PROVISIONAL)
        ]
        return out

    @property
    def writes(self) -> int:
        """Planned changes (a canary pull is a check, a blocker a stop: neither a change)."""
        return sum(
            1
            for r in self.rows
            if r["action"] not in ("none", BLOCKED) and r["step"] not in CHECK_STEPS
        )

    def summary(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "outcome": "blocked" if self.blocked else "planned",
            "dry_run": True,
            "blocked": self.blocked,
            "writes": 0,
            "planned_writes": self.writes,
            "steps": [dict(r) for r in self.rows],
            "arm": self.arm,
            "node": self.node,
            "secrets": self.secrets,
            "registries_yaml_diff": self.registries_diff,
            "helm_values_diff": self.helm,
            "nodes": self.nodes,
            "notes": self.notes,
        }

    def _no_registries_diff(self) -> str:
        """Why no diff is shown: none is needed, or the mirror's address is not known yet."""
        planned = [r for r in self.node if r["step"] in ("node-mirror", "registries-yaml")]
        if any(r["action"] != "none" for r in planned):
            return (
                "not shown yet: the mirror's address is the Helm release's service, which "
                "does not exist before the real run (see the node rows)"
            )
        return "no change"

    def markdown(self) -> str:
        lines = [f"# provision-site plan for `{self.site}` (dry run: nothing written)", ""]
        lines += [
            f"{self.writes} planned change(s); every row below is what the real run reports.",
            "",
            *blocked_markdown(self.rows),
        ]
        for title, rows in (("ARM", self.arm), ("Node", self.node)):
            lines += [f"## {title}", "", TABLE_HEAD, "|---|---|---|---|"]
            lines += [
                f"| {r['why']} | {r['step']} | {r['action']} | {short_label(r['resource'])} |"
                for r in rows
            ]
            lines.append("")
        lines += ["## registries.yaml (credentials masked)", ""]
        lines += (
            ["```diff", self.registries_diff.rstrip(), "```"]
            if self.registries_diff
            else [self._no_registries_diff()]
        )
        lines += ["", "## Helm values (secrets masked)", ""]
        if self.helm:
            lines += ["| value | now | planned |", "|---|---|---|"]
            lines += [
                f"| {h['path']} | {_value(h['now'])} | {_value(h['planned'])} |" for h in self.helm
            ]
        else:
            lines.append("no change")
        lines += [
            "",
            "## Secrets (metadata only)",
            "",
            "| secret | action | detail |",
            "|---|---|---|",
        ]
        lines += [
            f"| {short_label(s['secret'])} | {s['action']} | {s['detail']} |" for s in self.secrets
        ]
        if self.notes:
            lines += ["", "## Notes", "", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines) + "\n"
