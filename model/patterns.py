"""Every name and text pattern acr-edge checks input against, compiled once (pure).

Each pattern is matched against the whole string (``fullmatch``: ``re.match(...$)`` would let a
trailing newline through) and is ASCII only (``re.ASCII``, explicit ``[0-9]``): ``\\d`` and
``\\w`` accept other scripts' digits and letters, which ARM, Kubernetes and cron then reject
(or, worse, accept) after acr-edge has already written something.

Call ``matches(PATTERN, value)``; the validators that raise with a fix live in
``model.names``, ``model.cron`` and ``model.durations``.
"""

from __future__ import annotations

import re
from typing import Any


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


# ---- Azure Container Registry (ARM) names -----------------------------------------------------
# ARM allows mixed case for connected registries (^[a-zA-Z0-9]*$, 5-50) but we insist on
# lowercase: gateway actions are lower-cased by the service, older CLIs refused uppercase, and
# runtime <= 0.6 failed to activate a mixed-case CR.
CR_NAME = _compile(r"[a-z0-9]{5,50}")
REGISTRY_NAME = _compile(r"[a-zA-Z0-9]{5,50}")
SCOPE_MAP_NAME = _compile(r"[a-zA-Z0-9_-]{5,50}")
TOKEN_NAME = _compile(r"[a-zA-Z0-9-]{5,50}")
# Resource groups: letters, digits, '-', '_', '.', '(' and ')'; ASCII only here (ARM also takes
# Unicode letters, which no acr-edge deployment needs and which break shell-free tooling).
RESOURCE_GROUP = _compile(r"[-A-Za-z0-9_.()]{0,89}[-A-Za-z0-9_()]")

# ---- Prefect ----------------------------------------------------------------------------------
# Block document names (and the tags acr-edge selects sites by): lowercase letters, digits, '-'.
BLOCK_NAME = _compile(r"[a-z0-9][a-z0-9-]{0,62}")

# ---- Kubernetes -------------------------------------------------------------------------------
# RFC 1123 label (namespaces, Helm release names, secret names): at most 63 characters.
DNS1123_LABEL = _compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")

# RFC 1123 subdomain (a Kubernetes node name, what `kubectl get nodes` prints): at most 253.
DNS1123_SUBDOMAIN = _compile(
    r"(?=.{1,253}\Z)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*"
)

# ---- systemd ----------------------------------------------------------------------------------
# A unit name as systemd takes it; it goes into a `systemctl` argv, so nothing else gets through.
SYSTEMD_UNIT = _compile(r"[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]{0,199}")

# ---- OCI distribution -------------------------------------------------------------------------
# A repository path component: lowercase alphanumerics joined by '.', '_', '__' or dashes.
OCI_COMPONENT_TEXT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
OCI_COMPONENT = _compile(OCI_COMPONENT_TEXT)
# A repository namespace: components separated by '/' ('samples', 'team/app').
OCI_NAMESPACE = _compile(rf"{OCI_COMPONENT_TEXT}(?:/{OCI_COMPONENT_TEXT})*")

# ---- Endpoints --------------------------------------------------------------------------------
# A connected registry's gateway endpoint: host[:port], never a URL (the runtime adds the scheme).
HOST_PORT = _compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?")

# ---- SSH --------------------------------------------------------------------------------------
# POSIX portable user name as useradd accepts it (no leading digit or dash, at most 32).
SSH_USER = _compile(r"[a-z_][a-z0-9_.-]{0,31}")

# ---- Schedules --------------------------------------------------------------------------------
# One cron field: digits and the operators every cron dialect shares ('*', '/', ',', '-').
CRON_FIELD = _compile(r"[0-9*/,-]+")
# ISO-8601 duration as ACR takes it (weeks, days, hours, minutes, seconds).
ISO_DURATION = _compile(
    r"P(?:(?P<weeks>[0-9]+)W)?(?:(?P<days>[0-9]+)D)?"
    r"(?:T(?:(?P<hours>[0-9]+)H)?(?:(?P<minutes>[0-9]+)M)?"
    r"(?:(?P<seconds>[0-9]+(?:\.[0-9]+)?)S)?)?"
)
# A node selection: "all" or one label selector key=value (a prefixed key like
# node-role.kubernetes.io/worker may hold "/" and "."; the value is a label value, 0-63 chars).
NODE_SELECTION = _compile(r"all|[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?=[-A-Za-z0-9_.]{0,63}")
# .NET TimeSpan text ("1.00:00:00", "01:00:00"), which some API versions echo back.
TIMESPAN = _compile(r"(?:(?P<days>[0-9]+)\.)?(?P<h>[0-9]{1,2}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})")


def form_pattern(pattern: re.Pattern[str]) -> str:
    """The pattern for a JSON-schema form (the Prefect UI), anchored as JSON schema needs; the
    form only hints, the Python rule decides."""
    return f"^{pattern.pattern}$"


def matches(pattern: re.Pattern[str], value: Any) -> bool:
    """Whether ``value`` is a string that ``pattern`` matches from its first to last character."""
    return isinstance(value, str) and pattern.fullmatch(value) is not None
