"""Sync-setting rules a connected registry's spec is checked against (pure).

The rules themselves live in the model (``model.cron``, ``model.durations``, ``model.limits``),
where blocks, flow models and deployments use the same ones; this module names them for the
connected-registry spec (``tasks.azure.desired``) and the status flow.
"""

from __future__ import annotations

from model.cron import CONTINUOUS, validate_cron
from model.durations import (
    format_duration,
    parse_duration,
    validate_message_ttl,
    validate_sync_window,
)

__all__ = [
    "CONTINUOUS",
    "format_duration",
    "parse_duration",
    "validate_cron",
    "validate_message_ttl",
    "validate_sync_window",
]
