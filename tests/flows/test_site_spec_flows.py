"""Stored per-site specs against the sandbox: provision-site with no spec, the shrink gate
(unapproved, timed out, approved, dry run) and new parent repositories reaching the site on
the reconcile path (provision-site with no spec, as reconcile-fleet starts it)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flowkit import FlowSandbox, start

from blocks.site_spec import EdgeSiteSpec
from flows.provision_site import provision_site
from model.errors import InputError, PermanentError

pytestmark = pytest.mark.prefect
TWO = ["samples", "edge/apps"]


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("sitespec"), sites=1)
    box.extra["spec"] = f"spec-{uuid.uuid4().hex[:6]}"
    try:
        yield box
    finally:
        box.running.stop()


def _store(fsb: FlowSandbox, namespaces: list[str], **fields: Any) -> None:
    """The site's stored spec (by name); a spec by its tag says otherwise and must lose."""
    EdgeSiteSpec(sites=[fsb.site_blocks[0]], namespaces=namespaces, **fields).save(
        fsb.extra["spec"], overwrite=True
    )


def _scope(fsb: FlowSandbox) -> set[str]:
    cr = fsb.info["sites"][0]["name"]
    actions = fsb.azure.resource("scopeMaps", cr)["properties"]["actions"]
    return {a.split("/content/read")[0][len("repositories/") :] for a in actions
            if a.endswith("/content/read")}  # fmt: skip


def _repos(fsb: FlowSandbox, *namespaces: str) -> set[str]:
    listed = fsb.azure.primary_registry().repositories
    return {r for r in listed if any(r.startswith(f"{ns}/") for ns in namespaces)}


def _paused_run(site_block: str, timeout: float = 180) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    name=FlowRunFilterName(any_=[f"provision-{site_block}"]),
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
                )
            )
            if runs:
                return runs[0]
            time.sleep(0.5)
    raise AssertionError(f"provision-{site_block} never paused")


class _Run(threading.Thread):
    """provision-site in a thread, so the test can answer its pause."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(daemon=True)
        self.args, self.kwargs = args, kwargs
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = provision_site(*self.args, **self.kwargs)
        except BaseException as exc:  # the test asserts on it
            self.error = exc


def _form(run: Any) -> str:
    """The pause's form description as the UI shows it."""
    from prefect.client.orchestration import get_client

    keyset = run.state.state_details.run_input_keyset
    with get_client(sync_client=True) as client:
        return str(client.read_flow_run_input(run.id, keyset["description"]))


def test_no_stored_spec_is_refused_naming_the_site(fsb: FlowSandbox) -> None:
    with pytest.raises(InputError) as err:
        provision_site(fsb.site_blocks[0], fsb.parent_block)
    assert fsb.site_blocks[0] in str(err.value) and fsb.arm_writes() == []


def test_provision_with_the_stored_spec_and_no_spec_parameter(fsb: FlowSandbox) -> None:
    # A spec by the site's tag with other namespaces: the spec naming the site wins.
    EdgeSiteSpec(tags=[fsb.tag], namespaces=["library"]).save(
        f"{fsb.extra['spec']}-tag", overwrite=True
    )
    _store(fsb, TWO, enable_data_endpoint=True)
    out = provision_site(fsb.site_blocks[0], fsb.parent_block)
    assert out["outcome"] == "converged", out
    assert _scope(fsb) == _repos(fsb, *TWO)
    [listed] = [r for r in out["steps"] if r["step"] == "list-repositories"]
    assert fsb.extra["spec"] in listed["message"] and "names the site" in listed["message"]
    assert out["steps"][0]["step"] == "preflight-permissions"


def test_a_dry_run_plans_the_shrink_without_pausing(fsb: FlowSandbox) -> None:
    before = _scope(fsb)
    _store(fsb, ["samples"])
    plan = provision_site(fsb.site_blocks[0], fsb.parent_block, dry_run=True)
    rows = [r for r in plan["steps"] if r["step"] == "scope-shrink"]
    assert rows and rows[0]["action"] == "approval", plan["steps"]
    assert "pauses for approval" in rows[0]["message"]
    assert _scope(fsb) == before


def test_an_unapproved_shrink_changes_nothing(fsb: FlowSandbox) -> None:
    from prefect.flow_runs import resume_flow_run

    before = _scope(fsb)
    _store(fsb, ["samples"])
    run = _Run(fsb.site_blocks[0], fsb.parent_block)
    run.start()
    paused = _paused_run(fsb.site_blocks[0])
    gone = sorted(_repos(fsb, "edge/apps"))
    assert gone and gone[0] in _form(paused)  # the form lists what would leave the site
    fsb.azure.clear_requests()
    resume_flow_run(paused.id, run_input={"approve": False, "remove": gone})
    run.join(timeout=600)
    assert run.error is None, run.error
    assert "not approved" in run.result["outcome"], run.result
    assert sorted(run.result["kept_repositories"]) == gone
    assert _scope(fsb) == before  # the site keeps its repositories
    assert fsb.arm_writes() == []  # nothing else changed either: the site was converged


def test_a_shrink_nobody_answers_fails_and_changes_nothing(fsb: FlowSandbox) -> None:
    before = _scope(fsb)
    _store(fsb, ["samples"], shrink_approval_timeout=2)
    fsb.azure.clear_requests()
    with pytest.raises(PermanentError, match="not approved within 2 s"):
        provision_site(fsb.site_blocks[0], fsb.parent_block)
    assert _scope(fsb) == before
    assert fsb.arm_writes() == []


def test_an_approved_shrink_applies(fsb: FlowSandbox) -> None:
    from prefect.flow_runs import resume_flow_run

    _store(fsb, ["samples"])
    run = _Run(fsb.site_blocks[0], fsb.parent_block)
    run.start()
    paused = _paused_run(fsb.site_blocks[0])
    resume_flow_run(
        paused.id, run_input={"approve": True, "remove": sorted(_repos(fsb, "edge/apps"))}
    )
    run.join(timeout=600)
    assert run.error is None, run.error
    assert run.result["outcome"] == "converged" and not run.result["kept_repositories"]
    assert _scope(fsb) == _repos(fsb, "samples")


def test_new_repositories_reach_the_site_on_the_reconcile_path(fsb: FlowSandbox) -> None:
    fsb.azure.add_repositories(["samples/brand-new"])
    out = provision_site(fsb.site_blocks[0], fsb.parent_block)  # as reconcile-fleet starts it
    assert out["outcome"] == "converged", out
    assert "samples/brand-new" in _scope(fsb)


def _corrupt(name: str, data: dict[str, Any]) -> None:
    """Store data the block would refuse (as an edit through the API could)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentUpdate

    with get_client(sync_client=True) as client:
        doc = client.read_block_document_by_name(name, "edge-site-spec")
        client.update_block_document(doc.id, BlockDocumentUpdate(data=data))


def test_an_invalid_stored_spec_fails_only_the_sites_it_applies_to(fsb: FlowSandbox) -> None:
    from flows.site_specs import spec_for_site

    other = f"{fsb.extra['spec']}-other"
    EdgeSiteSpec(sites=["someone-else"], namespaces=["samples"]).save(other, overwrite=True)
    _corrupt(other, {"sites": ["someone-else"], "namespaces": [], "sync_window": "PT1M"})
    spec, resolved = spec_for_site(fsb.site_blocks[0], [fsb.tag])
    assert resolved.spec.name == fsb.extra["spec"] and spec.namespaces == ["samples"]
    with pytest.raises(InputError, match=other):
        spec_for_site("someone-else", [])


def test_the_reconcile_picks_every_site_with_a_stored_spec(fsb: FlowSandbox) -> None:
    from prefect import flow

    from flows.reconcile import sites_to_reconcile

    @flow
    def pick() -> tuple[list[str], list[str]]:
        return sites_to_reconcile()

    chosen, without = pick()
    assert fsb.site_blocks[0] in chosen and fsb.site_blocks[0] not in without
