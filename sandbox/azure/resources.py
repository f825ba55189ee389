"""ARM semantics of Microsoft.ContainerRegistry resources: validation, writes and rendering.

Everything here runs under the store lock and raises ``ArmError`` for anything ARM refuses.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
from typing import Any

from sandbox.azure import crstate
from sandbox.azure.http import ArmError, parse_bool
from sandbox.azure.store import PROVIDER, Child, Password, Registry, Store, iso, parse_iso, utcnow

TYPE_REGISTRY = f"{PROVIDER}/registries"
COLLECTIONS = {
    "scopemaps": ("scopeMaps", f"{PROVIDER}/registries/scopeMaps"),
    "tokens": ("tokens", f"{PROVIDER}/registries/tokens"),
    "connectedregistries": ("connectedRegistries", f"{PROVIDER}/registries/connectedRegistries"),
}

NAME_RULES = {
    "registries": (re.compile(r"^[a-zA-Z0-9]*$"), "alphanumeric"),
    "connectedRegistries": (re.compile(r"^[a-zA-Z0-9]*$"), "alphanumeric"),
    "scopeMaps": (re.compile(r"^[a-zA-Z0-9-_]*$"), "alphanumeric, '-' and '_'"),
    "tokens": (re.compile(r"^[a-zA-Z0-9-]*$"), "alphanumeric and '-'"),
}
MAX_SCOPE_MAP_REPOSITORIES = 500


def check_name(collection: str, name: str) -> None:
    pattern, allowed = NAME_RULES[collection]
    if not (5 <= len(name) <= 50) or not pattern.match(name):
        raise ArmError(
            400,
            "InvalidResourceName" if collection == "registries" else "ResourceNameInvalid",
            f"Resource name '{name}' is invalid for {collection}: it must be 5-50 characters, "
            f"{allowed} only.",
            target="name",
        )


def _props(body: Any, *, required: bool = True) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content was invalid.")
    props = body.get("properties")
    if props is None:
        if required:
            raise ArmError(
                400, "InvalidRequestContent", "'properties' is required.", target="properties"
            )
        return {}
    if not isinstance(props, dict):
        raise ArmError(
            400, "InvalidRequestContent", "'properties' must be an object.", target="properties"
        )
    return props


def _child_from_id(
    store: Store, registry: Registry, arm_id: Any, collection: str, field_name: str
) -> Child:
    """Resolve an ARM id of a sibling resource (same registry); 404 if it does not exist."""
    if not isinstance(arm_id, str) or not arm_id:
        raise ArmError(
            400, "InvalidRequestContent", f"'{field_name}' must be an ARM id.", target=field_name
        )
    prefix = registry.id.lower() + f"/{collection.lower()}/"
    if not arm_id.lower().startswith(prefix):
        raise ArmError(
            400,
            "InvalidResourceId",
            f"'{arm_id}' is not a {collection} id of registry '{registry.name}'.",
            target=field_name,
        )
    name = arm_id[len(prefix) :].strip("/")
    table = {
        "scopemaps": registry.scope_maps,
        "tokens": registry.tokens,
        "connectedregistries": registry.connected_registries,
    }[collection.lower()]
    child = table.get(name.lower())
    if child is None:
        code = {
            "scopemaps": "ScopeMapNotFound",
            "tokens": "TokenNotFound",
            "connectedregistries": "ConnectedRegistryNotFound",
        }[collection.lower()]
        raise ArmError(
            404,
            code,
            f"The {collection[:-1]} '{name}' referenced by '{field_name}' does not "
            f"exist in registry '{registry.name}'.",
            target=field_name,
        )
    return child


def _canonical_id(registry: Registry, collection: str, child: Child) -> str:
    return registry.child_id(collection, child.name)


# -- registry -----------------------------------------------------------------------------


def render_registry(store: Store, reg: Registry) -> dict[str, Any]:
    state = store.provisioning_state(reg.op_id, "Updating")
    props: dict[str, Any] = {
        "loginServer": reg.login_server,
        "creationDate": iso(reg.created),
        "provisioningState": state,
        "adminUserEnabled": False,
        "networkRuleSet": {"defaultAction": "Allow", "ipRules": []},
        "policies": {
            "quarantinePolicy": {"status": "disabled"},
            "trustPolicy": {"type": "Notary", "status": "disabled"},
            "retentionPolicy": {
                "days": 7,
                "lastUpdatedTime": iso(reg.created),
                "status": "disabled",
            },
            "exportPolicy": {"status": "enabled"},
            "azureADAuthenticationAsArmPolicy": {"status": "enabled"},
        },
        "encryption": {"status": "disabled"},
        "status": None,
        "dataEndpointEnabled": reg.data_endpoint_enabled,
        "dataEndpointHostNames": [reg.data_endpoint_host] if reg.data_endpoint_enabled else [],
        "privateEndpointConnections": [],
        "publicNetworkAccess": "Enabled",
        "networkRuleBypassOptions": "AzureServices",
        "networkRuleBypassAllowedForTasks": False,
        "zoneRedundancy": "Disabled",
        "anonymousPullEnabled": False,
        "roleAssignmentMode": "LegacyRegistryPermissions",
    }
    props.update(copy.deepcopy(reg.extra))
    return {
        "id": reg.id,
        "name": reg.name,
        "type": TYPE_REGISTRY,
        "location": reg.location,
        "tags": dict(reg.tags),
        "sku": {"name": reg.sku, "tier": reg.sku},
        "properties": props,
    }


SKUS = {"basic": "Basic", "standard": "Standard", "premium": "Premium"}
READ_ONLY_REGISTRY = {
    "loginServer",
    "creationDate",
    "provisioningState",
    "status",
    "dataEndpointHostNames",
    "privateEndpointConnections",
}


def update_registry(store: Store, reg: Registry, body: Any) -> None:
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content was invalid.")
    props = _props(body, required=False)
    sku = reg.sku
    if "sku" in body:
        name = str((body.get("sku") or {}).get("name", ""))
        if name.lower() not in SKUS:
            raise ArmError(400, "InvalidSku", f"The SKU '{name}' is not valid.", target="sku")
        sku = SKUS[name.lower()]
    data_endpoint = reg.data_endpoint_enabled
    if "dataEndpointEnabled" in props:
        data_endpoint = parse_bool(props["dataEndpointEnabled"])
    if data_endpoint and sku != "Premium":
        raise ArmError(
            400,
            "DataEndpointNotSupported",
            f"Dedicated data endpoints require the Premium SKU; registry '{reg.name}' is {sku}.",
            target="properties.dataEndpointEnabled",
        )
    if reg.data_endpoint_enabled and not data_endpoint and reg.connected_registries:
        # spec §4/§8: connected registries sync through the home-region dedicated data endpoint;
        # the refusal's code and wording are UNCONFIRMED (stricter than leaving them stranded).
        names = ", ".join(sorted(c.name for c in reg.connected_registries.values()))
        raise ArmError(
            400,
            "DataEndpointInUse",
            f"The dedicated data endpoint of registry '{reg.name}' cannot be disabled while it "
            f"has connected registries ({names}).",
            target="properties.dataEndpointEnabled",
        )
    if sku != "Premium" and reg.connected_registries:
        raise ArmError(
            400,
            "SkuDowngradeNotAllowed",
            f"Registry '{reg.name}' has connected registries, which need Premium.",
        )
    reg.sku = sku
    reg.data_endpoint_enabled = data_endpoint
    if isinstance(body.get("tags"), dict):
        reg.tags = {str(k): str(v) for k, v in body["tags"].items()}
    for key, value in props.items():
        if key in READ_ONLY_REGISTRY or key == "dataEndpointEnabled":
            continue
        if key in ("adminUserEnabled", "anonymousPullEnabled", "networkRuleBypassAllowedForTasks"):
            value = parse_bool(value)
        reg.extra[key] = copy.deepcopy(value)


# -- scope maps ---------------------------------------------------------------------------


def _scope_map_repositories(actions: list[str]) -> set[str]:
    repos = set()
    for action in actions:
        parts = action.split("/")
        # repositories/<repo path>/<category>/<verb>: the repository is all but the last two.
        if len(parts) >= 4 and parts[0].lower() == "repositories":
            repos.add("/".join(parts[1:-2]).lower())
    return repos


def _validate_actions(actions: Any) -> list[str]:
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "'actions' must be a list of strings.",
            target="properties.actions",
        )
    for action in actions:
        head = action.split("/", 1)[0].lower()
        if head not in ("repositories", "gateway") or action.count("/") < 2:
            raise ArmError(
                400,
                "InvalidScopeMapAction",
                f"The action '{action}' is invalid: use 'repositories/<repo>/<action>'"
                f" or 'gateway/<connected-registry>/<action>'.",
                target="properties.actions",
            )
    repos = _scope_map_repositories(actions)
    if len(repos) > MAX_SCOPE_MAP_REPOSITORIES:
        raise ArmError(
            400,
            "ScopeMapRepositoryLimitExceeded",
            f"A scope map can reference at most {MAX_SCOPE_MAP_REPOSITORIES} "
            f"repositories; this one references {len(repos)}. Split the "
            f"repositories across several scope maps/tokens.",
            target="properties.actions",
        )
    return list(actions)


def put_scope_map(store: Store, reg: Registry, name: str, body: Any) -> tuple[Child, bool]:
    check_name("scopeMaps", name)
    props = _props(body)
    if "actions" not in props:
        raise ArmError(
            400, "InvalidRequestContent", "'actions' is required.", target="properties.actions"
        )
    actions = _validate_actions(props["actions"])
    existing = reg.scope_maps.get(name.lower())
    new_props: dict[str, Any] = {"actions": actions, "type": "UserDefined"}
    if props.get("description") is not None:
        new_props["description"] = str(props["description"])
    if existing is not None:
        existing.properties = new_props
        return existing, False
    child = Child(name=name, properties=new_props)
    reg.scope_maps[name.lower()] = child
    return child, True


def patch_scope_map(store: Store, reg: Registry, child: Child, body: Any) -> None:
    props = _props(body, required=False)
    if "actions" in props:
        child.properties["actions"] = _validate_actions(props["actions"])
    if "description" in props:
        child.properties["description"] = props["description"]


def render_scope_map(store: Store, reg: Registry, child: Child) -> dict[str, Any]:
    state = store.provisioning_state(child.op_id, child.pending_state)
    props = {k: copy.deepcopy(v) for k, v in child.properties.items() if not k.startswith("_")}
    props.update({"creationDate": iso(child.created), "provisioningState": state})
    return {
        "id": reg.child_id("scopeMaps", child.name),
        "name": child.name,
        "type": COLLECTIONS["scopemaps"][1],
        "properties": props,
    }


# -- tokens -------------------------------------------------------------------------------


def _certificates(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ArmError(400, "InvalidRequestContent", "'credentials.certificates' must be a list.")
    certs = []
    for item in raw:
        if not isinstance(item, dict) or item.get("name") not in ("certificate1", "certificate2"):
            raise ArmError(
                400,
                "InvalidRequestContent",
                "Certificate names must be 'certificate1' or 'certificate2'.",
            )
        cert: dict[str, Any] = {"name": item["name"]}
        pem = item.get("encodedPemCertificate")
        if isinstance(pem, str) and pem:
            try:
                raw_pem = base64.b64decode(pem)
            except ValueError as exc:
                raise ArmError(
                    400, "InvalidCertificate", "encodedPemCertificate is not base64."
                ) from exc
            cert["encodedPemCertificate"] = pem
            cert["thumbprint"] = hashlib.sha1(raw_pem).hexdigest()
            cert["expiry"] = item.get("expiry") or iso(_cert_expiry(raw_pem))
        elif item.get("expiry"):
            cert["expiry"] = item["expiry"]
        certs.append(cert)
    return certs


def _cert_expiry(pem: bytes) -> Any:
    try:
        from cryptography import x509

        return x509.load_pem_x509_certificate(pem).not_valid_after_utc
    except Exception:  # an unparsable certificate just has no expiry
        return None


def _token_status(value: Any) -> str:
    status = str(value).lower()
    if status not in ("enabled", "disabled"):
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"Token status '{value}' is invalid; use 'enabled' or 'disabled'.",
            target="properties.status",
        )
    return status


def put_token(store: Store, reg: Registry, name: str, body: Any) -> tuple[Child, bool]:
    check_name("tokens", name)
    props = _props(body)
    if not props.get("scopeMapId"):
        raise ArmError(
            400,
            "InvalidRequestContent",
            "'scopeMapId' is required.",
            target="properties.scopeMapId",
        )
    scope_map = _child_from_id(
        store, reg, props["scopeMapId"], "scopeMaps", "properties.scopeMapId"
    )
    creds = props.get("credentials") or {}
    new_props: dict[str, Any] = {
        "scopeMapId": reg.child_id("scopeMaps", scope_map.name),
        "status": _token_status(props.get("status", "enabled")),
        "certificates": _certificates(creds.get("certificates")),
    }
    existing = reg.tokens.get(name.lower())
    if existing is not None:
        # A PUT replaces the token: existing passwords are wiped, as real ARM redeploys do.
        existing.properties = new_props
        existing.passwords = {}
        sync_token_status_changed(reg, existing)
        return existing, False
    child = Child(name=name, properties=new_props)
    reg.tokens[name.lower()] = child
    return child, True


def patch_token(store: Store, reg: Registry, child: Child, body: Any) -> None:
    props = _props(body, required=False)
    if "scopeMapId" in props:
        sm = _child_from_id(store, reg, props["scopeMapId"], "scopeMaps", "properties.scopeMapId")
        child.properties["scopeMapId"] = reg.child_id("scopeMaps", sm.name)
    if "status" in props:
        child.properties["status"] = _token_status(props["status"])
        sync_token_status_changed(reg, child)
    creds = props.get("credentials")
    if isinstance(creds, dict):
        if "certificates" in creds:
            child.properties["certificates"] = _certificates(creds["certificates"])
        if "passwords" in creds and creds["passwords"] is not None:
            # The listed slots are the ones to KEEP (how `az acr token credential delete` works)
            keep = set()
            for item in creds["passwords"]:
                slot = str((item or {}).get("name", "")).lower()
                if slot not in ("password1", "password2"):
                    raise ArmError(
                        400,
                        "InvalidRequestContent",
                        "Password names must be 'password1' or 'password2'.",
                        target="properties.credentials.passwords",
                    )
                keep.add(slot)
            child.passwords = {k: v for k, v in child.passwords.items() if k in keep}


def sync_token_status_changed(reg: Registry, token: Child) -> None:
    """LEARN (glossary, access overview): disabling the sync token disables the connected
    registry. It goes Offline with SYNC_TOKEN_INVALID; enabled again, an activated registry's
    runtime reconnects at its next sync (modelled as at once: timing UNCONFIRMED)."""
    for cr in crstate.users_of_sync_token(reg, token):
        if token.properties["status"] == "disabled":
            crstate.take_down(cr, "SYNC_TOKEN_INVALID")
        elif cr.properties["activation"]["status"] == "Active":
            crstate.report_healthy(cr)


def render_token(store: Store, reg: Registry, child: Child) -> dict[str, Any]:
    state = store.provisioning_state(child.op_id, child.pending_state)
    passwords = [child.passwords[k].meta() for k in sorted(child.passwords)]
    props = {
        "creationDate": iso(child.created),
        "provisioningState": state,
        "scopeMapId": child.properties["scopeMapId"],
        "status": child.properties["status"],
        "credentials": {
            "certificates": copy.deepcopy(child.properties.get("certificates", [])),
            "passwords": passwords,
        },
    }
    return {
        "id": reg.child_id("tokens", child.name),
        "name": child.name,
        "type": COLLECTIONS["tokens"][1],
        "properties": props,
    }


def generate_credentials(store: Store, reg: Registry, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not body.get("tokenId"):
        raise ArmError(400, "InvalidRequestContent", "'tokenId' is required.", target="tokenId")
    token = _child_from_id(store, reg, body["tokenId"], "tokens", "tokenId")
    name = body.get("name")
    if name is None:
        slots = ["password1", "password2"]
    elif str(name).lower() in ("password1", "password2"):
        slots = [str(name).lower()]
    else:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"Password name '{name}' is invalid; use 'password1' or 'password2'.",
            target="name",
        )
    expiry = None
    if body.get("expiry"):
        try:
            expiry = parse_iso(str(body["expiry"]))
        except ValueError as exc:
            raise ArmError(
                400, "InvalidRequestContent", "'expiry' is not a date-time.", target="expiry"
            ) from exc
    now = utcnow()
    if expiry is not None and expiry <= now:
        # refused before any slot changes (code UNCONFIRMED; ARM shape)
        raise ArmError(
            400,
            "InvalidParameter",
            f"The password expiry '{body['expiry']}' is in the past; give a future date-time.",
            target="expiry",
        )
    result = []
    for slot in slots:
        pw = Password(name=slot, value=store.new_password(), creation_time=now, expiry=expiry)
        token.passwords[slot] = pw
        item = pw.meta()
        item["value"] = pw.value
        result.append(item)
    return {"username": token.name, "passwords": result}
