"""Whether a run would remove repositories from a site's sync scope (pure: no I/O).

A ReadOnly connected registry deletes from the site what leaves its sync scope map, so a
narrower scope is applied only with an operator's approval. Anything not approved stays in the
scope: the run syncs the union of what the site has and what the spec now asks for.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ScopeDecision:
    repositories: tuple[str, ...]  # what the run writes into the scope maps
    removed: tuple[str, ...]  # leave the scope (approved)
    kept: tuple[str, ...]  # would leave the scope, not approved: kept
    added: tuple[str, ...]

    @property
    def message(self) -> str:
        parts = [f"{len(self.repositories)} repositories in scope"]
        if self.added:
            parts.append(f"{len(self.added)} added")
        if self.removed:
            parts.append(f"{len(self.removed)} removed (approved): {', '.join(self.removed)}")
        if self.kept:
            parts.append(
                f"{len(self.kept)} kept although the spec no longer covers them (removal not "
                f"approved): {', '.join(self.kept)}"
            )
        return "; ".join(parts)


def removals(current: Iterable[str], desired: Iterable[str]) -> tuple[str, ...]:
    """Repositories in the site's scope now that the desired scope leaves out (sorted)."""
    want = {d.lower() for d in desired}  # the service lower-cases actions
    return tuple(sorted({c for c in current if c.lower() not in want}))


def decide(
    current: Iterable[str] | None, desired: Iterable[str], approved: Iterable[str] = ()
) -> ScopeDecision:
    """The scope to write: ``desired`` plus every current repository whose removal is not in
    ``approved``. ``current`` None: the site has no scope map yet, nothing can be removed."""
    desired = list(dict.fromkeys(desired))
    have = list(current or [])
    gone = removals(have, desired)
    ok = {a.lower() for a in approved}
    removed = tuple(r for r in gone if r.lower() in ok)
    kept = tuple(r for r in gone if r.lower() not in ok)
    have_lower = {h.lower() for h in have}
    added = tuple(sorted(d for d in desired if d.lower() not in have_lower))
    return ScopeDecision(tuple(sorted(set(desired) | set(kept))), removed, kept, added)
