"""In-memory Azure state: subscriptions, registries and their child resources, LROs, secrets.

One re-entrant lock guards everything; the server holds it for the whole of each request.
"""

from __future__ import annotations

import copy
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sandbox.azure.config import Knobs
from sandbox.azure.lro import LroOutcome

PROVIDER = "Microsoft.ContainerRegistry"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def parse_iso(value: str) -> datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # ARM sends 7 fractional digits; Python accepts at most 6
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        tail = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{tail}"
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class Password:
    name: str
    value: str
    creation_time: datetime
    expiry: datetime | None = None

    def live(self, now: datetime) -> bool:
        return self.expiry is None or self.expiry > now

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = {"creationTime": iso(self.creation_time), "name": self.name}
        if self.expiry is not None:
            out["expiry"] = iso(self.expiry)
        return out


@dataclass
class Child:
    """A scope map, token or connected registry: canonical name + ARM properties."""

    name: str
    properties: dict[str, Any]
    created: datetime = field(default_factory=utcnow)
    op_id: str | None = None
    pending_state: str = "Creating"  # shown while op_id is not complete
    # tokens only
    passwords: dict[str, Password] = field(default_factory=dict)
    # connected registries only: which runtime instance activated it
    instance_id: str | None = None
    # connected registries only: a state a test holds it in (Syncing, Unhealthy + code, ...)
    held_state: dict[str, Any] | None = None
    # connected registries only: when each client token id joined clientTokenIds
    client_tokens_since: dict[str, datetime] = field(default_factory=dict)


@dataclass
class Registry:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    sku: str = "Premium"
    data_endpoint_enabled: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    created: datetime = field(default_factory=utcnow)
    extra: dict[str, Any] = field(default_factory=dict)  # other PATCHable properties
    repositories: list[str] = field(default_factory=list)
    scope_maps: dict[str, Child] = field(default_factory=dict)
    tokens: dict[str, Child] = field(default_factory=dict)
    connected_registries: dict[str, Child] = field(default_factory=dict)
    op_id: str | None = None

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{PROVIDER}/registries/{self.name}"
        )

    @property
    def login_server(self) -> str:
        return f"{self.name.lower()}.azurecr.io"

    @property
    def data_endpoint_host(self) -> str:
        return f"{self.name.lower()}.{self.location.lower()}.data.azurecr.io"

    def child_id(self, collection: str, name: str) -> str:
        return f"{self.id}/{collection}/{name}"


@dataclass
class Operation:
    """An LRO: InProgress until ``polls_required`` polls were answered and ``deadline`` passed."""

    id: str
    style: str  # "async" (Azure-AsyncOperation) or "location"
    polls_required: int
    deadline: float
    final_status: int = 200
    final_body: Any = None
    polls_seen: int = 0
    start: datetime = field(default_factory=utcnow)
    end: datetime | None = None
    # How the operation ends: "Succeeded", "Failed" or "Canceled" (an LroOutcome rule), with the
    # ARM error the operation status carries and the HTTP status a Location poll answers.
    outcome: str = "Succeeded"
    error: dict[str, Any] | None = None
    error_status: int = 500

    def complete(self) -> bool:
        return self.polls_seen >= self.polls_required and time.time() >= self.deadline

    def poll(self) -> bool:
        done = self.complete()
        self.polls_seen += 1
        if done and self.end is None:
            self.end = utcnow()
        return done


@dataclass
class Principal:
    """A service principal: its app (client) id, its object id and its role assignments."""

    client_id: str
    object_id: str
    assignments: list[tuple[str, str]] = field(default_factory=list)  # (scope, role name)


@dataclass
class Tenant:
    id: str
    clients: dict[str, str] = field(default_factory=dict)  # client_id -> secret


@dataclass
class Subscription:
    id: str
    display_name: str
    tenant_id: str
    resource_groups: dict[str, tuple[str, str]] = field(default_factory=dict)  # lower -> name,loc


class Store:
    def __init__(self, knobs: Knobs) -> None:
        self.lock = threading.RLock()
        self.knobs = knobs
        self.tenants: dict[str, Tenant] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.registries: dict[tuple[str, str, str], Registry] = {}
        self.operations: dict[str, Operation] = {}
        self.principals: dict[str, Principal] = {}  # client id (lower) -> principal
        self.issued_secrets: list[str] = []
        self._issued_set: set[str] = set()

    # -- secrets ---------------------------------------------------------------------------
    def remember_secret(self, value: str) -> None:
        with self.lock:
            if value and value not in self._issued_set:
                self._issued_set.add(value)
                self.issued_secrets.append(value)

    def new_password(self) -> str:
        # ACR passwords are 32+ chars of base64-ish text; '=' and '+' are common in them
        value = secrets.token_urlsafe(33)[:42] + "+="[secrets.randbelow(2)]
        self.remember_secret(value)
        return value

    # -- lookups ---------------------------------------------------------------------------
    def add_tenant(self, tenant_id: str) -> Tenant:
        with self.lock:
            return self.tenants.setdefault(tenant_id.lower(), Tenant(id=tenant_id))

    def add_registry(self, registry: Registry) -> Registry:
        with self.lock:
            key = (
                registry.subscription_id.lower(),
                registry.resource_group.lower(),
                registry.name.lower(),
            )
            sub = self.subscriptions[registry.subscription_id.lower()]
            sub.resource_groups.setdefault(
                registry.resource_group.lower(), (registry.resource_group, registry.location)
            )
            self.registries[key] = registry
            return registry

    def principal_by_object_id(self, object_id: str) -> Principal | None:
        return next(
            (p for p in self.principals.values() if p.object_id.lower() == object_id.lower()),
            None,
        )

    def find_registry(self, sub: str, rg: str, name: str) -> Registry | None:
        return self.registries.get((sub.lower(), rg.lower(), name.lower()))

    def all_registries(self) -> list[Registry]:
        return sorted(self.registries.values(), key=lambda r: r.id.lower())

    def registry_by_id(self, arm_id: str) -> Registry | None:
        parts = arm_id.strip("/").split("/")
        if len(parts) < 8:
            return None
        return self.find_registry(parts[1], parts[3], parts[7])

    # -- operations ------------------------------------------------------------------------
    def new_operation(
        self,
        style: str,
        prefix: str,
        *,
        final_status: int = 200,
        final_body: Any = None,
        outcome: LroOutcome | None = None,
    ) -> Operation:
        """``prefix`` names the resource kind in the operation id as ACR does: the recordings
        show ``registries-<guid>`` and ``token-<guid>``, the examples ``scopemaps-<guid>``."""
        op = Operation(
            id=f"{prefix}-{uuid.uuid4()}",
            style=style,
            polls_required=self.knobs.lro_polls,
            deadline=time.time() + self.knobs.lro_seconds,
            final_status=final_status,
            final_body=copy.deepcopy(final_body),
        )
        if outcome is not None:
            op.outcome, op.error, op.error_status = (
                outcome.status,
                outcome.error(),
                outcome.http_status,
            )
        self.operations[op.id.lower()] = op
        return op

    def operation_done(self, op_id: str | None) -> bool:
        if op_id is None:
            return True
        op = self.operations.get(op_id.lower())
        return op is None or op.complete()

    def provisioning_state(self, op_id: str | None, pending: str) -> str:
        """``pending`` while the resource's last operation runs, then how it ended."""
        if op_id is None:
            return "Succeeded"
        op = self.operations.get(op_id.lower())
        if op is None:
            return "Succeeded"
        return op.outcome if op.complete() else pending
