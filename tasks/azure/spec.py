"""The desired settings of one connected registry, validated when built (pure).

Flows build it from their parameters; :mod:`tasks.azure.desired` plans against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from model.errors import InputError
from model.names import name_from_id, validate_cr_name
from tasks.azure import actions as act
from tasks.azure.schedule import (
    CONTINUOUS,
    validate_cron,
    validate_message_ttl,
    validate_sync_window,
)


@dataclass(frozen=True)
class ConnectedRegistrySpec:
    """Desired settings of one connected registry; validated on construction."""

    name: str
    mode: str = "ReadOnly"
    sync_schedule: str = "30 * * * *"
    sync_window: str | None = "PT1H"
    message_ttl: str = "P2D"
    log_level: str = "Information"
    audit_log_status: str = "Disabled"
    gc_enabled: bool = False
    gc_schedule: str = "0 0 * * *"
    client_token_ids: tuple[str, ...] = field(default_factory=tuple)
    parent_id: str | None = None

    def __post_init__(self) -> None:
        validate_cr_name(self.name)
        object.__setattr__(self, "mode", act.normalize_mode(self.mode))
        object.__setattr__(self, "sync_schedule", validate_cron(self.sync_schedule))
        object.__setattr__(self, "gc_schedule", validate_cron(self.gc_schedule))
        validate_message_ttl(self.message_ttl)
        if self.sync_window is not None:
            validate_sync_window(self.sync_window)
        elif self.sync_schedule != CONTINUOUS:
            raise InputError(
                "a sync window is required when the sync schedule is not continuous "
                f"({self.sync_schedule!r}).",
                resource="sync_window",
            )
        if self.log_level not in ("Debug", "Information", "Warning", "Error", "None"):
            raise InputError(f"log level {self.log_level!r} is invalid.", resource="log_level")
        if self.audit_log_status not in ("Enabled", "Disabled"):
            raise InputError(
                f"audit log status {self.audit_log_status!r} is invalid.", resource="audit_log"
            )
        ids = tuple(dict.fromkeys(self.client_token_ids))
        act.check_client_token_limit(len(ids), self.name)
        for tid in ids:
            name_from_id(tid, "tokens")
        object.__setattr__(self, "client_token_ids", ids)
