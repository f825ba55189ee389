"""`acr-edge deploy` converges the default parent's ARM budget limits (issue 11: pacing shared
by every worker), read back through the real Prefect API."""

from __future__ import annotations

import uuid

import pytest
from deploykit import KWARGS
from prefect.client.orchestration import get_client

from blocks.parent_registry import ParentRegistry
from deployments.register import Outcome, deploy
from model.arm_budget import ARM_RATES, KINDS, limit_settings

pytestmark = pytest.mark.prefect


def _budget(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.kind == "arm-budget"]


def test_deploy_without_the_parent_block_says_the_first_run_creates_the_limits() -> None:
    missing = f"absent-{uuid.uuid4().hex[:6]}"
    heard: list[str] = []
    [left] = _budget(deploy(**{**KWARGS, "parent_block": missing, "warn": heard.append}))
    assert (left.name, left.action) == (missing, "left")
    assert "first flow run creates the limits" in left.detail
    # The run forms' parent default refers to it by slug until it is saved, and deploy says so.
    assert any(f"parent-registry/{missing}" in w and "deploy again" in w for w in heard), heard
    with get_client(sync_client=True) as client:
        dep = client.read_deployment_by_name("site-status/site-status")
    assert dep.parameters["parent_block"] == {
        "$ref": {"block_document_slug": f"parent-registry/{missing}"}
    }


def test_deploy_creates_then_leaves_the_parent_subscriptions_limits() -> None:
    sub = str(uuid.uuid4())
    name = f"parent-{uuid.uuid4().hex[:6]}"
    ParentRegistry(
        subscription_id=sub, resource_group="rg-edge", registry_name="acredge", auth="default"
    ).save(name, overwrite=True)
    first = _budget(deploy(**{**KWARGS, "parent_block": name}))
    wanted = [limit_settings(k, sub, ARM_RATES) for k in KINDS]
    assert [(o.name, o.action) for o in first] == [(s.name, "updated") for s in wanted]
    with get_client(sync_client=True) as client:
        for s in wanted:
            found = client.read_global_concurrency_limit_by_name(s.name)
            assert (found.limit, found.active) == (s.limit, True)
            assert found.slot_decay_per_second == pytest.approx(s.slot_decay_per_second)
    again = _budget(deploy(**{**KWARGS, "parent_block": name}))
    assert [(o.name, o.action) for o in again] == [(s.name, "unchanged") for s in wanted]
