"""Pure: the dry-run plan of provision-site and how it reads (markdown artifact, summary).

Only metadata and masked values: registries.yaml auth passwords and the connection string are
replaced before any diff is computed, so the plan can be logged and stored.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any

MASK = "***"
_PASSWORD_LINE = re.compile(r"^(\s*(?:password|identitytoken|auth)\s*:\s*).+$", re.IGNORECASE)


def mask_registries_yaml(text: str | None) -> str:
    """registries.yaml with every credential value masked (pure; used before diffing)."""
    if not text:
        return ""
    out = []
    for line in text.splitlines():
        match = _PASSWORD_LINE.match(line)
        out.append(f"{match.group(1)}{MASK}" if match and not line.rstrip().endswith(":") else line)
    return "\n".join(out) + "\n"


def unified(old: str, new: str, path: str) -> str:
    return "".join(
        difflib.unified_diff(
            old.splitlines(keepends=True),
            new.splitlines(keepends=True),
            fromfile=f"{path} (now)",
            tofile=f"{path} (planned)",
        )
    )


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


@dataclass
class ProvisionPlan:
    site: str
    arm: list[dict[str, str]] = field(default_factory=list)
    registries_diff: str = ""
    helm: list[dict[str, Any]] = field(default_factory=list)
    secrets: list[dict[str, str]] = field(default_factory=list)
    site_actions: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add_arm(self, resource: str, op: str, reason: str) -> None:
        self.arm.append({"resource": resource, "change": op, "why": reason})

    def add_secret(self, secret: str, action: str, detail: str) -> None:
        self.secrets.append({"secret": secret, "action": action, "detail": detail})

    def add_site_action(self, resource: str, action: str, why: str) -> None:
        """A node-side change (Helm release, K3s restart), counted through its diff."""
        self.site_actions.append({"resource": resource, "action": action, "why": why})

    @property
    def writes(self) -> int:
        return (
            sum(1 for a in self.arm if a["change"] != "none")
            + (1 if self.registries_diff else 0)
            + (1 if self.helm else 0)
            + sum(1 for s in self.secrets if s["action"] != "keep")
        )

    def summary(self) -> dict[str, Any]:
        return {
            "site": self.site,
            "outcome": "planned",
            "dry_run": True,
            "planned_writes": self.writes,
            "arm": self.arm,
            "registries_yaml_diff": self.registries_diff,
            "helm_values_diff": self.helm,
            "site_actions": self.site_actions,
            "secrets": self.secrets,
            "notes": self.notes,
            "writes": 0,
        }

    def markdown(self) -> str:
        lines = [f"# provision-site plan for `{self.site}` (dry run: nothing written)", ""]
        lines += ["## ARM", "", "| resource | change | why |", "|---|---|---|"]
        lines += [f"| {a['resource']} | {a['change']} | {a['why']} |" for a in self.arm]
        lines += ["", "## registries.yaml", ""]
        lines += (
            ["```diff", self.registries_diff.rstrip(), "```"]
            if self.registries_diff
            else ["no change"]
        )
        if self.site_actions:
            lines += ["", "## Node", "", "| resource | action | why |", "|---|---|---|"]
            lines += [
                f"| {a['resource']} | {a['action']} | {a['why']} |" for a in self.site_actions
            ]
        lines += ["", "## Helm values (secrets masked)", ""]
        if self.helm:
            lines += ["| value | now | planned |", "|---|---|---|"]
            lines += [f"| {h['path']} | {h['now']} | {h['planned']} |" for h in self.helm]
        else:
            lines.append("no change")
        lines += [
            "",
            "## Secrets (metadata only)",
            "",
            "| secret | action | detail |",
            "|---|---|---|",
        ]
        lines += [f"| {s['secret']} | {s['action']} | {s['detail']} |" for s in self.secrets]
        if self.notes:
            lines += ["", "## Notes", "", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines) + "\n"
