"""Issue 12, least privilege on the node: the sudoers recipe `acr-edge sudoers` prints is all the
whole lifecycle needs.

Every node of a two-node https site gets the recipe as its sudoers file; the sandbox's sudo then
refuses any command the recipe does not name, as sudo would. The site block runs with
``sudo: true``, so every privileged command goes through it: provision, a converged re-run, a
forced client-token rotation, status and teardown all succeed, and a recipe missing one line
makes the run that needs it fail on the node's refusal.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import pytest
from flowkit import FlowSandbox, spec, start

from acr_edge import cli
from acr_edge.sandbox_blocks import HTTPS_SERVICE_IP
from acr_edge.sudoers import render
from blocks.edge_site import EdgeSite
from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from model.errors import PermanentError

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def fsb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlowSandbox]:
    box = start(tmp_path_factory.mktemp("sudoers"), sites=2, transport="https", nodes_per_site=2)
    try:
        for name in box.site_blocks:
            block = EdgeSite.load(name)
            block.sudo = True  # type: ignore[attr-defined]
            block.save(name, overwrite=True)
        yield box
    finally:
        box.running.stop()


def install_recipe(fsb: FlowSandbox, i: int, *, drop: str | None = None) -> str:
    """What the README has the operator install: `acr-edge sudoers SITE_BLOCK > acr-edge`."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["sudoers", fsb.site_blocks[i]]) == 0
    recipe = out.getvalue()
    assert recipe == render(fsb.site_blocks[i], None, None, {})
    if drop is not None:
        kept = [line for line in recipe.split(", \\\n") if drop not in line]
        assert len(kept) < len(recipe.split(", \\\n")), drop
        recipe = ", \\\n".join(kept)
    for node in fsb.site(i).nodes:
        node.sudoers_path.parent.mkdir(parents=True, exist_ok=True)
        node.sudoers_path.write_text(recipe)
    return recipe


def refusals(fsb: FlowSandbox, i: int) -> list[str]:
    """What the nodes' sudo refused (the sandbox records each refusal beside the recipe)."""
    out: list[str] = []
    for node in fsb.site(i).nodes:
        seen = node.sudoers_path.with_name(node.sudoers_path.name + ".refused")
        out += seen.read_text().splitlines() if seen.exists() else []
    return out


def test_the_recipe_has_no_shell_env_find_or_wildcard(fsb: FlowSandbox) -> None:
    recipe = install_recipe(fsb, 0)
    commands = recipe.split("Cmnd_Alias ACR_EDGE = ", 1)[1].split("\n" + "edge")[0]
    for banned in ("/sh ", "sh -c", "/env ", "/find ", "*", "ALL,"):
        assert banned not in commands, banned
    assert f"{HTTPS_SERVICE_IP}\\:443/hosts.toml" in recipe
    assert "NOPASSWD: ACR_EDGE" in recipe


def test_the_whole_lifecycle_runs_within_the_recipe(fsb: FlowSandbox) -> None:
    from flows.rotate_client_token import rotate_client_token
    from flows.site_status import site_status
    from flows.teardown_site import teardown_site

    install_recipe(fsb, 0)
    site, parent = fsb.site_blocks[0], fsb.parent_block
    first = provision_site(site, parent, ProvisionSpec(**spec(enable_data_endpoint=True)))
    assert first["outcome"] == "converged", first
    again = provision_site(site, parent, ProvisionSpec(**spec()))
    assert again["outcome"] == "already converged" and again["writes"] == 0, again
    assert rotate_client_token(site, parent, force=True)["outcome"].startswith("rotated")
    assert site_status(site, parent)["healthy"] is True
    assert teardown_site(site, parent)["outcome"] == "torn down"
    assert refusals(fsb, 0) == []
    # The nodes saw nothing else: every command was one of the recipe's, through sudo.
    seen = [str(c["command"]) for n in fsb.site(0).nodes for c in n.commands() if "command" in c]
    assert seen and all(c.startswith("sudo -n -- ") for c in seen), seen
    assert not any(" sh -c " in c or " env " in c for c in seen), seen


def test_a_recipe_without_the_helm_upgrade_line_stops_provisioning(fsb: FlowSandbox) -> None:
    install_recipe(fsb, 1, drop=" upgrade ")
    with pytest.raises(PermanentError) as err:
        provision_site(fsb.site_blocks[1], fsb.parent_block, ProvisionSpec(**spec()))
    assert "not allowed" in str(err.value), err.value
    assert refusals(fsb, 1)


def test_the_node_sudo_refuses_what_the_recipe_does_not_name(fsb: FlowSandbox) -> None:
    from tasks.site.ssh import SshSession

    install_recipe(fsb, 1)
    block = EdgeSite.load(fsb.site_blocks[1])
    folder = block.registries_path.rpartition("/")[0]  # type: ignore[attr-defined]
    with SshSession.for_site(block) as ssh:  # type: ignore[arg-type]
        # Sent as plain command lines: acr-edge's own layer would refuse the first itself.
        refused = ssh.run("sudo -n -- id -u")
        assert refused.exit_status == 1 and "not allowed" in refused.stderr
        assert ssh.run(f"sudo -n -- ls -1 -- {folder}").ok
    assert "id -u" in refusals(fsb, 1)
