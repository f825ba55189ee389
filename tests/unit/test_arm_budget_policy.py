"""Which requests draw what from the shared ARM budget: the pure rules, and the pipeline policy
in the block's real management clients against the sandbox (a recording budget stands in for
the Prefect-backed one, which tests/flows/test_arm_budget.py exercises)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from acr_edge.sandbox_blocks import parent_block
from model.arm_budget import (
    ARM_RATES,
    ArmRates,
    BucketRate,
    Kind,
    batch_size,
    limit_name,
    limit_settings,
    request_kind,
)
from model.errors import InputError

SUB = "00000000-0000-0000-0000-0000000000AB"
ARM = "https://management.azure.com"


@pytest.mark.parametrize(
    ("method", "url", "kind"),
    [
        ("GET", f"{ARM}/subscriptions/x/providers?api-version=1", "reads"),
        ("HEAD", f"{ARM}/subscriptions/x", "reads"),
        ("get", f"{ARM}/subscriptions/x/operationStatuses/1", "reads"),  # an LRO poll
        ("PUT", f"{ARM}/subscriptions/x/scopeMaps/a", "writes"),
        ("PATCH", f"{ARM}/subscriptions/x/connectedRegistries/a", "writes"),
        ("POST", f"{ARM}/subscriptions/x/generateCredentials", "writes"),
        ("DELETE", f"{ARM}/subscriptions/x/tokens/a", "deletes"),
        ("GET", "https://MANAGEMENT.azure.com/subscriptions/x", "reads"),  # hosts ignore case
        ("GET", "https://contoso.azurecr.io/acr/v1/_catalog", None),  # the data plane
        ("POST", "https://login.microsoftonline.com/t/oauth2/v2.0/token", None),  # Entra ID
        ("GET", "https://management.azure.com:8443/subscriptions/x", None),  # another port
        ("GET", "http://management.azure.com/subscriptions/x", None),  # another scheme
    ],
)
def test_request_kind_by_method_for_the_arm_endpoint_only(
    method: str, url: str, kind: Kind | None
) -> None:
    assert request_kind(method, url, ARM) == kind


def test_limit_names_are_per_subscription_and_case_blind() -> None:
    name = limit_name("writes", SUB)
    assert name.startswith("arm-writes-") and len(name) == len("arm-writes-") + 8
    assert limit_name("writes", SUB.lower()) == name
    assert limit_name("writes", "11111111-0000-0000-0000-000000000000") != name
    assert {limit_name(k, SUB)[-8:] for k in ("reads", "writes", "deletes")} == {name[-8:]}


def test_arm_defaults_keep_headroom_for_a_batch_held_hold_seconds() -> None:
    reads = limit_settings("reads", SUB)
    # 25/s for 0.4 s: 10 slots below ARM's 250; batches of up to 5.
    assert (reads.limit, reads.slot_decay_per_second, reads.max_batch) == (240, 25.0, 5)
    writes = limit_settings("writes", SUB)
    assert (writes.limit, writes.slot_decay_per_second, writes.max_batch) == (196, 10.0, 5)
    deletes = limit_settings("deletes", SUB)
    assert (deletes.limit, deletes.slot_decay_per_second) == (196, 10.0)
    assert deletes.name != writes.name


def test_no_batching_means_the_full_capacity_and_one_slot_per_request() -> None:
    rates = ArmRates(max_batch=1)
    s = limit_settings("writes", SUB, rates)
    assert (s.limit, s.max_batch, s.hold_seconds) == (200, 1, 0.0)
    unheld = limit_settings("reads", SUB, ArmRates(hold_seconds=0))
    assert (unheld.limit, unheld.max_batch) == (250, 1)
    # A bucket too small to batch (capacity 2, refill 5/s: headroom 2) is not batched.
    tiny = limit_settings("writes", SUB, ArmRates(writes=BucketRate(2, 5.0)))
    assert (tiny.limit, tiny.max_batch) == (2, 1)


def test_batch_follows_recent_demand_within_one_batch() -> None:
    s = limit_settings("reads", SUB)
    assert [batch_size(n, s) for n in (0, 1, 3, 5, 50)] == [1, 1, 3, 5, 5]


def test_rates_from_json_and_refusals() -> None:
    rates = ArmRates.from_json('{"writes": {"capacity": 5, "refill_per_second": 2}}')
    assert rates.writes == BucketRate(5, 2.0) and rates.reads == ARM_RATES.reads
    for bad in ("[]", '{"writes": {"capacity": 0, "refill_per_second": 2}}', '{"wrytes": {}}'):
        with pytest.raises(InputError, match="ARM rates"):
            ArmRates.from_json(bad)
    with pytest.raises(InputError):
        ArmRates.from_json("not json")


# -- the pipeline policy in the block's clients, against the sandbox ----------------------


class RecordingBudget:
    def __init__(self) -> None:
        self.draws: list[Kind] = []
        self.lock = threading.Lock()

    def draw(self, kind: Kind) -> None:
        with self.lock:
            self.draws.append(kind)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from sandbox.runner import start_sandbox

    running = start_sandbox(Path(tmp_path_factory.mktemp("budget")), sites=0)
    try:
        yield running
    finally:
        running.stop()


def _arm_methods(sandbox: Any) -> Counter[str]:
    """Subscription requests ARM saw (not the cloud metadata the block reads once with
    requests, outside any subscription's buckets)."""
    arm = sandbox.azure.requests("arm")
    return Counter(r["method"] for r in arm if r["path"].startswith("/subscriptions/"))


def test_every_arm_request_draws_by_method_and_nothing_else_draws(sandbox: Any) -> None:
    info = sandbox.info
    block = parent_block(info)
    budget = RecordingBudget()
    block.use_arm_budget(budget)
    sandbox.azure.set_knobs(retry_after=0, lro_polls=2)
    sandbox.azure.clear_requests()
    ctx = block.azure_context(polling_interval=0, retry_base_delay=0.01)
    try:
        rg, reg = info["resource_group"], info["registry"]
        sm = ctx.mgmt.scope_maps.begin_create(
            rg, reg, "budgetmap", {"properties": {"actions": ["repositories/a/content/read"]}}
        ).result()
        ctx.mgmt.tokens.begin_create(  # a long-running operation: polled
            rg, reg, "budgettoken", {"properties": {"scopeMapId": sm.id, "status": "enabled"}}
        ).result()
        ctx.mgmt.scope_maps.get(rg, reg, "budgetmap")
        ctx.mgmt.tokens.begin_delete(rg, reg, "budgettoken").result()
        ctx.mgmt.scope_maps.begin_delete(rg, reg, "budgetmap").result()
        list(ctx.catalog.list_repository_names())  # the data plane: never drawn
    finally:
        ctx.close()
    assert sm.name == "budgetmap"
    seen = _arm_methods(sandbox)
    drawn = Counter(budget.draws)
    assert drawn["writes"] == seen["PUT"] + seen["PATCH"] + seen["POST"] >= 1
    assert drawn["deletes"] == seen["DELETE"] >= 1
    assert drawn["reads"] == seen["GET"] + seen["HEAD"] >= 3  # the get and the LRO polls
    polls = [r for r in sandbox.azure.requests("arm") if r["lro_poll"]]
    assert polls, "the token create is polled in the sandbox"
    assert sum(drawn.values()) == sum(seen.values())


def test_each_attempt_draws_so_a_retried_429_draws_again(sandbox: Any) -> None:
    info = sandbox.info
    block = parent_block(info)
    budget = RecordingBudget()
    block.use_arm_budget(budget)
    sandbox.azure.add_fault("429", method="GET", path="scopeMaps/retrymap$", times=2)
    sandbox.azure.clear_requests()
    mgmt = block.management_client(
        polling_interval=0, policy=block.retry_policy.replace(base_delay=0.01, max_delay=0.05)
    )
    try:
        with pytest.raises(ResourceNotFoundError):
            mgmt.scope_maps.get(info["resource_group"], info["registry"], "retrymap")
    finally:
        mgmt.close()
        sandbox.azure.clear_faults()
    # Two 429s then the real answer: three requests reached ARM, three reads drawn.
    assert _arm_methods(sandbox)["GET"] == 3
    assert budget.draws == ["reads", "reads", "reads"]


def test_a_block_without_a_budget_draws_nothing(sandbox: Any) -> None:
    block = parent_block(sandbox.info)
    assert block._arm_budget is None
    mgmt = block.management_client(polling_interval=0)
    try:
        policies = [type(p).__name__ for p in mgmt._client._pipeline._impl_policies]
    finally:
        mgmt.close()
    assert "ArmBudgetPolicy" not in policies


def test_outside_a_flow_run_no_budget_is_drawn() -> None:
    from flows.arm_budget import flow_arm_budget

    assert flow_arm_budget(SUB) is None
