"""Checks of ACR token credentials shared by the data plane and the connected-registry runtime."""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta

from sandbox.azure.store import Child, Password


def matching_password(
    token: Child, password: str, now: datetime, *, min_age: float = 0.0
) -> tuple[Password | None, str]:
    """The live slot whose value is ``password`` and the reason when there is none."""
    for slot in token.passwords.values():
        if hmac.compare_digest(slot.value.encode(), password.encode()):
            if not slot.live(now):
                return None, f"password {slot.name} of token '{token.name}' has expired"
            if min_age and now - slot.creation_time < timedelta(seconds=min_age):
                return None, (
                    f"password {slot.name} of token '{token.name}' has not propagated "
                    f"to the connected registry yet"
                )
            return slot, ""
    return None, f"the password does not match any current password of token '{token.name}'"


def scope_map_actions(registry_scope_maps: dict[str, Child], scope_map_id: str) -> list[str]:
    name = scope_map_id.rstrip("/").rsplit("/", 1)[-1].lower()
    scope_map = registry_scope_maps.get(name)
    return list(scope_map.properties.get("actions", [])) if scope_map else []


def grants(actions: list[str], repository: str, action: str) -> bool:
    """Whether ``repositories/<repository>/<action>`` is in ``actions`` (case-insensitive)."""
    wanted = f"repositories/{repository}/{action}".lower()
    return any(a.lower() == wanted for a in actions)
