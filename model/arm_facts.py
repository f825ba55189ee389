"""ArmFacts: what one bulk read of ARM said about a registry's children, handed to site runs.

A fleet run lists the parent registry's connected registries, tokens and scope maps once (a
few paged reads for the whole fleet) instead of every site run reading its own (four reads per
site for status). Each site run gets the slice for its own names and answers its reads from it.

Pure data: no I/O. The JSON travels as a flow-run parameter, so it holds only what ARM's list
answers hold (password names and expiries, never values: :func:`_scrubbed` drops any ``value``
should a future api-version add one). A fact older than :data:`MAX_AGE` is ignored, so a slow
fleet's late sites read live rather than judge on a stale picture.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from model import names

Json = dict[str, Any]

CONNECTED_REGISTRIES = "connectedRegistries"
TOKENS = "tokens"
SCOPE_MAPS = "scopeMaps"
KINDS = (CONNECTED_REGISTRIES, TOKENS, SCOPE_MAPS)
# fleet-status is scheduled every 15 minutes: a fact is never older than one schedule period.
MAX_AGE = timedelta(minutes=15)
# Clocks of the fleet's worker and a shard's worker may differ a little; a fact "from the
# future" beyond this is not trusted.
CLOCK_SKEW = timedelta(minutes=1)
FORMAT = 1


class NotCovered(LookupError):
    """The facts say nothing about this kind or name: the caller must read live."""


def _key(name: str) -> str:
    return name.lower()  # ARM child names are case-insensitive


def _scrubbed(resource: Json) -> Json:
    """The resource without any password value (lists carry none; this keeps it so)."""
    props = resource.get("properties")
    if not isinstance(props, dict) or not isinstance(props.get("credentials"), dict):
        return resource
    creds: Json = props["credentials"]
    passwords = creds.get("passwords")
    if not isinstance(passwords, list):
        return resource
    clean = [
        {k: v for k, v in p.items() if k.lower() != "value"} if isinstance(p, dict) else p
        for p in passwords
    ]
    return {**resource, "properties": {**props, "credentials": {**creds, "passwords": clean}}}


@dataclass(frozen=True)
class ArmFacts:
    """Raw ARM JSON per kind and (lower-cased) name, as the per-resource GET would return it.

    ``covered`` maps each kind read to the names the facts speak for: ``None`` for every name
    (the full list), else a set (a slice for some sites). Only there does a missing name mean
    "absent"; anything else is :class:`NotCovered`.
    """

    registry_id: str
    read_at: datetime
    covered: Mapping[str, frozenset[str] | None]
    resources: Mapping[str, Mapping[str, Json]] = field(default_factory=dict)

    @classmethod
    def from_lists(
        cls, registry_id: str, read_at: datetime, lists: Mapping[str, Iterable[Json]]
    ) -> ArmFacts:
        """Facts from full list answers (each kind given is covered for every name)."""
        unknown = set(lists) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown ARM fact kind(s): {', '.join(sorted(unknown))}")
        if read_at.tzinfo is None:
            raise ValueError("read_at must be timezone-aware (UTC)")
        resources = {
            kind: {_key(str(r["name"])): _scrubbed(dict(r)) for r in items if r.get("name")}
            for kind, items in lists.items()
        }
        return cls(registry_id, read_at.astimezone(UTC), dict.fromkeys(lists), resources)

    def covers(self, kind: str, name: str) -> bool:
        if kind not in self.covered:
            return False
        names_ = self.covered[kind]
        return names_ is None or _key(name) in names_

    def get(self, kind: str, name: str) -> Json | None:
        """The resource's JSON; None when the facts say it does not exist. Raises
        :class:`NotCovered` when they do not speak for that kind and name."""
        if not self.covers(kind, name):
            raise NotCovered(f"{kind}/{name}")
        found = self.resources.get(kind, {}).get(_key(name))
        return None if found is None else dict(found)

    def age(self, now: datetime) -> timedelta:
        return now - self.read_at

    def is_fresh(self, now: datetime, max_age: timedelta = MAX_AGE) -> bool:
        return -CLOCK_SKEW <= self.age(now) <= max_age

    def usable_for(self, registry_id: str, now: datetime, max_age: timedelta = MAX_AGE) -> bool:
        """Fresh, and about this registry (a site run with another parent reads live)."""
        return names.same_id(self.registry_id, registry_id) and self.is_fresh(now, max_age)

    def for_sites(self, cr_names: Iterable[str], client_token_names: Iterable[str]) -> ArmFacts:
        """The slice a shard or site needs: each connected registry, its sync token and sync
        scope map (named after it) and each client token and its scope map (same name)."""
        crs = {_key(n) for n in cr_names}
        clients = {_key(n) for n in client_token_names}
        wanted = {CONNECTED_REGISTRIES: crs, TOKENS: crs | clients, SCOPE_MAPS: crs | clients}
        covered: dict[str, frozenset[str] | None] = {}
        resources: dict[str, dict[str, Json]] = {}
        for kind, had in self.covered.items():
            keep = frozenset(wanted[kind] if had is None else wanted[kind] & had)
            covered[kind] = keep
            have = self.resources.get(kind, {})
            resources[kind] = {n: have[n] for n in sorted(keep) if n in have}
        return ArmFacts(self.registry_id, self.read_at, covered, resources)

    def describe(self) -> str:
        """Where a site run's ARM facts came from, for its artifact."""
        return f"ARM facts from the fleet's read at {self.read_at:%H:%M:%S} UTC"

    def to_json(self) -> Json:
        return {
            "format": FORMAT,
            "registry_id": self.registry_id,
            "read_at": self.read_at.isoformat(),
            "covered": {
                k: None if v is None else sorted(v) for k, v in sorted(self.covered.items())
            },
            "resources": {k: dict(sorted(v.items())) for k, v in sorted(self.resources.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ArmFacts:
        """Inverse of :meth:`to_json`; ValueError for anything else (a hand-typed parameter)."""
        try:
            if data.get("format") != FORMAT:
                raise ValueError(f"unknown ARM facts format {data.get('format')!r}")
            read_at = datetime.fromisoformat(str(data["read_at"]))
            if read_at.tzinfo is None:
                raise ValueError("read_at has no timezone")
            covered: dict[str, frozenset[str] | None] = {}
            for kind, got in dict(data["covered"]).items():
                if kind not in KINDS:
                    raise ValueError(f"unknown ARM fact kind {kind!r}")
                covered[kind] = None if got is None else frozenset(_key(str(n)) for n in got)
            resources = {
                str(kind): {_key(str(n)): _scrubbed(dict(r)) for n, r in dict(items).items()}
                for kind, items in dict(data.get("resources") or {}).items()
                if kind in covered
            }
            return cls(str(data["registry_id"]), read_at.astimezone(UTC), covered, resources)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed ARM facts: {exc}") from None
