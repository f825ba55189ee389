"""flows.plan renders the steps' rows; it decides nothing (pure)."""

from __future__ import annotations

from typing import Any

from flows.plan import PROVISIONAL, ProvisionPlan, helm_rows
from tasks.site.node_mirror_plan import masked_diff


def _row(step: str, action: str, why: str, resource: str = "r") -> dict[str, Any]:
    return {
        "step": step,
        "resource": resource,
        "action": action,
        "changed": False,
        "writes": 0,
        "planned": True,
        "message": why,
    }


def test_rows_are_grouped_and_counted() -> None:
    rows = [
        _row("list-repositories", "none", "3 repositories under samples"),
        _row("connected-registry", "create", "connected registry s1 does not exist"),
        _row("sync-credential", "generate", "no sync credential recorded", "tokens/s1/password1"),
        _row("helm-release", "install", "install release cr"),
        _row("registries-yaml", "write", "mirror: add once the release exists"),
        _row("canary", "pull", "pull x in apps"),
        _row("client-password", "none", "pull secrets hold password1", "tokens/s1-c/password1"),
    ]
    details: list[dict[str, Any]] = [{} for _ in rows]
    details[4] = {PROVISIONAL: "the Helm release's service"}
    plan = ProvisionPlan("s1", rows, details)
    assert plan.writes == 4  # the canary is a check, the client password is kept
    assert [a["step"] for a in plan.arm] == ["connected-registry"]
    assert [n["step"] for n in plan.node] == ["helm-release", "registries-yaml", "canary"]
    assert plan.secrets == [
        {
            "secret": "tokens/s1/password1 (sync)",
            "action": "generate",
            "detail": "no sync credential recorded",
        },
        {
            "secret": "helm release connectionString",
            "action": "replace",
            "detail": "a new connection string carrying tokens/s1/password1",
        },
        {
            "secret": "tokens/s1-c/password1 (client)",
            "action": "none",
            "detail": "pull secrets hold password1",
        },
    ]
    assert plan.notes == [
        "list-repositories: 3 repositories under samples",
        "registries-yaml: planned from the facts available (the Helm release's service)",
    ]
    text = plan.markdown()
    assert "| connected registry s1 does not exist | connected-registry | create | r |" in text
    assert plan.summary()["planned_writes"] == 4 and plan.summary()["writes"] == 0


def test_registries_yaml_is_masked_before_any_diff() -> None:
    text = "configs:\n  h:\n    auth:\n      username: u\n      password: s3cret\n"
    masked = masked_diff(None, text, "registries.yaml")
    assert "s3cret" not in masked and "password: ********" in masked and "auth:\n" in masked


def test_helm_rows_show_leaves() -> None:
    rows = helm_rows([("pvc", None, {"storageRequest": "30Gi"})])
    assert rows == [{"path": "pvc.storageRequest", "now": None, "planned": "30Gi"}]


def test_blockers_come_first_with_their_fix_and_count_as_no_change() -> None:
    from flows.plan import blocked_markdown, rows_markdown

    rows = [
        _row("list-repositories", "none", "3 repositories under samples"),
        _row(
            "preflight-permissions",
            "blocked",
            "the principal lacks permissions: missing a|b. Fix: assign the README role",
            "registries/acr",
        ),
        _row("connected-registry", "create", "connected registry s1 does not exist"),
    ]
    plan = ProvisionPlan("s1", rows, [{} for _ in rows])
    assert plan.writes == 1 and plan.summary()["outcome"] == "blocked"
    assert [b["step"] for b in plan.blocked] == ["preflight-permissions"]
    assert [a["step"] for a in plan.arm] == ["connected-registry"]  # listed once: Blocked
    assert not any("preflight-permissions" in n for n in plan.notes)
    text = plan.markdown()
    sections = [line for line in text.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Blocked", sections
    assert (
        "| the principal lacks permissions: missing a\\|b. | assign the README role "
        "| preflight-permissions | registries/acr |"
    ) in text
    assert blocked_markdown(rows[:1]) == []
    clean = ProvisionPlan("s1", [rows[0], rows[2]], [{}, {}])
    assert clean.summary()["outcome"] == "planned" and "## Blocked" not in clean.markdown()
    report = rows_markdown("teardown-site s1 (dry run)", rows)
    assert report[0] == "# teardown-site s1 (dry run)" and report[2] == "## Blocked"
    assert report.index("| why | step | action | resource |") > report.index("## Blocked")
    assert sum("preflight-permissions" in line for line in report) == 1


def test_a_dry_run_is_known_from_either_parameter() -> None:
    from flows.models import ProvisionSpec
    from flows.plan_runs import is_dry, plan_name

    assert is_dry({"dry_run": True, "spec": None})
    assert is_dry({"spec": {"namespaces": ["samples"], "dry_run": True}})
    assert is_dry({"spec": ProvisionSpec(namespaces=["samples"], dry_run=True)})
    assert not is_dry({"spec": None}) and not is_dry({"site_block": "s1"})
    assert not is_dry({"spec": ProvisionSpec(namespaces=["samples"])})
    assert plan_name("provision-s1", True) == "plan-provision-s1"
    assert plan_name("plan-provision-s1", True) == "plan-provision-s1"
    assert plan_name("provision-s1", False) == "provision-s1"


def test_a_blocked_plan_pickles_with_its_summary() -> None:
    import pickle

    from flows.plan_runs import PlanBlocked

    err = PlanBlocked("stop registries/acr: off. Fix: on", resource="registries/acr")
    err.summary = {"outcome": "blocked"}
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.summary == err.summary
    assert back.resource == "registries/acr"


def test_helm_values_read_as_yaml_and_a_missing_diff_says_why() -> None:
    plan = ProvisionPlan("s1", [_row("node-mirror", "write", "mirror for the service")], [{}])
    plan.helm = [
        {"path": "httpEnabled", "now": None, "planned": False},
        {"path": "acrEdge.syncCredential.created", "now": None, "planned": ""},
    ]
    text = plan.markdown()
    assert "| httpEnabled | (unset) | false |" in text
    assert "| acrEdge.syncCredential.created | (unset) | (set by the real run) |" in text
    assert "not shown yet: the mirror's address is the Helm release's service" in text
    converged = ProvisionPlan("s1", [_row("node-mirror", "none", "already mirrors")], [{}])
    assert "## registries.yaml (credentials masked)\n\nno change\n" in converged.markdown()
