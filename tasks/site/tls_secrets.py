"""The site CA and server certificate Secrets in the release's namespace (Kubernetes I/O).

The CA key never leaves the cluster except into this process's memory (a SecretStr), and the
server key only into its kubernetes.io/tls Secret. A Secret of one of acr-edge's names without
its ``managed-by`` label belongs to someone else: it is refused and left alone, never
overwritten. Errors carry status and reason only, never a request or response body (which
would hold the keys).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr

from model import tls
from model.errors import PermanentError, TransientError, classify
from model.plan import Change, converge
from model.result import StepResult
from tasks.site import site_ca
from tasks.site.connection import SiteConnection, kube_call
from tasks.site.site_ca import CaMaterial, CertFact, ServerCert

OPAQUE = "Opaque"
TLS_TYPE = "kubernetes.io/tls"
SECRET_STEP = "server-secret"
ANNOTATION_NOT_AFTER = "acr-edge.io/not-after"
ANNOTATION_SANS = "acr-edge.io/sans"
ANNOTATION_FINGERPRINT = "acr-edge.io/fingerprint"


def _where(conn: SiteConnection, name: str) -> str:
    return f"{conn.resource}: secret {conn.site.namespace}/{name}"


def _read(conn: SiteConnection, name: str) -> k8s.V1Secret | None:
    where = _where(conn, name)
    namespace = conn.site.namespace
    try:
        return kube_call(lambda: conn.core.read_namespaced_secret(name, namespace), where)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise classify(exc, resource=where) from None


def _is_ours(secret: k8s.V1Secret) -> bool:
    labels = (secret.metadata.labels if secret.metadata else None) or {}
    return all(labels.get(k) == v for k, v in tls.MANAGED_BY.items())


def _refuse_foreign(conn: SiteConnection, name: str) -> PermanentError:
    label = ",".join(f"{k}={v}" for k, v in tls.MANAGED_BY.items())
    return PermanentError(
        f"secret {conn.site.namespace}/{name} exists but was not made by acr-edge "
        f"(no label {label}); it is left as it is",
        resource=_where(conn, name),
        fix="delete or rename that Secret if it is not needed, or give the site block another "
        "release_name",
    )


def _field(secret: k8s.V1Secret, key: str) -> str | None:
    raw = (secret.data or {}).get(key)
    if not raw:
        return None
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, ValueError):
        return None


def _data(values: dict[str, str]) -> dict[str, bytes | str]:
    return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


def _create(conn: SiteConnection, body: k8s.V1Secret, where: str) -> None:
    try:
        conn.core.create_namespaced_secret(conn.site.namespace, body)
    except ApiException as exc:
        # 409: written meanwhile by another run; converge reads and plans again.
        if exc.status == 409:
            raise TransientError(f"{where}: created concurrently") from None
        raise classify(exc, resource=where) from None


# -- the site CA ---------------------------------------------------------------------------------


def read_ca(conn: SiteConnection) -> CaMaterial | None:
    """The site CA from its Opaque Secret (``ca.crt``, ``ca.key``); None when there is none.
    Refuses a foreign Secret of that name and one of ours that lost a field."""
    name = tls.ca_secret_name(conn.site.release_name)
    secret = _read(conn, name)
    if secret is None:
        return None
    if not _is_ours(secret):
        raise _refuse_foreign(conn, name)
    cert, key = _field(secret, "ca.crt"), _field(secret, "ca.key")
    del secret
    if not cert or not key:
        raise PermanentError(
            "the site CA Secret lacks ca.crt or ca.key",
            resource=_where(conn, name),
            fix=f"delete secret {conn.site.namespace}/{name} and re-run provision-site: a new CA "
            "is made and the server certificate and every node's CA file follow it",
        )
    return CaMaterial(cert_pem=cert, key_pem=SecretStr(key))


def _ca_fact(ca: CaMaterial | None, resource: str) -> CertFact | None:
    if ca is None:
        return None
    fact = site_ca.cert_fact(ca.cert_pem, ca.cert_pem, ca.key_pem, resource=resource)
    if not site_ca.is_ca_cert(ca.cert_pem, resource=resource):
        # Seen by plan_ca as "not self-signed": refused with the same fix.
        return CertFact(fact.sans, fact.not_before, fact.not_after, False, False, fact.fingerprint)
    return fact


def ensure_ca(
    conn: SiteConnection,
    cr_name: str,
    now: datetime,
    *,
    dry_run: bool,
    ca_days: int = tls.CA_DAYS,
    server_days: int = tls.SERVER_CERT_DAYS,
) -> tuple[StepResult, CaMaterial | None]:
    """The site CA: created when missing, kept while valid; refused (PermanentError) when it
    expires within a server certificate's lifetime. Returns the CA (None in a dry run that
    would create it)."""
    namespace, name = conn.site.namespace, tls.ca_secret_name(conn.site.release_name)
    where = _where(conn, name)
    held: dict[str, CaMaterial | None] = {"ca": None}

    def read() -> CertFact | None:
        held["ca"] = read_ca(conn)
        return _ca_fact(held["ca"], where)

    def plan(fact: CertFact | None) -> Change:
        return site_ca.plan_ca(
            fact,
            now,
            resource=where,
            secret=f"{namespace}/{name}",
            ca_days=ca_days,
            server_days=server_days,
        )

    def apply(change: Change) -> StepResult:
        ca = site_ca.new_ca(cr_name, now, ca_days)
        body = k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name=name, namespace=namespace, labels=dict(tls.MANAGED_BY)),
            type=OPAQUE,
            data=_data({"ca.crt": ca.cert_pem, "ca.key": ca.key_pem.get_secret_value()}),
        )
        _create(conn, body, where)
        del body
        held["ca"] = ca
        fact = site_ca.cert_fact(ca.cert_pem, ca.cert_pem, resource=where)
        return StepResult.from_change(change, writes=1, fingerprint=fact.fingerprint)

    result = converge(read, plan, apply, dry_run=dry_run)
    return result, held["ca"]


# -- server certificate slots --------------------------------------------------------------------


def read_server_slots(
    conn: SiteConnection, ca: CaMaterial | None = None
) -> dict[str, CertFact | None]:
    """Slot ``a``/``b`` -> what its Secret's certificate says, checked against the site CA
    (``ca``, else read) and its own key; None where the slot's Secret is absent."""
    site = ca if ca is not None else read_ca(conn)
    ca_pem = site.cert_pem if site is not None else None
    return {slot: _slot_state(conn, slot, ca_pem).fact for slot in tls.SERVER_SLOTS}


@dataclass(frozen=True)
class _SlotState:
    exists: bool = False
    type: str = ""
    fact: CertFact | None = None
    # What the Secret holds, to tell "the same certificate again" from a change; the key only
    # as a SecretStr.
    cert_pem: str = ""
    ca_pem: str = ""
    key_pem: SecretStr | None = None


def _slot_state(
    conn: SiteConnection, slot: str, ca_pem: str | None, *, strict: bool = True
) -> _SlotState:
    """The slot's Secret. An unreadable certificate in it is refused when ``strict`` (a read
    for status or planning), else seen as "something else" for the write to replace."""
    name = tls.server_secret_name(conn.site.release_name, slot)
    secret = _read(conn, name)
    if secret is None:
        return _SlotState()
    if not _is_ours(secret):
        raise _refuse_foreign(conn, name)
    cert, key, ca = _field(secret, "tls.crt"), _field(secret, "tls.key"), _field(secret, "ca.crt")
    kind = str(secret.type or "")
    del secret
    key_pem = SecretStr(key) if key else None
    del key
    if not cert:
        return _SlotState(True, kind, None, "", ca or "", key_pem)
    try:
        fact = site_ca.cert_fact(cert, ca_pem, key_pem, resource=_where(conn, name))
    except PermanentError:
        if strict:
            raise
        fact = None
    return _SlotState(True, kind, fact, cert, ca or "", key_pem)


def _annotations(fact: CertFact) -> dict[str, str]:
    return {
        ANNOTATION_NOT_AFTER: fact.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        ANNOTATION_SANS: ",".join(fact.sans),
        ANNOTATION_FINGERPRINT: fact.fingerprint,
    }


def _plan_write(
    state: _SlotState, cert: ServerCert, ca_cert_pem: str, fact: CertFact, resource: str
) -> Change:
    shown = {"fingerprint": fact.fingerprint, "sans": ", ".join(fact.sans)}
    same = (
        state.exists
        and state.type == TLS_TYPE
        and state.cert_pem == cert.cert_pem
        and state.ca_pem == ca_cert_pem
        and state.key_pem is not None
        and state.key_pem.get_secret_value() == cert.key_pem.get_secret_value()
    )
    if same:
        return Change.none(
            SECRET_STEP,
            resource,
            f"already holds this server certificate (sha256 {fact.fingerprint[:16]})",
            **shown,
        )
    if not state.exists:
        mode, reason = "create", "no Secret in this slot yet"
    elif state.type != TLS_TYPE:  # the type of a Secret is immutable
        mode, reason = "recreate", f"holds a {state.type or 'typeless'} Secret, not {TLS_TYPE}"
    else:
        mode, reason = "replace", "holds another certificate"
    until = fact.not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    return Change(
        SECRET_STEP,
        resource,
        "create" if mode == "create" else "update",
        f"{reason}: writing the server certificate for {', '.join(fact.sans)} (valid until "
        f"{until})",
        payload=mode,
        shown=shown,
    )


def write_server_secret(
    conn: SiteConnection, slot: str, cert: ServerCert, ca_cert_pem: str
) -> StepResult:
    """Write ``cert`` (and the CA certificate) into slot ``slot``'s kubernetes.io/tls Secret:
    created, or replaced when it is ours and holds something else; the same certificate
    again writes nothing. Refuses a certificate the CA did not issue or whose key is not its."""
    namespace = conn.site.namespace
    name = tls.server_secret_name(conn.site.release_name, slot)
    where = _where(conn, name)
    fact = site_ca.cert_fact(cert.cert_pem, ca_cert_pem, cert.key_pem, resource=where)
    if not fact.issued_by_ca or not fact.key_matches:
        raise PermanentError(
            "the server certificate is not issued by the site CA or its key is not its own; "
            "nothing was written",
            resource=where,
            fix="issue it with site_ca.issue_server_cert from the CA read_ca returns",
        )

    def apply(change: Change) -> StepResult:
        body = k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(
                name=name,
                namespace=namespace,
                labels=dict(tls.MANAGED_BY),
                annotations=_annotations(fact),
            ),
            type=TLS_TYPE,
            data=_data(
                {
                    "tls.crt": cert.cert_pem,
                    "tls.key": cert.key_pem.get_secret_value(),
                    "ca.crt": ca_cert_pem,
                }
            ),
        )
        mode: str = change.payload
        writes = 0
        try:
            if mode == "recreate":
                conn.core.delete_namespaced_secret(name, namespace)
                writes += 1
            if mode in ("create", "recreate"):
                conn.core.create_namespaced_secret(namespace, body)
            else:
                conn.core.replace_namespaced_secret(name, namespace, body)
            writes += 1
        except ApiException as exc:
            if exc.status == 409:
                raise TransientError(f"{where}: changed concurrently") from None
            raise classify(exc, resource=where) from None
        finally:
            del body
        return StepResult.from_change(change, writes=writes, slot=slot)

    return converge(
        lambda: _slot_state(conn, slot, ca_cert_pem, strict=False),
        lambda state: _plan_write(state, cert, ca_cert_pem, fact, where),
        apply,
    )


def delete_server_secret(conn: SiteConnection, slot: str, *, dry_run: bool = False) -> StepResult:
    """Delete slot ``slot``'s Secret if it is ours; absent is a no-op that says so."""
    namespace = conn.site.namespace
    name = tls.server_secret_name(conn.site.release_name, slot)
    where = _where(conn, name)

    def read() -> bool:
        secret = _read(conn, name)
        if secret is not None and not _is_ours(secret):
            raise _refuse_foreign(conn, name)
        return secret is not None

    def plan(exists: bool) -> Change:
        if not exists:
            return Change.none(
                SECRET_STEP, where, f"slot {slot} holds no Secret: nothing to delete"
            )
        return Change(SECRET_STEP, where, "delete", f"slot {slot} is no longer in use")

    def apply(change: Change) -> StepResult:
        try:
            kube_call(lambda: conn.core.delete_namespaced_secret(name, namespace), where)
        except ApiException as exc:
            if exc.status != 404:
                raise classify(exc, resource=where) from None
            return StepResult.from_change(change, writes=0, note="already gone")
        return StepResult.from_change(change, writes=1, slot=slot)

    return converge(read, plan, apply, dry_run=dry_run)
