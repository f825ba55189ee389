"""Pure: the planned change of every site step, with its reason, from the facts read.

One ``plan_<resource>`` per step of :mod:`tasks.site` (namespace, helm-release,
registries-yaml, restart, pull-secrets, canary), each returning a :class:`model.plan.Change`
whose reason is deterministic from the facts (no timestamps, no values generated later), so a
dry run lists the same rows the real run then performs. Also the pure checks site-status
reports. No I/O here: the resource modules read, these decide, the resource modules apply.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from model.errors import AcrEdgeError, PermanentError
from model.plan import Change
from model.site import (
    MirrorRoute,
    NodeAuth,
    PullSecretMeta,
    ReleaseFact,
    SiteCheck,
    SiteSettings,
    as_route,
)
from model.site import SyncCredentialRef as SyncRef
from tasks.site import helm_values, registries_decode, registries_yaml

DOCKERCONFIG = "kubernetes.io/dockerconfigjson"
ANNOTATION_TOKEN = "acr-edge.io/token"
ANNOTATION_SLOT = "acr-edge.io/password-slot"
ANNOTATION_CREATED = "acr-edge.io/password-created"
CANARY_TAG = "latest"


def canary_image(host: str, repository: str, tag: str = CANARY_TAG) -> str:
    return f"{host}/{repository}:{tag}"


# -- namespace ---------------------------------------------------------------------------------


def plan_namespace(exists: bool, name: str, *, resource: str) -> Change:
    if exists:
        return Change.none("namespace", resource, f"namespace {name} already exists")
    return Change("namespace", resource, "create", f"create namespace {name}", payload=name)


# -- helm release ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HelmPayload:
    """What the apply installs: ``connection_string`` None means "the release's own" (a
    settings-only upgrade that keeps the sync credential; read back on the node side)."""

    sync_ref: SyncRef
    connection_string: SecretStr | None
    serving: helm_values.Serving | None = None


def release_resource(site: SiteSettings) -> str:
    return f"{site.resource}: helm release {site.namespace}/{site.release_name}"


def plan_helm_release(
    fact: ReleaseFact,
    site: SiteSettings,
    sync_ref: SyncRef,
    connection_string: SecretStr | None,
    tls_secret: str | None = None,
    transport: str | None = None,
) -> Change:
    """Install or upgrade unless the release is deployed with exactly these values.

    ``tls_secret`` (https): the server-certificate Secret to serve; None keeps the one the
    release serves (a renewal names the other slot). ``transport`` None keeps what the
    release serves (only provision switches it, once the nodes are ready for it).

    ``connection_string`` None with the release's own recorded ``sync_ref``: keep the
    release's connection string (a settings-only upgrade; it must be readable:
    ``fact.credential_reusable``). None with another ``sync_ref``: a dry run of a new sync
    credential (planned, never applied without the value).
    """
    resource = release_resource(site)
    rel = site.release_name
    serving = helm_values.serving_for(
        site, fact.values if fact.exists else None, tls_secret, transport=transport
    )
    wanted = helm_values.desired_digest(site, sync_ref, serving)
    payload = HelmPayload(sync_ref, connection_string, serving)
    settings = helm_values.changed_settings(fact.values, site, serving) if fact.exists else []
    shown = {"settings": settings, "sync_slot": sync_ref.slot}
    if fact.status == "deployed" and fact.digest == wanted:
        return Change.none(
            "helm-release",
            resource,
            f"release {rel} already has these values ({wanted[:19]})",
            digest=wanted,
        )
    if not fact.exists:
        why = f"install release {rel} with the sync credential {sync_ref.token} {sync_ref.slot}"
        return Change("helm-release", resource, "install", why, payload, shown)
    kept = fact.sync_ref == sync_ref
    if kept and connection_string is None and not fact.credential_reusable:
        raise PermanentError(
            "the release's connection string cannot be re-used for the kept sync "
            f"credential {sync_ref.token} {sync_ref.slot}",
            resource=resource,
            fix="re-run provision-site: it generates a fresh sync password then",
        )
    reasons = []
    if fact.status != "deployed":
        reasons.append(f"the previous release is {fact.status}")
    if settings:
        reasons.append(f"values changed ({', '.join(settings)})")
    if not kept:
        reasons.append(f"new sync credential {sync_ref.token} {sync_ref.slot}")
    if not reasons:
        reasons.append("values digest changed")
    if kept and connection_string is None:
        reasons.append(f"the kept sync credential {sync_ref.slot} is re-used")
    why = f"upgrade release {rel}: {'; '.join(reasons)}"
    return Change("helm-release", resource, "upgrade", why, payload, shown)


def release_check(fact: ReleaseFact, release_name: str) -> SiteCheck:
    if fact.status is None:
        return SiteCheck(False, "release not installed")
    return SiteCheck(fact.status == "deployed", f"{release_name}: {fact.status}")


# -- registries.yaml and restart ---------------------------------------------------------------


def plan_registries_yaml(
    current: SecretStr | None,
    route: MirrorRoute | str,
    auth: NodeAuth | None,
    *,
    resource: str,
    path: str,
    node_ref: PullSecretMeta | None = None,
) -> Change:
    """The mirror ``route`` (and, node model, the credential) in the node's file.

    ``current`` is the file's text (None: no file). A dry run of the node model has no
    password: give ``node_ref`` (which slot the node should hold) instead of ``auth``; when
    the file already records that slot its own value stands in, else a placeholder (the file
    then changes either way, and the reason names the slot, not the value).

    ``shown`` (never the payload) says what the apply needs beyond the write: ``auth_changed``
    (K3s loads credentials only at start: restart) and ``hosts_toml``, the file K3s would render
    for ``host`` (no credentials in it), to write for a change containerd picks up without one.
    """
    route = as_route(route)
    text = None if current is None else current.get_secret_value()
    if auth is None and node_ref is not None:
        auth = _stand_in_auth(text, route.host, node_ref, path)
    merged = registries_yaml.merge(text, route, auth, path=path)  # refuses a bad file untouched
    del text
    if not merged.changed:
        return Change.none(
            "registries-yaml", resource, merged.reason, path=path, hosts_toml=merged.hosts_toml
        )
    return Change(
        "registries-yaml",
        resource,
        "write",
        merged.reason,
        payload=merged.content,
        shown={
            "path": path,
            "replaces": current is not None,
            "mirror_changed": merged.mirror_changed,
            "auth_changed": merged.auth_changed,
            "hosts_toml": merged.hosts_toml,
        },
    )


def _stand_in_auth(text: str | None, host: str, ref: PullSecretMeta, path: str) -> NodeAuth:
    record = registries_yaml.node_credential(text, host, path=path)
    held = None
    if record is not None and (record.token, record.slot, record.created) == (
        ref.token,
        ref.slot,
        ref.created,
    ):
        held = node_password(text, host, path=path)
    password = held[1] if held else SecretStr(helm_values.MASK)
    return NodeAuth(ref.token, password, ref.slot, ref.created)


def node_password(text: str | None, host: str, *, path: str) -> tuple[str, SecretStr] | None:
    """(username, password) of ``configs.<host>.auth`` as K3s reads the registries.yaml text."""
    if text is None:
        return None
    config = registries_decode.decode(text, path).config(host)
    auth = config.auth if config else None
    del config
    if auth is None or not auth.password:
        return None
    found = auth.username, SecretStr(auth.password)
    del auth
    return found


def mirror_check(current: SecretStr | None, route: MirrorRoute | str, *, path: str) -> SiteCheck:
    route = as_route(route)
    host = route.host
    if current is None:
        return SiteCheck(False, f"{path} missing")
    try:
        reg = registries_decode.decode(current.get_secret_value(), path)
    except AcrEdgeError as exc:
        return SiteCheck(False, str(exc))
    mirror = reg.mirror(host)
    endpoints = list(mirror.endpoints or ()) if mirror else []
    want = ", ".join(route.endpoints)
    if tuple(endpoints) != route.endpoints:
        return SiteCheck(False, f"no mirror {host} -> {want} (endpoints: {endpoints or 'none'})")
    if route.ca_host:
        config = reg.config(route.ca_host)
        ca = config.tls.ca_file if config and config.tls else ""
        if ca != route.ca_file:
            return SiteCheck(
                False,
                f"mirror {host} -> {want} but configs.{route.ca_host}.tls.ca_file is "
                f"{ca or 'unset'}, not the site CA {route.ca_file}",
            )
        return SiteCheck(True, f"mirror {host} -> {want}, trusting {route.ca_file}")
    return SiteCheck(True, f"mirror {host} -> {want}")


# -- pull secrets ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullSecretState:
    """One namespace's pull secret as read. ``config`` is its dockerconfigjson text (holds a
    password: a SecretStr, never shown). ``sa_pull_secrets`` None: no default service account
    read (not asked for, or its namespace does not exist yet)."""

    namespace: str
    namespace_exists: bool
    exists: bool = False
    type: str = ""
    meta: PullSecretMeta | None = None
    config: SecretStr | None = None
    sa_pull_secrets: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PullSecretWanted:
    secret_name: str
    host: str
    username: str
    meta: PullSecretMeta
    password: SecretStr | None  # None in a dry run: the annotations say which slot is held
    patch_default_service_account: bool = False


@dataclass(frozen=True)
class SecretWrite:
    """The apply's work in one namespace: ``mode`` create, replace or recreate (a Secret's
    type is immutable: delete + create), None when the secret is current."""

    namespace: str
    create_namespace: bool
    mode: str | None
    patch_service_account: bool
    current_names: tuple[str, ...] = ()


def dockerconfig(host: str, username: str, password: SecretStr) -> dict[str, Any]:
    secret = password.get_secret_value()
    auth = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return {"auths": {host: {"username": username, "password": secret, "auth": auth}}}


def annotations_of(meta: PullSecretMeta) -> dict[str, str]:
    return {
        ANNOTATION_TOKEN: meta.token,
        ANNOTATION_SLOT: meta.slot,
        ANNOTATION_CREATED: meta.created,
    }


def meta_of(annotations: dict[str, str] | None) -> PullSecretMeta | None:
    token = (annotations or {}).get(ANNOTATION_TOKEN)
    if not token:
        return None
    assert annotations is not None
    return PullSecretMeta(
        token=token,
        slot=annotations.get(ANNOTATION_SLOT, ""),
        created=annotations.get(ANNOTATION_CREATED, ""),
    )


def decode_config(raw: str | bytes | None) -> SecretStr | None:
    """The dockerconfigjson text of a Secret's base64 ``data`` value."""
    if not raw:
        return None
    try:
        return SecretStr(base64.b64decode(raw, validate=True).decode("utf-8"))
    except (binascii.Error, ValueError):
        return None


def _secret_current(state: PullSecretState, wanted: PullSecretWanted) -> bool:
    if not state.exists or state.type != DOCKERCONFIG or state.meta != wanted.meta:
        return False
    try:
        actual = json.loads(state.config.get_secret_value()) if state.config else None
    except ValueError:
        return False
    if wanted.password is not None:
        return bool(actual == dockerconfig(wanted.host, wanted.username, wanted.password))
    # Dry run: no value to compare. The annotations name the slot it holds; its entry must be
    # the only one and for this user.
    auths = actual.get("auths") if isinstance(actual, dict) else None
    entry = auths.get(wanted.host) if isinstance(auths, dict) and len(auths) == 1 else None
    return isinstance(entry, dict) and entry.get("username") == wanted.username


def plan_pull_secrets(
    states: list[PullSecretState], wanted: PullSecretWanted, *, resource: str
) -> Change:
    """Write the pull secret where it is missing or differs; patch default service accounts."""
    writes: list[SecretWrite] = []
    for state in states:
        current = _secret_current(state, wanted)
        mode = None
        if not current:
            mode = (
                "create"
                if not state.exists
                else ("replace" if state.type == DOCKERCONFIG else "recreate")
            )
        names = state.sa_pull_secrets or ()
        patch = wanted.patch_default_service_account and wanted.secret_name not in names
        if mode or patch or not state.namespace_exists:
            writes.append(
                SecretWrite(state.namespace, not state.namespace_exists, mode, patch, names)
            )
    meta = wanted.meta
    held = f"(token {meta.token}, {meta.slot})"
    name = wanted.secret_name
    if not writes:
        return Change.none(
            "pull-secrets",
            resource,
            f"pull secret {name} already current in {len(states)} namespace(s) {held}",
            namespaces=[s.namespace for s in states],
        )
    parts = []
    written = [w.namespace for w in writes if w.mode]
    if written:
        parts.append(f"pull secret {name}: write in {', '.join(written)} {held}")
    created = [w.namespace for w in writes if w.create_namespace]
    if created:
        parts.append(f"create namespace {', '.join(created)}")
    patched = [w.namespace for w in writes if w.patch_service_account]
    if patched:
        parts.append(f"patch the default service account in {', '.join(patched)}")
    return Change(
        "pull-secrets",
        resource,
        "write",
        "; ".join(parts),
        payload=(wanted, tuple(writes)),
        shown={"namespaces": written, "token": meta.token, "slot": meta.slot},
    )


# -- canary ------------------------------------------------------------------------------------


def plan_canary(
    namespace: str, image: str | None, pull_secret: str | None, *, resource: str
) -> Change:
    """A pull through the mirror proves the whole chain; skipped while nothing is synced."""
    if image is None:
        return Change.none("canary", resource, "no repository synced yet; canary skipped")
    secret = f"with {pull_secret}" if pull_secret else "with the node's credential"
    return Change(
        "canary",
        resource,
        "pull",
        f"pull {image} in {namespace} {secret}",
        payload=(namespace, image, pull_secret),
    )
