"""Step boundaries of the flows, and the one seam tests use to interrupt a run there.

Every flow calls :func:`reached` after each step completes. Production registers no hooks, so
this only logs. A test registers a hook (``with on_step(fn):``) that may raise to simulate a
crash at exactly that boundary, or check invariants there (e.g. that pulls still work); the
flow's own code paths run unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

log = logging.getLogger("acr_edge.flows")

StepHook = Callable[[str, str, str], None]  # (flow name, site, step)
_HOOKS: list[StepHook] = []


def reached(flow: str, site: str, step: str) -> None:
    log.debug("%s %s: step %s done", flow, site, step)
    for hook in list(_HOOKS):
        hook(flow, site, step)


@contextmanager
def on_step(hook: StepHook) -> Iterator[None]:
    _HOOKS.append(hook)
    try:
        yield
    finally:
        _HOOKS.remove(hook)
