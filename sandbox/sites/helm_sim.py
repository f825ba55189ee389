"""`helm` on a simulated node: releases of the connected-registry chart, revisions, values.

upgrade --install validates what the real chart requires (connectionString well-formed,
service.clusterIP inside the service CIDR) and applies the Deployment, Service and PVC through
the node's API store; each upgrade bumps the revision. Error text never echoes the connection
string (everything printed passes through ``_mask``).

HTTPS (``httpEnabled: false``, the chart's default): the Service listens on 443 and the pod
mounts volume "tls" from ``tls.secret``, or from a Secret the chart makes of inline
``tls.crt``/``tls.key``. ``cert-manager.enabled`` (true by default in the v2 chart) renders a
cert-manager Certificate; the sandbox has no cert-manager CRDs, so that install or upgrade fails
as helm does when a kind is not served (UNCONFIRMED whether the real chart skips it when
``tls.secret`` is set: the sandbox never does, stricter).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from sandbox.sites import connection_string
from sandbox.sites.kube_objects import BY_KIND, ApiError, Obj
from sandbox.sites.kube_store import KubeStore
from sandbox.sites.runtime import CR_LABEL, CR_LABEL_VALUE, RUNTIME_IMAGE, ConnectedRegistryRuntime
from sandbox.sites.tool_result import ToolResult

HELM_VERSION = "v3.17.3"
CHART_NAME = "connected-registry"
DEFAULT_CHART_VERSION = "0.9.0"
DEFAULT_VALUES: dict[str, Any] = {
    "connectionString": "",
    "httpEnabled": False,
    "service": {"clusterIP": ""},
    "pvc": {"storageClassName": "", "storageRequest": "500Gi"},
    "tls": {"crt": "", "key": "", "secret": ""},
    "cert-manager": {"enabled": True},
}


@dataclass
class Revision:
    revision: int
    status: str
    chart_version: str
    values: dict[str, Any]
    updated: str
    description: str
    broken: bool = False  # made while the fail_upgrade knob was set: its pods never get Ready


@dataclass
class Release:
    name: str
    namespace: str
    chart: str
    revisions: list[Revision] = field(default_factory=list)

    @property
    def current(self) -> Revision:
        return self.revisions[-1]

    @property
    def revision(self) -> int:
        return self.current.revision


_GLOBAL_VALUE_FLAGS = ("--kubeconfig", "--kube-context", "-n", "--namespace")


class HelmUsageError(Exception):
    pass


def _stamp() -> str:
    return datetime.now(UTC).isoformat()


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _typed(value: str) -> Any:
    if value in ("true", "false"):
        return value == "true"
    if value == "null":
        return None
    try:
        return int(value)
    except ValueError:
        return value


def _apply_set(values: dict[str, Any], expr: str, as_string: bool) -> None:
    for item in expr.split(","):
        if "=" not in item:
            raise HelmUsageError(
                f"failed parsing --set data: key {item.split('=')[0]!r} has no value"
            )
        path, value = item.split("=", 1)
        cur = values
        keys = path.split(".")
        for key in keys[:-1]:
            cur = cur.setdefault(key, {})
        cur[keys[-1]] = value if as_string else _typed(value)


def _duration(text: str) -> float:
    total, num = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1}
    for ch in text:
        if ch.isdigit() or ch == ".":
            num += ch
        elif ch in units and num:
            total += float(num) * units[ch]
            num = ""
        else:
            raise HelmUsageError(f'invalid argument "{text}" for "--timeout" flag')
    if num:
        total += float(num)
    return total


def _mask(text: str, secrets: list[str]) -> str:
    """Every secret value in ``text`` as ``***``: the longest first (alternation tries them in
    order), so a secret that is a prefix of another does not leave the other's tail. The sandbox
    keeps its own copy of this because it imports no production module."""
    values = sorted({s for s in secrets if s}, key=len, reverse=True)
    return re.sub("|".join(map(re.escape, values)), "***", text) if values else text


def _cert_manager(values: dict[str, Any]) -> bool:
    section = values.get("cert-manager")
    return bool(section.get("enabled", True)) if isinstance(section, dict) else True


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _listener(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """What the pod template's listener is: HTTPS unless httpEnabled, and its "tls" Secret."""
    https = not values.get("httpEnabled")
    tls = values.get("tls") or {}
    secret = str(tls.get("secret") or "")
    if https and not secret and tls.get("crt") and tls.get("key"):
        secret = f"{name}-tls-inline"
    return {"https": https, "tls_secret": secret if https else ""}


class HelmSimulator:
    def __init__(
        self,
        store: KubeStore,
        runtime: ConnectedRegistryRuntime,
        *,
        fail_upgrade: Callable[[], bool] = lambda: False,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.releases: dict[tuple[str, str], Release] = {}
        self._fail_upgrade = fail_upgrade

    def revision(self, namespace: str, name: str) -> int:
        release = self.releases.get((namespace, name))
        return release.revision if release else 0

    async def run(self, argv: list[str], stdin: bytes, cwd: str) -> ToolResult:
        secrets: list[str] = []
        try:
            result = await self._run(argv, stdin, cwd, secrets)
        except HelmUsageError as exc:
            result = ToolResult.fail(f"Error: {exc}")
        return ToolResult(_mask(result.stdout, secrets), _mask(result.stderr, secrets), result.exit)

    async def _run(self, argv: list[str], stdin: bytes, cwd: str, secrets: list[str]) -> ToolResult:
        # Global flags may come before the command (`helm --kubeconfig K status ...`).
        leading: list[str] = []
        while argv and argv[0] in _GLOBAL_VALUE_FLAGS:
            if len(argv) < 2:
                raise HelmUsageError(f"flag needs an argument: {argv[0]}")
            leading += argv[:2]
            argv = argv[2:]
        if not argv:
            return ToolResult.fail("Usage: helm [command]")
        command, rest = argv[0], [*leading, *argv[1:]]
        if command in ("version", "--version"):
            if "--short" in rest:
                return ToolResult(f"{HELM_VERSION}+ge4da497\n")
            return ToolResult(
                f'version.BuildInfo{{Version:"{HELM_VERSION}", GitCommit:"e4da49785aa6e6ee2b86efd5'
                f'dd9e43400318262b", GitTreeState:"clean", GoVersion:"go1.23.7"}}\n'
            )
        opts = self._parse(rest)
        kubeconfig = opts.get("kubeconfig")
        if kubeconfig is not None and not (Path(cwd) / kubeconfig).is_file():
            # helm reads the file before it talks to the cluster.
            return ToolResult.fail(
                f"Error: Kubernetes cluster unreachable: stat {kubeconfig}: no such file or "
                "directory"
            )
        if command in ("upgrade", "install"):
            return await self._upgrade(command, opts, stdin, cwd, secrets)
        if command == "status":
            return self._status(opts)
        if command == "get" and opts["args"][:1] == ["values"]:
            opts["args"] = opts["args"][1:]
            return self._get_values(opts)
        if command in ("list", "ls"):
            return self._list(opts)
        if command in ("history", "hist"):
            return self._history(opts)
        if command in ("rollback",):
            return await self._rollback(opts)
        if command in ("uninstall", "delete", "del"):
            return self._uninstall(opts)
        return ToolResult.fail(f'Error: unknown command "{command}" for "helm"')

    @staticmethod
    def _parse(args: list[str]) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "args": [],
            "values": [],
            "set": [],
            "namespace": "default",
            "output": "table",
            "flags": set(),
        }
        takes_value = {
            "-n": "namespace",
            "--namespace": "namespace",
            "-f": "values",
            "--values": "values",
            "--set": "set",
            "--set-string": "set_string",
            "--version": "version",
            "--timeout": "timeout",
            "-o": "output",
            "--output": "output",
            "--description": "description",
            "--kubeconfig": "kubeconfig",
            "--kube-context": "kube_context",
            "--history-max": "history_max",
            "--max": "max",
        }
        i = 0
        while i < len(args):
            arg = args[i]
            name, eq, inline = arg.partition("=")
            if arg.startswith("-") and (name in takes_value):
                key = takes_value[name]
                if eq:
                    value = inline
                else:
                    i += 1
                    if i >= len(args):
                        raise HelmUsageError(f"flag needs an argument: {name}")
                    value = args[i]
                if key in ("values", "set"):
                    opts[key].append(value)
                elif key == "set_string":
                    opts["set"].append(("string", value))
                else:
                    opts[key] = value
            elif arg.startswith("-") and arg != "-":
                opts["flags"].add(arg)
            else:
                opts["args"].append(arg)
            i += 1
        return opts

    # --- upgrade --install ----------------------------------------------------------------------

    async def _upgrade(
        self, command: str, opts: dict[str, Any], stdin: bytes, cwd: str, secrets: list[str]
    ) -> ToolResult:
        flags = opts["flags"]
        install = command == "install" or "--install" in flags or "-i" in flags
        if len(opts["args"]) != 2:
            return ToolResult.fail(f'Error: "helm {command}" requires 2 arguments')
        name, chart = opts["args"]
        ns = opts["namespace"]
        phase = "INSTALLATION" if command == "install" else "UPGRADE"
        user_values: dict[str, Any] = {}
        for source in opts["values"]:
            try:
                text = stdin.decode() if source == "-" else (Path(cwd) / source).read_text()
                loaded = yaml.safe_load(text) or {}
            except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
                return ToolResult.fail(f"Error: failed to parse {source}: {type(exc).__name__}")
            if not isinstance(loaded, dict):
                return ToolResult.fail(f"Error: failed to parse {source}: not a map")
            user_values = _deep_merge(user_values, loaded)
        for item in opts["set"]:
            if isinstance(item, tuple):
                _apply_set(user_values, item[1], as_string=True)
            else:
                _apply_set(user_values, item, as_string=False)
        conn = str(user_values.get("connectionString") or "")
        if conn:
            secrets.append(conn)
            secrets.extend(
                p.split("=", 1)[1]
                for p in conn.split(";")
                if "=" in p and p.startswith("SyncTokenPassword=")
            )
        inline_key = str((user_values.get("tls") or {}).get("key") or "")
        if inline_key:
            secrets.append(inline_key)
        key = (ns, name)
        release = self.releases.get(key)
        if release is None and not install:
            return ToolResult.fail(f'Error: UPGRADE FAILED: "{name}" has no deployed releases')
        if release is None:
            phase = "INSTALLATION"
        if self.store.find(BY_KIND["Namespace"], "", ns) is None:
            if "--create-namespace" not in flags:
                return ToolResult.fail(
                    f'Error: {phase} FAILED: create: failed to create: namespaces "{ns}" not found'
                )
            self.store.create(BY_KIND["Namespace"], "", {"metadata": {"name": ns}})
        values = _deep_merge(DEFAULT_VALUES, user_values)
        chart_version = opts.get("version") or DEFAULT_CHART_VERSION
        problem = self._validate(values) or self._build_problem(
            name, ns, values, "new release manifest" if release else "release manifest"
        )
        new_release = release is None
        if release is None:
            release = Release(name=name, namespace=ns, chart=chart)
            self.releases[key] = release
        revision = Revision(
            release.revision + 1 if release.revisions else 1,
            "pending-upgrade",
            chart_version,
            user_values,
            _stamp(),
            "",
            broken=bool(release.revisions) and self._fail_upgrade(),
        )
        if problem is None:
            try:
                self._apply(name, ns, values, chart_version)
            except ApiError as err:
                problem = err.message
        if problem is not None:
            revision.status, revision.description = "failed", f"{phase.title()} failed: {problem}"
            release.revisions.append(revision)
            return ToolResult.fail(f"Error: {phase} FAILED: {problem}")
        release.revisions.append(revision)  # pending while helm waits, as Helm 3 records it
        self.runtime.deploy(ns, name, conn, broken=revision.broken, **_listener(name, values))
        if "--wait" in flags or "--atomic" in flags:
            deadline = time.monotonic() + _duration(opts.get("timeout", "5m0s"))
            while not self._deployment_ready(ns, name):
                if time.monotonic() >= deadline:
                    # pkg/action failRelease: only the new revision fails; the one deployed
                    # before stays deployed (superseded only by a success).
                    what = "Release" if new_release else "Upgrade"
                    revision.status = "failed"
                    revision.description = f'{what} "{name}" failed: context deadline exceeded'
                    return ToolResult.fail(f"Error: {phase} FAILED: context deadline exceeded")
                await asyncio.sleep(0.05)
        for old in release.revisions[:-1]:
            if old.status == "deployed":
                old.status = "superseded"
        revision.status = "deployed"
        revision.description = "Install complete" if new_release else "Upgrade complete"
        head = (
            f'Release "{name}" does not exist. Installing it now.\n'
            if new_release and command == "upgrade"
            else f'Release "{name}" has been upgraded. Happy Helming!\n'
            if not new_release
            else ""
        )
        return ToolResult(
            f"{head}NAME: {name}\nLAST DEPLOYED: {time.strftime('%a %b %d %H:%M:%S %Y')}\n"
            f"NAMESPACE: {ns}\nSTATUS: deployed\nREVISION: {revision.revision}\nTEST SUITE: None\n"
        )

    @staticmethod
    def _validate(values: dict[str, Any]) -> str | None:
        where = f"execution error at ({CHART_NAME}/templates/_helpers.tpl:12:4)"
        conn = values.get("connectionString")
        if not conn:
            return f"{where}: connectionString is required"
        try:
            connection_string.parse(str(conn))
        except ValueError as exc:
            return (
                f"{where}: connectionString is malformed ({exc}); expected "
                "ConnectedRegistryName=...;SyncTokenName=...;SyncTokenPassword=...;"
                "ParentGatewayEndpoint=...;ParentEndpointProtocol=http|https"
            )
        return None

    @staticmethod
    def _build_problem(name: str, ns: str, values: dict[str, Any], manifest: str) -> str | None:
        """Helm maps every rendered object to an API resource before applying any: a kind the
        cluster does not serve fails the whole release (there are no cert-manager CRDs)."""
        if values.get("httpEnabled") or not _cert_manager(values):
            return None
        return (
            f"unable to build kubernetes objects from {manifest}: resource mapping not found "
            f'for name: "{name}-tls" namespace: "{ns}" from "": no matches for kind '
            '"Certificate" in version "cert-manager.io/v1"\nensure CRDs are installed first'
        )

    def _apply(self, name: str, ns: str, values: dict[str, Any], chart_version: str) -> None:
        labels = {
            "app": name,
            CR_LABEL: CR_LABEL_VALUE,
            "app.kubernetes.io/instance": name,
            "app.kubernetes.io/managed-by": "Helm",
            "helm.sh/chart": f"{CHART_NAME}-{chart_version}",
        }
        annotations = {"meta.helm.sh/release-name": name, "meta.helm.sh/release-namespace": ns}
        http_enabled = bool(values.get("httpEnabled"))
        port = 80 if http_enabled else 443
        service = values.get("service") or {}
        pvc = values.get("pvc") or {}
        mount = _listener(name, values)["tls_secret"]
        tls_volume = (
            [{"name": "tls", "secret": {"secretName": mount}}] if not http_enabled and mount else []
        )
        objects: list[tuple[str, str, Obj]] = []
        inline = values.get("tls") or {}
        if not http_enabled and mount == f"{name}-tls-inline":
            # UNCONFIRMED: the chart's own Secret of inline PEM values (name and encoding)
            objects.append(
                (
                    "Secret",
                    mount,
                    {
                        "metadata": {"name": mount, "labels": labels, "annotations": annotations},
                        "type": "kubernetes.io/tls",
                        "data": {
                            "tls.crt": _b64(str(inline.get("crt") or "")),
                            "tls.key": _b64(str(inline.get("key") or "")),
                        },
                    },
                )
            )
        objects += [
            (
                "Service",
                name,
                {
                    "metadata": {"name": name, "labels": labels, "annotations": annotations},
                    "spec": {
                        "type": "ClusterIP",
                        "selector": {"app": name},
                        "ports": [
                            {
                                "name": "http" if http_enabled else "https",
                                "port": port,
                                "targetPort": 8080 if http_enabled else 8443,
                            }
                        ],
                        **(
                            {"clusterIP": str(service["clusterIP"])}
                            if service.get("clusterIP")
                            else {}
                        ),
                    },
                },
            ),
            (
                "PersistentVolumeClaim",
                f"{name}-pvc",
                {
                    "metadata": {
                        "name": f"{name}-pvc",
                        "labels": labels,
                        "annotations": annotations,
                    },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": pvc.get("storageClassName") or "local-path",
                        "resources": {
                            "requests": {"storage": str(pvc.get("storageRequest") or "500Gi")}
                        },
                    },
                },
            ),
            (
                "Deployment",
                name,
                {
                    "metadata": {"name": name, "labels": labels, "annotations": annotations},
                    "spec": {
                        "replicas": 1,
                        "selector": {"matchLabels": {"app": name}},
                        "template": {
                            "metadata": {"labels": {"app": name, CR_LABEL: CR_LABEL_VALUE}},
                            "spec": {
                                "containers": [
                                    {
                                        "name": "connected-registry",
                                        "image": RUNTIME_IMAGE,
                                        "ports": [
                                            {"containerPort": 8080 if http_enabled else 8443}
                                        ],
                                        "env": [
                                            {
                                                "name": "ACR_REGISTRY_CONNECTION_STRING",
                                                "valueFrom": {
                                                    "secretKeyRef": {
                                                        "name": f"{name}-connection-string",
                                                        "key": "connectionString",
                                                    }
                                                },
                                            }
                                        ],
                                        **(
                                            {
                                                "volumeMounts": [
                                                    {
                                                        "name": "tls",
                                                        "mountPath": "/etc/connected-registry/tls",
                                                        "readOnly": True,
                                                    }
                                                ]
                                            }
                                            if tls_volume
                                            else {}
                                        ),
                                    }
                                ],
                                "volumes": [
                                    {
                                        "name": "data",
                                        "persistentVolumeClaim": {"claimName": f"{name}-pvc"},
                                    },
                                    *tls_volume,
                                ],
                            },
                        },
                    },
                },
            ),
        ]
        for kind, obj_name, body in objects:
            rt = BY_KIND[kind]
            current = self.store.find(rt, ns, obj_name)
            if current is None:
                self.store.create(rt, ns, body)
                continue
            merged = copy.deepcopy(current)
            merged["metadata"]["labels"] = body["metadata"]["labels"]
            merged["metadata"]["annotations"] = body["metadata"]["annotations"]
            if kind == "Service":
                wanted_ip = body["spec"].get("clusterIP")
                if wanted_ip and wanted_ip != current["spec"].get("clusterIP"):
                    raise ApiError(
                        422,
                        "Invalid",
                        f'cannot patch "{name}" with kind Service: '
                        f'Service "{name}" is invalid: spec.clusterIP: Invalid value: '
                        f'"{wanted_ip}": field is immutable',
                    )
                merged["spec"].update({k: v for k, v in body["spec"].items() if k != "clusterIP"})
            elif kind == "PersistentVolumeClaim":
                merged["spec"]["resources"] = body["spec"]["resources"]
            elif kind == "Secret":
                merged["type"], merged["data"] = body["type"], body["data"]
            else:
                merged["spec"] = body["spec"]
            self.store.replace(rt, ns, obj_name, merged)

    def _deployment_ready(self, ns: str, name: str) -> bool:
        deployment = self.store.find(BY_KIND["Deployment"], ns, name)
        status = (deployment or {}).get("status") or {}
        return bool(status.get("availableReplicas"))

    # --- read commands --------------------------------------------------------------------------

    def _release(self, opts: dict[str, Any]) -> Release | None:
        if not opts["args"]:
            return None
        return self.releases.get((opts["namespace"], opts["args"][0]))

    def _status(self, opts: dict[str, Any]) -> ToolResult:
        release = self._release(opts)
        if release is None:
            return ToolResult.fail("Error: release: not found")
        rev = release.current
        doc = {
            "name": release.name,
            "info": {
                "first_deployed": release.revisions[0].updated,
                "last_deployed": rev.updated,
                "deleted": "",
                "description": rev.description,
                "status": rev.status,
            },
            "chart": {
                "metadata": {
                    "name": CHART_NAME,
                    "version": rev.chart_version,
                    "appVersion": rev.chart_version,
                    "apiVersion": "v2",
                }
            },
            "config": rev.values,
            "version": rev.revision,
            "namespace": release.namespace,
        }
        if opts["output"] == "json":
            return ToolResult(json.dumps(doc) + "\n")
        return ToolResult(
            f"NAME: {release.name}\nLAST DEPLOYED: {rev.updated}\nNAMESPACE: {release.namespace}\n"
            f"STATUS: {rev.status}\nREVISION: {rev.revision}\nTEST SUITE: None\n"
        )

    def _get_values(self, opts: dict[str, Any]) -> ToolResult:
        release = self._release(opts)
        if release is None:
            return ToolResult.fail("Error: release: not found")
        values = release.current.values
        if "--all" in opts["flags"] or "-a" in opts["flags"]:
            values = _deep_merge(DEFAULT_VALUES, values)
        if opts["output"] == "json":
            return ToolResult(json.dumps(values or None) + "\n")
        return ToolResult(
            "USER-SUPPLIED VALUES:\n" + (yaml.safe_dump(values) if values else "null\n")
        )

    def _list(self, opts: dict[str, Any]) -> ToolResult:
        all_ns = "-A" in opts["flags"] or "--all-namespaces" in opts["flags"]
        rows = [
            {
                "name": r.name,
                "namespace": r.namespace,
                "revision": str(r.revision),
                "updated": r.current.updated,
                "status": r.current.status,
                "chart": f"{CHART_NAME}-{r.current.chart_version}",
                "app_version": r.current.chart_version,
            }
            for (ns, _), r in sorted(self.releases.items())
            if all_ns or ns == opts["namespace"]
        ]
        if opts["output"] == "json":
            return ToolResult(json.dumps(rows) + "\n")
        lines = ["NAME\tNAMESPACE\tREVISION\tUPDATED\tSTATUS\tCHART\tAPP VERSION"]
        lines += ["\t".join(str(v) for v in row.values()) for row in rows]
        return ToolResult("\n".join(lines) + "\n")

    def _history(self, opts: dict[str, Any]) -> ToolResult:
        release = self._release(opts)
        if release is None:
            return ToolResult.fail("Error: release: not found")
        rows = [
            {
                "revision": r.revision,
                "updated": r.updated,
                "status": r.status,
                "chart": f"{CHART_NAME}-{r.chart_version}",
                "app_version": r.chart_version,
                "description": r.description,
            }
            for r in release.revisions[-int(opts.get("max") or 256) :]
        ]
        if opts["output"] == "json":
            return ToolResult(json.dumps(rows) + "\n")
        lines = ["REVISION\tUPDATED\tSTATUS\tCHART\tAPP VERSION\tDESCRIPTION"]
        lines += ["\t".join(str(v) for v in row.values()) for row in rows]
        return ToolResult("\n".join(lines) + "\n")

    async def _rollback(self, opts: dict[str, Any]) -> ToolResult:
        """Helm 3's pkg/action/rollback.go: a new revision (head + 1) with the target's chart
        and values, described "Rollback to N"; on success every deployed revision becomes
        superseded (a failed one stays failed), on a --wait timeout the new one is failed."""
        if not opts["args"]:
            return ToolResult.fail('Error: "helm rollback" requires at least 1 argument')
        release = self._release(opts)
        if release is None:
            return ToolResult.fail("Error: release: not found")
        raw = opts["args"][1] if len(opts["args"]) > 1 else "0"
        try:
            wanted = int(raw)
        except ValueError:
            return ToolResult.fail(f'Error: invalid revision number "{raw}"')
        if wanted < 0:
            return ToolResult.fail("Error: invalid release revision")
        number = wanted or release.revision - 1
        target = next((r for r in release.revisions if r.revision == number), None)
        if target is None:
            return ToolResult.fail("Error: release: not found")
        ns, name = release.namespace, release.name
        revision = Revision(
            release.revision + 1,
            "pending-rollback",
            target.chart_version,
            copy.deepcopy(target.values),
            _stamp(),
            f"Rollback to {number}",
            broken=target.broken,
        )
        current = release.current
        release.revisions.append(revision)
        values = _deep_merge(DEFAULT_VALUES, target.values)
        try:
            problem = self._build_problem(name, ns, values, "new release manifest")
            if problem is not None:
                raise ApiError(400, "BadRequest", problem)
            self._apply(name, ns, values, target.chart_version)
        except ApiError as err:
            current.status, revision.status = "superseded", "failed"
            revision.description = f'Rollback "{name}" failed: {err.message}'
            return ToolResult.fail(f"Error: {err.message}")
        self.runtime.deploy(
            ns,
            name,
            str(values.get("connectionString") or ""),
            broken=target.broken,
            **_listener(name, values),
        )
        if "--wait" in opts["flags"]:
            deadline = time.monotonic() + _duration(opts.get("timeout", "5m0s"))
            while not self._deployment_ready(ns, name):
                if time.monotonic() >= deadline:
                    revision.status = "failed"
                    revision.description = f'Release "{name}" failed: context deadline exceeded'
                    return ToolResult.fail(
                        f"Error: release {name} failed: context deadline exceeded"
                    )
                await asyncio.sleep(0.05)
        for old in release.revisions:
            if old.status == "deployed":
                old.status = "superseded"
        revision.status = "deployed"
        return ToolResult("Rollback was a success! Happy Helming!\n")

    def _uninstall(self, opts: dict[str, Any]) -> ToolResult:
        release = self._release(opts)
        if release is None:
            name = opts["args"][0] if opts["args"] else ""
            return ToolResult.fail(
                f"Error: uninstall: Release not loaded: {name}: release: not found"
            )
        ns, name = release.namespace, release.name
        for kind, obj_name in (
            ("Deployment", name),
            ("Service", name),
            ("PersistentVolumeClaim", f"{name}-pvc"),
            ("Secret", f"{name}-tls-inline"),
        ):
            if self.store.find(BY_KIND[kind], ns, obj_name) is not None:
                self.store.delete(BY_KIND[kind], ns, obj_name)
        self.runtime.remove(ns, name)
        del self.releases[(ns, name)]
        return ToolResult(f'release "{name}" uninstalled\n')
