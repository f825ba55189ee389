"""Helpers for tests that drive simulated sites with the real clients (paramiko, kubernetes).

``ssh_client(info)`` pins the node's host key (RejectPolicy); ``run(...)`` execs with stdin;
``kube_client(info)`` talks to the API directly (tests that tunnel it over SSH use
production's port forward, ``tasks.site.ssh``: the sandbox imports no production code and keeps
no copy of it); ``provision_connected_registry(...)`` creates, through the ARM SDK against the
Azure sandbox, what a site needs for a working connection string and client token.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import paramiko
import yaml


def ssh_client(info: dict[str, Any], *, timeout: float = 10) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    host, algo, blob = info["known_hosts"].split()[:3]
    client.get_host_keys().add(host, algo, paramiko.Ed25519Key(data=base64.b64decode(blob)))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        info["ssh_host"],
        port=info["ssh_port"],
        username=info["ssh_user"],
        pkey=paramiko.Ed25519Key.from_private_key_file(info["private_key_path"]),
        look_for_keys=False,
        allow_agent=False,
        timeout=timeout,
    )
    return client


def run(
    client: paramiko.SSHClient, command: str, stdin: bytes | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Exec ``command``; send ``stdin`` then EOF; return (exit status, stdout, stderr)."""
    chan_in, out, err = client.exec_command(command, timeout=timeout)
    if stdin is not None:
        chan_in.write(stdin)
    chan_in.channel.shutdown_write()
    stdout, stderr = out.read().decode(), err.read().decode()
    return out.channel.recv_exit_status(), stdout, stderr


def kubeconfig(info: dict[str, Any]) -> dict[str, Any]:
    with open(info["kubeconfig_path"]) as fh:
        loaded: dict[str, Any] = yaml.safe_load(fh)
    return loaded


def kube_client(info: dict[str, Any], *, host: str | None = None) -> Any:
    """A kubernetes ``ApiClient`` from the node's k3s.yaml (optionally another host:port)."""
    from kubernetes import config

    api = config.new_client_from_config_dict(kubeconfig(info))
    if host:
        api.configuration.host = host
    return api


@dataclass(frozen=True)
class ProvisionedRegistry:
    connected_registry: str
    connection_string: str
    client_username: str
    client_password: str


def provision_connected_registry(
    mgmt: Any, info: dict[str, Any], name: str, repositories: list[str]
) -> ProvisionedRegistry:
    """Sync scope map + token + CR (ReadOnly), sync password 1, a client token for ``name``.

    The registry's data endpoint must be enabled and the repositories must exist.
    """
    rg, reg = info["resource_group"], info["registry"]
    actions = [
        f"repositories/{r}/{a}" for r in repositories for a in ("content/read", "metadata/read")
    ]
    actions += [
        f"gateway/{name}/{a}"
        for a in ("config/read", "config/write", "message/read", "message/write")
    ]
    sync_map = mgmt.scope_maps.begin_create(
        rg, reg, name, {"properties": {"actions": actions}}
    ).result()
    sync_token = mgmt.tokens.begin_create(
        rg, reg, name, {"properties": {"scopeMapId": sync_map.id, "status": "enabled"}}
    ).result()
    client_name = f"{name}client"
    client_map = mgmt.scope_maps.begin_create(
        rg,
        reg,
        client_name,
        {
            "properties": {
                "actions": [
                    f"repositories/{r}/{a}"
                    for r in repositories
                    for a in ("content/read", "metadata/read")
                ]
            }
        },
    ).result()
    client_token = mgmt.tokens.begin_create(
        rg, reg, client_name, {"properties": {"scopeMapId": client_map.id, "status": "enabled"}}
    ).result()
    cr = mgmt.connected_registries.begin_create(
        rg,
        reg,
        name,
        {
            "properties": {
                "mode": "ReadOnly",
                "parent": {
                    "syncProperties": {
                        "tokenId": sync_token.id,
                        "schedule": "* * * * *",
                        "messageTtl": "P2D",
                    }
                },
                "clientTokenIds": [client_token.id],
            }
        },
    ).result()
    sync_creds = mgmt.registries.begin_generate_credentials(
        rg, reg, {"tokenId": sync_token.id, "name": "password1"}
    ).result()
    client_creds = mgmt.registries.begin_generate_credentials(
        rg, reg, {"tokenId": client_token.id, "name": "password1"}
    ).result()
    gateway = cr.parent.sync_properties.gateway_endpoint
    conn = (
        f"ConnectedRegistryName={name};SyncTokenName={sync_creds.username};"
        f"SyncTokenPassword={sync_creds.passwords[0].value};ParentGatewayEndpoint={gateway};"
        "ParentEndpointProtocol=https"
    )
    return ProvisionedRegistry(name, conn, client_creds.username, client_creds.passwords[0].value)
