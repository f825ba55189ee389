"""Every shell command in README.md's code blocks is exercised by a test, or said to be for
operators only (real Azure, real nodes), in the table below; the test fails on a README command
the table lacks, on an entry whose test is gone, and on an entry no README command matches.

A command is one simple command of a ``sh``/``bash``/``shell``/``console`` block, comments
dropped, continuation lines joined, split at ``&&``, ``||``, ``;`` and ``|``, blanks collapsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHELLS = {"sh", "bash", "shell", "console"}
OPERATOR_ONLY = "operator-only"


@dataclass(frozen=True)
class Where:
    """``place``: a test (``tests/path.py::test_name``) that runs the command, a file that runs
    it verbatim, or OPERATOR_ONLY; ``how``: how the test runs it, or why nothing does."""

    place: str
    how: str


FLEET_PG = (
    "tests/fleet_pg/test_fleet_postgres.py::test_fleet_provision_on_postgres_through_two_workers"
)
DEPLOY_WORKER = (
    "tests/flows/test_deploy.py::test_worker_provisions_a_sandbox_site_from_the_deployment"
)
SUDOERS = "tests/flows/test_sudoers_recipe.py::test_the_whole_lifecycle_runs_within_the_recipe"

EXERCISED: dict[str, list[Where]] = {
    "./dev demo": [
        Where(
            "tests/unit/test_local_prefect_modes.py::"
            "test_demo_keeps_every_prefect_home_private_for_the_whole_run",
            "`acr-edge demo` (what ./dev demo execs after `uv sync`) through the console "
            "script, one site of one node; ./dev demo itself (the same `uv sync` as ./dev "
            "test, then this) is not run by a test: a sync under the running suite",
        ),
        Where(
            "tests/flows/test_demo.py::test_demo_provisions_rotates_and_reports_both_sites",
            "acr_edge.demo.main with two sites: provision, rotate, re-provision, status, teardown",
        ),
    ],
    "./dev test": [Where(".ci/run", "CI runs exactly this command")],
    "./dev run acr-edge sandbox up --state-dir ./state --sites 2 [--nodes-per-site 3] "
    "[--register-blocks]": [
        Where(
            "tests/flows/test_readme_sandbox_up.py::"
            "test_sandbox_up_through_dev_run_saves_the_blocks_of_every_site_and_node",
            "./dev run with --sites 2 --nodes-per-site 3 --register-blocks, a temp --state-dir",
        ),
        Where(
            "tests/sandbox_azure/test_azsb_runner_cli.py::test_sandbox_up_runs_until_sigterm",
            "without the optional flags, until SIGTERM",
        ),
    ],
    "az role definition create --role-definition acr-edge-operator.json": [
        Where(OPERATOR_ONLY, "real Azure RBAC; tests/unit/test_rbac.py checks the role's actions")
    ],
    "az role definition create --role-definition acr-edge-teardown.json": [
        Where(OPERATOR_ONLY, "real Azure RBAC; tests/unit/test_rbac.py checks the role's actions")
    ],
    "az role assignment create --assignee CLIENT_ID --role acr-edge-operator --scope REGISTRY_ID": [
        Where(OPERATOR_ONLY, "real Azure RBAC (the sandbox is no az CLI target)")
    ],
    "az role assignment create --assignee CLIENT_ID --role AcrPull --scope REGISTRY_ID": [
        Where(OPERATOR_ONLY, "real Azure RBAC (the sandbox is no az CLI target)")
    ],
    "az acr update -n REG --data-endpoint-enabled true": [
        Where(
            OPERATOR_ONLY,
            "real Azure; what it sets, provision sets itself with enable_data_endpoint "
            "(tests/flows/test_demo.py)",
        )
    ],
    "ssh-keyscan -p PORT HOST": [
        Where(
            "tests/flows/test_readme_sandbox_up.py::test_ssh_keyscan_prints_each_nodes_line_to_pin",
            "against every node of a sandbox site: its line is the one the block pins",
        )
    ],
    "acr-edge sudoers plant01 > acr-edge": [
        Where(SUDOERS, "`acr-edge sudoers SITE_BLOCK` through acr_edge.cli.main, stdout kept")
    ],
    "visudo -cf acr-edge": [
        Where(OPERATOR_ONLY, "a real node's sudo; the sandbox's sudo enforces the recipe instead")
    ],
    "install -m 0440 acr-edge /etc/sudoers.d/": [
        Where(
            OPERATOR_ONLY,
            "a real node's /etc; the test writes the recipe where the sandbox's sudo reads it",
        )
    ],
    "export PREFECT_API_URL=https://prefect.example/api": [
        Where(
            FLEET_PG,
            "PREFECT_API_URL of the test's own server in deploy's and the workers' "
            "environment (http on loopback: TLS in front is the operator's)",
        )
    ],
    "acr-edge deploy --work-pool acr-edge --notify ops-slack": [
        Where(
            "tests/flows/test_deploy_automations.py::"
            "test_deploy_creates_the_alerts_read_back_through_the_api",
            "the registrar's main (what `acr-edge deploy` dispatches to) with --work-pool and "
            "--notify of a saved webhook block",
        )
    ],
    "prefect worker start --pool acr-edge --limit 8": [
        Where(FLEET_PG, "two workers on the deployed pool, --limit 1 each"),
        Where(DEPLOY_WORKER, "one worker (--run-once) on the deployed pool"),
    ],
    "PREFECT_UI_API_URL=http://127.0.0.1:4300/api prefect server start --port 4300": [
        Where(
            "tests/unit/test_readme_local_server.py::test_a_non_default_port_needs_prefect_ui_api_url",
            "on a free port, with and without PREFECT_UI_API_URL; reads what the UI is told",
        )
    ],
    "export PREFECT_API_URL=http://127.0.0.1:4300/api": [
        Where(DEPLOY_WORKER, "the harness's loopback http URL in the worker's PREFECT_API_URL")
    ],
    "createuser --pwprompt acr_edge": [
        Where(
            FLEET_PG,
            "tests/fleet_pg/pgkit.py runs it as the cluster's superuser, the "
            "password on stdin (no terminal)",
        )
    ],
    "createdb --owner acr_edge prefect": [Where(FLEET_PG, "tests/fleet_pg/pgkit.py runs it")],
    "export PREFECT_SERVER_DATABASE_CONNECTION_URL=postgresql+asyncpg://acr_edge:PASSWORD@db:5432/"
    "prefect": [Where(FLEET_PG, "the test database's URL in the server's environment")],
    "prefect server start --host 127.0.0.1 --port 4200": [
        Where(FLEET_PG, "on PostgreSQL, loopback, a free port")
    ],
    "acr-edge deploy --work-pool acr-edge": [
        Where(FLEET_PG, "the console script, with the test pool and the sandbox's parent block")
    ],
    'prefect worker start --pool acr-edge --name "$(hostname)" --limit 8': [
        Where(FLEET_PG, "two named workers (--name fleet-worker-a/-b), --limit 1 each")
    ],
}


_FENCE = re.compile(r"^\s*(```+|~~~+)\s*([\w+-]*)")


def _strip_comment(line: str) -> str:
    """The line up to a ``#`` that starts a shell comment (outside quotes, after a blank)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _split(line: str) -> list[str]:
    """Simple commands of a command line: split at &&, ||, ; and | outside quotes."""
    parts, quote, current, i = [], None, "", 0
    while i < len(line):
        ch = line[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif line.startswith(("&&", "||"), i):
            parts.append(current)
            current, i = "", i + 2
            continue
        elif ch in ";|":
            parts.append(current)
            current, i = "", i + 1
            continue
        current += ch
        i += 1
    parts.append(current)
    return [" ".join(p.split()) for p in parts if p.strip()]


_HEADING = re.compile(r"^#{1,6} ")


def shell_commands(markdown: str) -> list[str]:
    """Every simple command of the shell code blocks, in order (repeats kept)."""
    return [command for command, _ in located_commands(markdown)]


def located_commands(markdown: str) -> list[tuple[str, str]]:
    """(command, the text of the README section it is in), in order."""
    found: list[tuple[str, int]] = []
    sections: list[list[str]] = [[]]
    fence: str | None = None
    shell = False
    pending = ""
    for raw in markdown.splitlines():
        opened = _FENCE.match(raw)
        if fence is None:
            if _HEADING.match(raw):
                sections.append([])
            sections[-1].append(raw)
            if opened:
                fence, shell = opened.group(1), opened.group(2).lower() in SHELLS
            continue
        sections[-1].append(raw)
        if raw.strip().startswith(fence) and raw.strip().strip(fence[0]) == "":
            fence, pending = None, ""
            continue
        if not shell:
            continue
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        line = pending + line
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        found += [(c, len(sections) - 1) for c in _split(_strip_comment(line))]
    return [(command, "\n".join(sections[i])) for command, i in found]


def _readme_commands() -> list[str]:
    return shell_commands((ROOT / "README.md").read_text())


def test_the_extractor_drops_comments_joins_continuations_and_splits_lists() -> None:
    text = "\n".join(
        [
            "```sh",
            "# a comment",
            "a --x 1   # why",
            "b \\",
            "  --y 2 && c 'not # a comment' | d",
            "```",
            "```python",
            "print('not a command')",
            "```",
            "  ```console",
            '  $ e "$(hostname)"',
            "  ```",
        ]
    )
    assert shell_commands(text) == [
        "a --x 1",
        "b --y 2",
        "c 'not # a comment'",
        "d",
        'e "$(hostname)"',
    ]


def test_every_readme_command_is_in_the_table() -> None:
    missing = sorted(set(_readme_commands()) - set(EXERCISED))
    assert not missing, (
        "README commands with no entry in EXERCISED (name the test that runs each, or "
        f"operator-only and why, and say so in the README): {missing}"
    )


def test_every_entry_matches_a_readme_command() -> None:
    stale = sorted(set(EXERCISED) - set(_readme_commands()))
    assert not stale, f"EXERCISED entries no README command matches any more: {stale}"


def test_every_entry_names_a_test_that_exists_or_why_none_can() -> None:
    sections = dict(located_commands((ROOT / "README.md").read_text()))
    for command, places in EXERCISED.items():
        assert places, command
        for where in places:
            assert where.how.strip(), (command, where)
            if where.place == OPERATOR_ONLY:
                # The README says so in the section the command is in.
                assert OPERATOR_ONLY in sections.get(command, ""), (command, "README: say so")
                continue
            path, _, name = where.place.partition("::")
            file = ROOT / path
            assert file.is_file(), (command, where.place)
            text = file.read_text()
            if name:
                assert re.search(rf"^def {re.escape(name)}\(", text, re.M), (command, where.place)
            else:
                assert command in text, (command, f"{path} does not run it verbatim")
