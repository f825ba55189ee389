"""What the Prefect UI's forms show and refuse: titles and descriptions of every block field and
flow parameter, multi-line secret inputs, and schema patterns that refuse at submit what the
pydantic validators refuse (with the validators' readable message) before any side effect.

Submit-time refusal is checked with Prefect's own validator (prefect.utilities.schema_tools:
what the server's /ui/schemas/validate runs on a form's values) against the schema Prefect
stores for the block type or builds for the flow's parameters.
"""

from __future__ import annotations

import importlib
import io
import re
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from prefect.blocks.core import Block
from prefect.utilities.callables import parameter_schema
from prefect.utilities.schema_tools.validation import validate
from pydantic import BaseModel, SecretStr, ValidationError

import blocks
from blocks import EdgeSite, ParentRegistry, forms
from blocks.edge_node import NodeOverride
from deployments.definitions import definitions
from flows.models import ProvisionSpec

# Flows whose docstrings other changes own (listed in docs/design.md, "Block and run forms").


def _models() -> list[type[BaseModel]]:
    """Every model a form shows: the exported block types and the models nested in them."""
    exported = [getattr(blocks, name) for name in blocks.__all__]
    block_types = [obj for obj in exported if isinstance(obj, type) and issubclass(obj, Block)]
    return [*block_types, NodeOverride, ProvisionSpec]


def _fields() -> list[Any]:
    return [
        pytest.param(model.__name__, name, field, id=f"{model.__name__}.{name}")
        for model in _models()
        for name, field in model.model_fields.items()
    ]


def _bare(text: str) -> str:
    """The text as markdown shows it outside code spans."""
    return re.sub(r"`[^`]*`", "", text)


def _check_title(title: str) -> None:
    words = title.split()
    assert words and words[0][0].isupper(), f"title {title!r} starts lower case"
    for word in words[1:]:
        core = word.strip("()")
        if core in forms.TITLE_WORDS or core.endswith((".yaml",)):
            continue
        assert core == core.lower(), f"title {title!r}: {word!r} is neither lower case nor listed"


def _check_description(text: str, where: str) -> None:
    assert text and text.endswith("."), f"{where}: no description ending in a period"
    assert "Default" in text or "Required" in text, f"{where}: says no default"
    assert "Example" in text, f"{where}: gives no example"
    assert not re.search(r"<[A-Za-z]", _bare(text)), f"{where}: a <placeholder> markdown hides"


@pytest.mark.parametrize(("model", "name", "field"), _fields())
def test_every_form_field_has_title_and_description(model: str, name: str, field: Any) -> None:
    assert field.title, f"{model}.{name} has no title (the UI would show {name!r} title-cased)"
    _check_title(field.title)
    _check_description(field.description or "", f"{model}.{name}")


def test_title_rule_refuses_what_the_issue_showed() -> None:
    for bad in ("Ssh Host", "ssh_host", "Node Order"):
        with pytest.raises(AssertionError):
            _check_title(bad)
    _check_title("SSH host")


def test_dry_run_is_the_first_field_of_the_spec() -> None:
    assert next(iter(ProvisionSpec.model_fields)) == "dry_run"


def _flows() -> list[Any]:
    out = []
    for defn in definitions():
        module, name = defn.entrypoint.split(":")
        flow = getattr(importlib.import_module(module), name)
        out.append(pytest.param(defn.flow_name, flow, id=defn.flow_name))
    return out


@pytest.mark.parametrize(("flow_name", "flow"), _flows())
def test_every_deployed_flow_parameter_is_described(flow_name: str, flow: Any) -> None:
    schema = parameter_schema(flow).model_dump_for_openapi()
    assert schema["properties"], flow_name
    for name, prop in schema["properties"].items():
        text = prop.get("description") or ""
        assert text.strip(), f"{flow_name}: parameter {name} has no description (docstring Args)"
        assert not re.search(r"<[A-Za-z]", _bare(text)), f"{flow_name}.{name}: <placeholder>"
    for name, prop in schema["properties"].items():
        text = " ".join(prop["description"].split())
        if "default" in prop:
            assert "Default" in text, f"{flow_name}.{name}: says no default"
        else:
            assert "Required" in text, f"{flow_name}.{name}: does not say it is required"
        assert "Example" in text, f"{flow_name}.{name}: gives no example"


# ---- multi-line secrets ----------------------------------------------------------------------


def test_key_and_kubeconfig_are_textareas_but_stay_secret() -> None:
    schema = EdgeSite._to_block_schema().fields  # what Prefect stores for the block form
    props = schema["properties"]
    key, kubeconfig = props["ssh_private_key"], props["kubeconfig"]
    # no format: the UI's textarea; format password is a one-line <input type=password>
    assert "format" not in key and key["writeOnly"] is True
    assert all("format" not in sub for sub in kubeconfig["anyOf"])
    assert {"ssh_private_key", "kubeconfig"} <= set(schema["secret_fields"])
    # one-line secrets keep the masked input
    assert props["ssh_key_passphrase"]["anyOf"][0]["format"] == "password"
    assert (
        ParentRegistry._to_block_schema().fields["properties"]["client_secret"]["anyOf"][0][
            "format"
        ]
        == "password"
    )


def _openssh_key() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()


def _site(**kw: Any) -> EdgeSite:
    base: dict[str, Any] = {"name": "plant01", "ssh_host": "10.0.0.5", "ssh_private_key": "k"}
    return EdgeSite(**(base | kw))


@pytest.mark.parametrize("joiner", [" ", ""], ids=["spaces", "stripped"])
def test_a_key_whose_line_breaks_a_one_line_input_ate_is_rebuilt(joiner: str) -> None:
    text = _openssh_key()
    flat = joiner.join(text.strip().splitlines())
    site = _site(ssh_private_key=flat)
    rebuilt = site.ssh_private_key.get_secret_value()
    assert "\n" in rebuilt
    original = paramiko.Ed25519Key.from_private_key(io.StringIO(text))
    assert paramiko.Ed25519Key.from_private_key(io.StringIO(rebuilt)) == original


def test_a_key_with_line_breaks_is_kept_as_it_is() -> None:
    text = _openssh_key()
    assert _site(ssh_private_key=text).ssh_private_key.get_secret_value() == text


def test_a_flattened_legacy_pem_with_headers_is_refused_naming_the_fix() -> None:
    flat = (
        "-----BEGIN RSA PRIVATE KEY----- Proc-Type: 4,ENCRYPTED DEK-Info: AES-128-CBC,00 "
        "QUJD -----END RSA PRIVATE KEY-----"
    )
    with pytest.raises(ValidationError, match="ssh_private_key lost its line breaks") as info:
        _site(ssh_private_key=flat)
    assert "QUJD" not in str(info.value)  # never echoes the secret


KUBECONFIG = """apiVersion: v1
clusters:
- cluster: {server: 'https://10.0.0.5:6443'}
  name: default
contexts:
- context: {cluster: default, user: default}
  name: default
current-context: default
kind: Config
users:
- name: default
  user: {token: abc}
"""


def test_kubeconfig_is_checked_and_a_one_line_paste_refused() -> None:
    site = _site(kube_access="kubeconfig", kubeconfig=KUBECONFIG)
    assert isinstance(site.kubeconfig, SecretStr)
    with pytest.raises(ValidationError, match="line breaks were lost") as info:
        _site(kube_access="kubeconfig", kubeconfig=" ".join(KUBECONFIG.splitlines()))
    assert "abc" not in str(info.value)


# ---- the form refuses at submit what the validators refuse --------------------------------


def _form_errors(model: type[BaseModel], values: dict[str, Any]) -> list[str]:
    if issubclass(model, Block):
        schema = model._to_block_schema().fields
    else:
        schema = model.model_json_schema()
    return [e.message for e in validate(values, schema, ignore_required=True)]


SITE_BAD = [
    ("name", "Plant_01"),
    ("ssh_host", "-oProxyCommand=x"),
    ("ssh_user", "1root"),
    ("namespace", "Bad_NS"),
    ("release_name", "release."),
    ("pull_secret_name", "a" * 64),
    ("service_name", "k3s service"),
    ("app_namespaces", ["Apps"]),
    ("app_namespaces", []),
    ("storage_request", "50 GB"),
    ("tags", ["Wave 1"]),
    ("ssh_port", 70000),
    ("retry_attempts", 0),
]
PARENT_OK: dict[str, Any] = {
    "subscription_id": "00000000-0000-0000-0000-000000000000",
    "resource_group": "rg-containers",
    "registry_name": "contoso",
    "auth": "default",
}
PARENT_BAD = [
    ("subscription_id", "not-a-guid"),
    ("resource_group", "rg."),
    ("registry_name", "ab"),
    ("arm_endpoint", "http://management.azure.com"),
    ("authority_host", "https://login.microsoftonline.com/tenant"),
    ("data_plane_endpoint", "contoso.azurecr.io"),
    ("connected_registry_api_version", "latest"),
    ("retry_max_delay", 601),
]
SPEC_BAD = [
    ("namespaces", ["Samples"]),
    ("namespaces", []),
    ("sync_schedule", "0 3 * * MON"),
    ("sync_window", "1h"),
    ("message_ttl", "two days"),
    ("gc_schedule", "daily"),
    ("client_token_name", "ab"),
    ("nodes", "role worker"),
    ("mode", "ReadMostly"),
    ("client_password_days", 0),
]


@pytest.mark.parametrize(("field", "value"), SITE_BAD, ids=[f for f, _ in SITE_BAD])
def test_site_form_and_block_refuse_the_same_value(field: str, value: Any) -> None:
    assert _form_errors(EdgeSite, {field: value}), f"the form lets {field}={value!r} through"
    with pytest.raises(ValidationError) as info:
        _site(**{field: value})
    assert field in str(info.value)


@pytest.mark.parametrize(("field", "value"), PARENT_BAD, ids=[f for f, _ in PARENT_BAD])
def test_parent_form_and_block_refuse_the_same_value(field: str, value: Any) -> None:
    assert _form_errors(ParentRegistry, {field: value}), f"the form lets {field}={value!r} in"
    with pytest.raises(ValidationError) as info:
        ParentRegistry(**(PARENT_OK | {field: value}))
    assert field in str(info.value)


@pytest.mark.parametrize(("field", "value"), SPEC_BAD, ids=[f for f, _ in SPEC_BAD])
def test_spec_form_and_model_refuse_the_same_value(field: str, value: Any) -> None:
    values = {"namespaces": ["samples"], field: value}
    assert _form_errors(ProvisionSpec, values), f"the form lets {field}={value!r} through"
    with pytest.raises(ValidationError) as info:
        ProvisionSpec(**values)
    assert field in str(info.value)


def test_good_values_pass_form_and_model() -> None:
    site = {
        "name": "plant01",
        "ssh_host": "k3s-1.plant01.example.com",
        "ssh_user": "edge",
        "service_name": "",
        "app_namespaces": ["apps", "monitoring"],
        "storage_request": "50Gi",
        "tags": ["wave-1"],
    }
    assert _form_errors(EdgeSite, site) == []
    _site(**site)
    parent = PARENT_OK | {
        "data_plane_endpoint": "https://contoso.azurecr.io",
        "connected_registry_api_version": "2026-09-01-preview",
    }
    assert _form_errors(ParentRegistry, parent) == []
    ParentRegistry(**parent)
    spec: dict[str, Any] = {
        "namespaces": ["samples", "team/app"],
        "sync_schedule": "*/15 2-4 * * 1,3",
        "sync_window": "PT4H",
        "message_ttl": "1.00:00:00",
        "nodes": "node-role.kubernetes.io/control-plane=true",
    }
    assert _form_errors(ProvisionSpec, spec) == []
    ProvisionSpec(**spec)


def test_run_form_titles_follow_the_block_forms_rule() -> None:
    from deployments import parameter_titles

    for name in (*parameter_titles.TITLES, "expiry_warning_days", "dry_run", "lead_days"):
        _check_title(parameter_titles.title(name))
    assert parameter_titles.title("propagation_timeout_seconds") == "Propagation timeout seconds"
