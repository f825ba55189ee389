"""The ARM poller honours Retry-After, including an explicit 0, through the block's client."""

from __future__ import annotations

from typing import Any

from azure_sandbox_helpers import block_for

from blocks.azure_pipeline import ZERO_RETRY_AFTER_SECONDS
from sandbox.testing import RecordingTransport


def _create_token(sandbox: Any, *, retry_after: int) -> list[float]:
    info = sandbox.info
    sandbox.azure.set_knobs(retry_after=retry_after, lro_polls=2)
    transport = RecordingTransport(connection_verify=info["ca_bundle"])
    mgmt = block_for(info).management_client(polling_interval=30, transport=transport)
    rg, reg = info["resource_group"], info["registry"]
    sm = mgmt.scope_maps.begin_create(
        rg, reg, "pollmap", {"properties": {"actions": ["repositories/a/content/read"]}}
    ).result()
    mgmt.tokens.begin_create(
        rg, reg, "polltoken", {"properties": {"scopeMapId": sm.id, "status": "enabled"}}
    ).result()
    mgmt.close()
    return transport.sleeps


def test_zero_retry_after_polls_again_at_once_not_after_the_interval(sandbox: Any) -> None:
    sleeps = _create_token(sandbox, retry_after=0)
    assert sleeps, "the token create is a long-running operation in the sandbox"
    assert all(s == ZERO_RETRY_AFTER_SECONDS for s in sleeps), sleeps


def test_positive_retry_after_is_honoured_as_given(sandbox: Any) -> None:
    sleeps = _create_token(sandbox, retry_after=7)
    assert sleeps and all(s == 7 for s in sleeps), sleeps
