"""No secret the flows handle lands anywhere Prefect or the nodes keep.

Runs provisioning, a rotation and a status check against the sandbox, then searches the Prefect
database (every table, plus the raw SQLite files), the API's logs, artifacts, flow/task run
parameters and states, result storage under PREFECT_HOME, and every command line the sandbox
nodes saw, for every secret value: sync and client passwords (the Azure sandbox's issued
secrets, also base64-encoded), connection strings, the SSH private key and the kubeconfig
client key.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flowkit import FlowSandbox, spec, start

from flows.models import ProvisionSpec
from flows.provision_site import provision_site
from flows.rotate_client_token import rotate_client_token
from flows.site_status import site_status

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FlowSandbox, list[str]]]:
    box = start(tmp_path_factory.mktemp("hygiene"), sites=1, transport="https")
    try:
        site, parent = box.site_blocks[0], box.parent_block
        outputs: list[Any] = []
        outputs.append(
            provision_site(
                site,
                parent,
                ProvisionSpec(**spec(enable_data_endpoint=True, client_password_days=5)),
            )
        )
        outputs.append(rotate_client_token(site, parent))  # due: 5 days < 14 days lead
        outputs.append(site_status(site, parent))
        outputs.append(provision_site(site, parent, ProvisionSpec(**spec())))  # converged
        assert outputs[1]["outcome"] == "rotated", outputs[1]
        yield box, [json.dumps(o, default=str) for o in outputs]
    finally:
        box.running.stop()


def secret_values(box: FlowSandbox) -> dict[str, str]:
    found: dict[str, str] = {}
    for i, value in enumerate(box.azure.secrets()):
        found[f"sandbox secret #{i}"] = value
        # Each password's base64 forms too (a value printed back encoded is still the value).
        for kind, enc in (("", base64.b64encode), (" urlsafe", base64.urlsafe_b64encode)):
            found[f"sandbox secret #{i} base64{kind}"] = enc(value.encode()).decode().rstrip("=")
    cr = box.info["sites"][0]["name"]
    gateway = box.azure.resource("connectedRegistries", cr)["properties"]["parent"][
        "syncProperties"
    ]["gatewayEndpoint"]
    for slot, pw in box.azure.password_values(cr).items():
        cs = (
            f"ConnectedRegistryName={cr};SyncTokenName={cr};SyncTokenPassword={pw};"
            f"ParentGatewayEndpoint={gateway};ParentEndpointProtocol=https"
        )
        found[f"connection string ({slot})"] = cs
    for slot, pw in box.azure.password_values(f"{cr}-client").items():
        found[f"client {slot} dockerconfig auth"] = base64.b64encode(
            f"{cr}-client:{pw}".encode()
        ).decode()
    site = box.info["sites"][0]
    key_lines = Path(site["private_key_path"]).read_text().strip().splitlines()[1:-1]
    for n, line in enumerate(key_lines):
        if len(line) >= 20:
            found[f"ssh private key line {n}"] = line
    kubeconfig = yaml.safe_load(Path(site["kubeconfig_path"]).read_text())
    key_data = kubeconfig["users"][0]["user"]["client-key-data"]
    found["kubeconfig client-key-data"] = key_data
    pem = base64.b64decode(key_data).decode().strip().splitlines()[1:-1]
    for n, line in enumerate(pem):
        if len(line) >= 20:
            found[f"kubeconfig client key line {n}"] = line
    # The site CA's key and every server certificate's key (https), read from the cluster.
    from model import tls
    from sandbox.sites.kube_objects import BY_KIND

    store = box.site(0).store
    secrets_seen = 0
    for name, field in [("connected-registry-acr-edge-ca", "ca.key")] + [
        (tls.server_secret_name("connected-registry", slot), "tls.key") for slot in tls.SERVER_SLOTS
    ]:
        obj = store.find(BY_KIND["Secret"], "connected-registry", name)
        if obj is None:
            continue
        secrets_seen += 1
        pem = base64.b64decode(obj["data"][field]).decode()
        for n, line in enumerate(pem.strip().splitlines()[1:-1]):
            if len(line) >= 20:
                found[f"{name} {field} line {n}"] = line
    assert secrets_seen >= 2, "the https run made a CA and a server certificate"
    assert len(found) >= 8
    # Positive controls: the values really are what the files and the sandbox hold.
    issued = set(box.azure.secrets())
    assert set(box.azure.password_values(f"{cr}-client").values()) <= issued
    assert set(box.azure.password_values(cr).values()) <= issued
    assert found["ssh private key line 0"] in Path(site["private_key_path"]).read_text()
    return found


def database_path() -> Path:
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    url = url.get_secret_value() if hasattr(url, "get_secret_value") else str(url)
    assert url.startswith("sqlite"), url
    return Path(url.split("///", 1)[1])


def database_text(path: Path) -> str:
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        chunks = []
        for table in tables:
            for row in con.execute(f'SELECT * FROM "{table}"'):
                chunks.append(repr(row))
                chunks.extend(v.decode("latin-1") for v in row if isinstance(v, bytes))
        assert "flow_run" in tables and "log" in tables
        return "\n".join(chunks)
    finally:
        con.close()


def api_text() -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter

    chunks: list[str] = []
    with get_client(sync_client=True) as client:
        flow_runs = client.read_flow_runs()
        for fr in flow_runs:
            chunks.append(fr.model_dump_json())
        chunks += [tr.model_dump_json() for tr in client.read_task_runs()]
        chunks += [a.model_dump_json() for a in client.read_artifacts()]
        chunks += [log.model_dump_json() for log in client.read_logs(LogFilter(), limit=200)]
        assert flow_runs, "no flow runs recorded"
    return "\n".join(chunks)


def test_no_secret_anywhere(ran: tuple[FlowSandbox, list[str]]) -> None:
    box, outputs = ran
    secrets = secret_values(box)
    # API logs are shipped in batches (every 2 s): wait until the run logs reached the server.
    time.sleep(3)
    haystacks: dict[str, str] = {"flow return values": "\n".join(outputs)}
    db = database_path()
    haystacks["prefect database (tables)"] = database_text(db)
    for suffix in ("", "-wal"):
        raw = Path(f"{db}{suffix}")
        if raw.exists():
            haystacks[f"prefect database file {raw.name}"] = raw.read_bytes().decode("latin-1")
    haystacks["prefect API (runs, task runs, artifacts, logs)"] = api_text()
    home = Path(os.environ["PREFECT_HOME"])
    stored = [p for p in home.rglob("*") if p.is_file() and p.stat().st_size < 5_000_000]
    haystacks["PREFECT_HOME files"] = "\n".join(p.read_bytes().decode("latin-1") for p in stored)
    site = box.info["sites"][0]
    commands = Path(site["command_log"]).read_text()
    assert "helm" in commands  # the nodes really ran our commands
    haystacks["node command log"] = commands
    assert "provision-site" in haystacks["prefect database (tables)"]
    assert "rotate-client-token" in haystacks["prefect API (runs, task runs, artifacts, logs)"]

    hits = [
        f"{what} found in {where}"
        for what, value in secrets.items()
        for where, text in haystacks.items()
        if value and value in text
    ]
    assert not hits, "\n".join(hits)
