"""The pure site plans: every step's change and reason from facts alone, no I/O.

A no-op always says why; each action's reason is deterministic (the same facts give the same
words, and the dry run, which has no secret and no creation time yet, gives the real run's
words), so a plan's rows can be compared with the run's.
"""

from __future__ import annotations

import base64
import json

import pytest
from pydantic import SecretStr

from blocks.edge_site import EdgeSite
from model.errors import PermanentError
from model.plan import Change
from model.site import NodeAuth, PullSecretMeta, ReleaseFact, SiteCheck, SyncCredentialRef
from tasks.site import helm_values, plans, registries_yaml

CS = SecretStr(
    "ConnectedRegistryName=site01;SyncTokenName=site01;SyncTokenPassword=pw-AAAA;"
    "ParentGatewayEndpoint=contoso.eastus.data.azurecr.io;ParentEndpointProtocol=https"
)
REF = SyncCredentialRef(token="site01", slot="password1", created="2026-11-26T10:00:00Z")
HOST = "10.43.0.10:80"
PATH = "/etc/rancher/k3s/registries.yaml"
META = PullSecretMeta("site01-client", "password2", "2026-11-27T10:00:00+00:00")


def _site(**kw: object) -> EdgeSite:
    base: dict[str, object] = {"name": "site01", "ssh_host": "h", "ssh_private_key": "k"}
    return EdgeSite(**(base | kw))  # type: ignore[arg-type]


def _deployed(site: EdgeSite, ref: SyncCredentialRef = REF, **kw: object) -> ReleaseFact:
    """The fact read from a release installed with ``site``'s values and ``ref``."""
    values = helm_values.chart_values(site, CS, ref).values
    fields: dict[str, object] = {
        "status": "deployed",
        "digest": helm_values.recorded_digest(values),
        "sync_ref": ref,
        "credential_reusable": True,
        "values": helm_values.masked(values),
    }
    return ReleaseFact(**(fields | kw))  # type: ignore[arg-type]


def _same_twice(make: object) -> Change:
    assert callable(make)
    first, second = make(), make()
    assert first == second and first.reason == second.reason  # deterministic
    assert first.reason.strip()
    return first  # type: ignore[no-any-return]


# -- namespace ---------------------------------------------------------------------------------


def test_namespace_plan() -> None:
    none = _same_twice(lambda: plans.plan_namespace(True, "apps", resource="r"))
    assert (none.step, none.action, none.reason) == (
        "namespace",
        "none",
        "namespace apps already exists",
    )
    create = _same_twice(lambda: plans.plan_namespace(False, "apps", resource="r"))
    assert (create.action, create.reason, create.payload) == (
        "create",
        "create namespace apps",
        "apps",
    )


# -- helm release ------------------------------------------------------------------------------


def test_helm_install_on_a_fresh_site_reads_the_same_in_the_dry_run() -> None:
    site = _site()
    fresh = ReleaseFact(status=None)
    real = plans.plan_helm_release(fresh, site, REF, CS)
    # The dry run has neither the connection string nor the new password's creation time.
    dry = plans.plan_helm_release(
        fresh, site, SyncCredentialRef("site01", "password1", "(new)"), None
    )
    assert real.action == dry.action == "install"
    assert (
        real.reason
        == dry.reason
        == ("install release connected-registry with the sync credential site01 password1")
    )
    assert real.step == "helm-release" and real.payload.connection_string is CS
    assert "pw-AAAA" not in repr(real) + repr(real.shown)


def test_helm_converged_release_is_a_no_op_that_names_the_digest() -> None:
    site = _site()
    fact = _deployed(site)
    change = _same_twice(lambda: plans.plan_helm_release(fact, site, REF, None))
    wanted = helm_values.desired_digest(site, REF)
    assert change.action == "none"
    assert change.reason == f"release connected-registry already has these values ({wanted[:19]})"
    assert plans.plan_helm_release(fact, site, REF, CS) == change  # with or without the value


def test_helm_settings_change_keeps_the_sync_credential() -> None:
    fact = _deployed(_site())
    site = _site(storage_request="20Gi")
    change = _same_twice(lambda: plans.plan_helm_release(fact, site, REF, None))
    assert change.action == "upgrade"
    assert change.reason == (
        "upgrade release connected-registry: values changed (pvc.storageRequest); "
        "the kept sync credential password1 is re-used"
    )
    assert change.payload.connection_string is None  # read back on the node by the apply
    with pytest.raises(PermanentError) as err:
        plans.plan_helm_release(_deployed(_site(), credential_reusable=False), site, REF, None)
    assert "cannot be re-used" in str(err.value) and "re-run provision-site" in str(err.value)


def test_helm_new_sync_credential_and_failed_release() -> None:
    site = _site()
    new = SyncCredentialRef("site01", "password2", "2026-11-28T10:00:00Z")
    upgrade = _same_twice(lambda: plans.plan_helm_release(_deployed(site), site, new, CS))
    assert (
        upgrade.reason == "upgrade release connected-registry: new sync credential site01 password2"
    )
    dry = plans.plan_helm_release(
        _deployed(site), site, SyncCredentialRef("site01", "password2", "(new)"), None
    )
    assert (dry.action, dry.reason) == (upgrade.action, upgrade.reason)
    failed = plans.plan_helm_release(_deployed(site, status="failed"), site, REF, CS)
    assert failed.reason == "upgrade release connected-registry: the previous release is failed"


def test_release_check() -> None:
    assert plans.release_check(ReleaseFact(None), "cr") == SiteCheck(False, "release not installed")
    assert plans.release_check(ReleaseFact("deployed"), "cr").ok
    assert plans.release_check(ReleaseFact("failed"), "cr").value == "cr: failed"


# -- registries.yaml and restart ---------------------------------------------------------------


def _yaml(text: str | None, auth: NodeAuth | None = None, **kw: object) -> Change:
    current = None if text is None else SecretStr(text)
    return plans.plan_registries_yaml(current, HOST, auth, resource="r", path=PATH, **kw)  # type: ignore[arg-type]


def test_registries_yaml_plan() -> None:
    create = _same_twice(lambda: _yaml(None))
    assert (create.step, create.action) == ("registries-yaml", "write")
    assert create.reason == f"creates {PATH} with the mirror {HOST} -> http://{HOST}"
    assert create.shown["replaces"] is False
    content = create.payload.get_secret_value()
    same = _same_twice(lambda: _yaml(content))
    assert (same.action, same.reason) == ("none", f"{PATH} already mirrors {HOST} to http://{HOST}")
    fix = _yaml(f'mirrors:\n  "{HOST}":\n    endpoint: ["https://{HOST}"]\n')
    assert fix.action == "write" and fix.reason == f"fixes the mirror {HOST} -> http://{HOST}"
    assert fix.shown["replaces"] is True


def test_registries_yaml_plan_says_whether_a_restart_is_needed() -> None:
    mirror_only = _yaml("mirrors: {}\n")
    assert mirror_only.shown["auth_changed"] is False and mirror_only.shown["mirror_changed"]
    hosts = mirror_only.shown["hosts_toml"]
    assert hosts.startswith("# File generated by k3s. DO NOT EDIT.\n")
    assert f'[host."http://{HOST}/v2"]' in hosts
    auth = NodeAuth(META.token, SecretStr("s3cret-node"), META.slot, META.created)
    credential = _yaml(mirror_only.payload.get_secret_value(), auth)
    assert credential.shown["auth_changed"] is True and not credential.shown["mirror_changed"]
    assert "s3cret-node" not in repr(credential.shown)
    settled = _yaml(credential.payload.get_secret_value(), auth)
    assert settled.action == "none" and settled.shown["hosts_toml"] == hosts


def test_registries_yaml_dry_run_of_the_node_model_needs_no_password() -> None:
    auth = NodeAuth(META.token, SecretStr("s3cret-node"), META.slot, META.created)
    real_fresh = _yaml(None, auth)
    dry_fresh = _yaml(None, None, node_ref=META)
    assert (dry_fresh.action, dry_fresh.reason) == (real_fresh.action, real_fresh.reason)
    written = real_fresh.payload.get_secret_value()
    # The file records the slot: its own value stands in, so the dry run sees a no-op.
    assert _yaml(written, auth).action == "none"
    dry = _yaml(written, None, node_ref=META)
    assert dry.action == "none" and META.slot in dry.reason
    # Another slot wanted: a write in both, with the same words (never the value).
    other = PullSecretMeta(META.token, "password1", "2026-11-29T10:00:00+00:00")
    real = _yaml(written, NodeAuth(other.token, SecretStr("new"), other.slot, other.created))
    dry = _yaml(written, None, node_ref=other)
    assert (dry.action, dry.reason) == (real.action, real.reason) and real.action == "write"
    assert "s3cret-node" not in dry.reason + repr(dry)


def test_registries_yaml_refuses_a_file_k3s_rejects() -> None:
    with pytest.raises(PermanentError):
        _yaml("mirrors: [\n")
    with pytest.raises(PermanentError, match="needs true or false"):
        _yaml('configs:\n  a.b:\n    tls: {insecure_skip_verify: "yes", ca_file: x}\n')


def test_mirror_check() -> None:
    content = _yaml(None).payload
    assert plans.mirror_check(content, HOST, path=PATH).ok
    assert plans.mirror_check(None, HOST, path=PATH) == SiteCheck(False, f"{PATH} missing")
    other = plans.mirror_check(SecretStr("mirrors: {}\n"), HOST, path=PATH)
    assert not other.ok and "no mirror" in other.value
    broken = plans.mirror_check(
        SecretStr("configs: {a.b: {tls: {insecure_skip_verify: 1}}}\n"), HOST, path=PATH
    )
    assert not broken.ok and "K3s would refuse" in broken.value


# -- pull secrets ------------------------------------------------------------------------------

PASSWORD = SecretStr("client-pw")


def _state(
    ns: str, *, password: SecretStr = PASSWORD, meta: PullSecretMeta = META, **kw: object
) -> plans.PullSecretState:
    config = json.dumps(plans.dockerconfig(HOST, META.token, password))
    fields: dict[str, object] = {
        "namespace": ns,
        "namespace_exists": True,
        "exists": True,
        "type": plans.DOCKERCONFIG,
        "meta": meta,
        "config": SecretStr(config),
        "sa_pull_secrets": ("acr-edge-pull",),
    }
    return plans.PullSecretState(**(fields | kw))  # type: ignore[arg-type]


def _wanted(password: SecretStr | None = PASSWORD, patch: bool = True) -> plans.PullSecretWanted:
    return plans.PullSecretWanted("acr-edge-pull", HOST, META.token, META, password, patch)


def _pull(states: list[plans.PullSecretState], wanted: plans.PullSecretWanted) -> Change:
    return plans.plan_pull_secrets(states, wanted, resource="r")


def test_pull_secrets_current_everywhere_is_a_no_op_in_both_runs() -> None:
    states = [_state("default"), _state("apps")]
    for wanted in (_wanted(), _wanted(None)):
        change = _same_twice(lambda w=wanted: _pull(states, w))  # type: ignore[misc]
        assert change.action == "none"
        assert change.reason == (
            "pull secret acr-edge-pull already current in 2 namespace(s) "
            "(token site01-client, password2)"
        )


def test_pull_secrets_fresh_site_says_what_it_writes() -> None:
    states = [
        plans.PullSecretState("default", True, sa_pull_secrets=()),
        plans.PullSecretState("apps", namespace_exists=False),
    ]
    real = _same_twice(lambda: _pull(states, _wanted()))
    dry = _pull(states, _wanted(None))
    assert (real.step, real.action) == ("pull-secrets", "write")
    assert (
        real.reason
        == dry.reason
        == (
            "pull secret acr-edge-pull: write in default, apps (token site01-client, password2); "
            "create namespace apps; patch the default service account in default, apps"
        )
    )
    _, writes = real.payload
    assert [(w.namespace, w.create_namespace, w.mode) for w in writes] == [
        ("default", False, "create"),
        ("apps", True, "create"),
    ]
    assert "client-pw" not in real.reason + repr(real)


def test_pull_secrets_another_slot_wrong_type_and_a_changed_value() -> None:
    old = PullSecretMeta(META.token, "password1", "2026-11-01T10:00:00Z")
    states = [_state("default", meta=old), _state("apps", type="Opaque")]
    change = _pull(states, _wanted())
    assert change.reason == (
        "pull secret acr-edge-pull: write in default, apps (token site01-client, password2)"
    )
    _, writes = change.payload
    assert [w.mode for w in writes] == ["replace", "recreate"]  # a Secret's type is immutable
    assert _pull(states, _wanted(None)).reason == change.reason
    # Same annotations, other value: only the real run (it has the value) can see it.
    stale = [_state("default", password=SecretStr("other")), _state("apps")]
    assert _pull(stale, _wanted()).reason.startswith("pull secret acr-edge-pull: write in default ")


def test_pull_secrets_service_account_only() -> None:
    states = [_state("default", sa_pull_secrets=("other",)), _state("apps")]
    change = _pull(states, _wanted())
    assert change.reason == "patch the default service account in default"
    assert _pull(states, _wanted(patch=False)).action == "none"


def test_annotations_round_trip_and_config_decoding() -> None:
    assert plans.meta_of(plans.annotations_of(META)) == META
    assert plans.meta_of({"other": "x"}) is None and plans.meta_of(None) is None
    raw = base64.b64encode(b'{"auths": {}}').decode()
    decoded = plans.decode_config(raw)
    assert decoded is not None and decoded.get_secret_value() == '{"auths": {}}'
    assert plans.decode_config("%%%") is None and plans.decode_config(None) is None


# -- canary ------------------------------------------------------------------------------------


def test_canary_plan() -> None:
    skipped = _same_twice(lambda: plans.plan_canary("apps", None, "p", resource="r"))
    assert (skipped.step, skipped.action, skipped.reason) == (
        "canary",
        "none",
        "no repository synced yet; canary skipped",
    )
    image = plans.canary_image(HOST, "edge/app")
    assert image == f"{HOST}/edge/app:latest"
    pull = _same_twice(lambda: plans.plan_canary("apps", image, "acr-edge-pull", resource="r"))
    assert (pull.action, pull.reason) == ("pull", f"pull {image} in apps with acr-edge-pull")
    node = plans.plan_canary("apps", image, None, resource="r")
    assert node.reason == f"pull {image} in apps with the node's credential"


def test_node_password_reads_only_the_host_entry() -> None:
    auth = NodeAuth("u", SecretStr("node-pw"), "password1", "2026-11-26T10:00:00Z")
    text = registries_yaml.merge(None, HOST, auth, path=PATH).content.get_secret_value()
    found = plans.node_password(text, HOST, path=PATH)
    assert found is not None and found[0] == "u" and found[1].get_secret_value() == "node-pw"
    assert plans.node_password(text, "10.43.0.99:80", path=PATH) is None
    assert plans.node_password(None, HOST, path=PATH) is None
    # As K3s reads it: a merged auth counts, an empty password is no credential.
    merged = f'x: &a {{username: u, password: p}}\nconfigs:\n  "{HOST}":\n    auth: *a\n'
    found = plans.node_password(merged, HOST, path=PATH)
    assert found is not None and found[1].get_secret_value() == "p"
    empty = f'configs:\n  "{HOST}":\n    auth: {{username: u, password: ""}}\n'
    assert plans.node_password(empty, HOST, path=PATH) is None
