"""Which stored desired spec applies to a site (pure: no I/O).

Specs are stored per site or per tag (``edge-site-spec`` blocks). A spec that names the site
wins over specs that match it by tag, so one site can be carved out of its group; two specs
by tag that disagree about one site are refused rather than picked between, because either
choice could remove repositories the other one syncs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from model.errors import InputError

SPEC_BLOCK_TYPE = "edge-site-spec"


@dataclass(frozen=True)
class StoredSpec:
    """One stored spec: its block name, whom it applies to and the provision settings."""

    name: str
    sites: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    # The provision settings (the ProvisionSpec fields, without the run-only dry_run).
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    spec: StoredSpec
    why: str  # "names the site" / "by tag 'north'": said in the run's report


def resolve(site_block: str, site_tags: Iterable[str], specs: Iterable[StoredSpec]) -> Resolved:
    """The spec that applies to ``site_block`` (an EdgeSite block name) with ``site_tags``.

    Raises InputError when two specs name the site, when two specs by tag with different
    settings match it, or when none applies (naming the site and the fix).
    """
    tags = set(site_tags)
    specs = sorted(specs, key=lambda s: s.name)
    by_name = [s for s in specs if site_block in s.sites]
    if len(by_name) > 1:
        raise InputError(
            f"site {site_block} is named by more than one {SPEC_BLOCK_TYPE} block: "
            f"{', '.join(s.name for s in by_name)}",
            resource=f"site {site_block}",
            fix=f"remove {site_block} from the sites of all but one of them",
        )
    if by_name:
        return Resolved(by_name[0], f"{SPEC_BLOCK_TYPE} block {by_name[0].name} names the site")
    by_tag = [s for s in specs if tags & set(s.tags)]
    if not by_tag:
        shown = f" (tags: {', '.join(sorted(tags))})" if tags else " (no tags)"
        raise InputError(
            f"no {SPEC_BLOCK_TYPE} block applies to site {site_block}{shown}",
            resource=f"site {site_block}",
            fix=f"save an {SPEC_BLOCK_TYPE} block whose sites list {site_block} or whose tags "
            "include one of the site's tags, or pass spec to the run",
        )
    first = by_tag[0]
    for other in by_tag[1:]:
        if dict(other.body) != dict(first.body):
            differ = sorted(
                k
                for k in set(first.body) | set(other.body)
                if first.body.get(k) != other.body.get(k)
            )
            raise InputError(
                f"{SPEC_BLOCK_TYPE} blocks {first.name} and {other.name} both apply to site "
                f"{site_block} by tag and differ in {', '.join(differ)}",
                resource=f"site {site_block}",
                fix=f"make them agree, narrow their tags, or add {site_block} to the sites of "
                "the one that should win",
            )
    matched = sorted(tags & set(first.tags))
    return Resolved(first, f"{SPEC_BLOCK_TYPE} block {first.name} by tag {matched[0]!r}")


def covers(spec: StoredSpec, site_block: str, site_tags: Iterable[str]) -> bool:
    """Whether ``spec`` applies to the site at all (by name or by tag)."""
    return site_block in spec.sites or bool(set(site_tags) & set(spec.tags))


def covered_sites(sites: Mapping[str, Iterable[str]], specs: Iterable[StoredSpec]) -> list[str]:
    """EdgeSite block names (with their tags) that some stored spec applies to, sorted."""
    specs = list(specs)
    return sorted(n for n, tags in sites.items() if any(covers(s, n, tags) for s in specs))


def unknown_sites(sites: Iterable[str], specs: Iterable[StoredSpec]) -> list[str]:
    """Site names the specs list that no EdgeSite block has (likely typos), sorted."""
    known = set(sites)
    return sorted({n for s in specs for n in s.sites if n not in known})
