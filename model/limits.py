"""Service limits acr-edge checks before it writes (pure): one number, one place.

Sources: ACR connected-registry and token/scope-map limits (Azure docs, "Connected registry
limits" and "Repository-scoped permissions"); Kubernetes object name limits.
"""

from __future__ import annotations

from datetime import timedelta

# A scope map lists at most this many repositories.
MAX_REPOSITORIES_PER_SCOPE_MAP = 500
# A connected registry accepts at most this many client tokens.
MAX_CLIENT_TOKENS_PER_CR = 20
# syncProperties.syncWindow of a scheduled (non-continuous) connected registry.
SYNC_WINDOW_MIN = timedelta(hours=1)
SYNC_WINDOW_MAX = timedelta(days=7)
# syncProperties.messageTtl.
MESSAGE_TTL_MIN = timedelta(days=1)
MESSAGE_TTL_MAX = timedelta(days=90)
# A repository namespace, like an OCI repository name, fits in 256 characters.
MAX_NAMESPACE_LENGTH = 256
# Client-token password lifetime acr-edge generates (days).
CLIENT_PASSWORD_DAYS_MIN = 1
CLIENT_PASSWORD_DAYS_MAX = 3650
