"""What the Prefect UI's block form needs from a field beyond its type: a JSON-schema pattern it
refuses at submit, multi-line secret inputs, and the repair of a key whose line breaks a one-line
input ate. Pure: no I/O.

Form titles follow one rule (tests/unit/test_forms.py checks it): sentence case, the first word
capitalised and the rest lower case, except the acronyms and proper names in ``TITLE_WORDS``
("SSH host", "Helm chart version", "Azure subscription ID").
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from pydantic.json_schema import JsonDict

from model import patterns

# Prefect's own logos for the two collections these blocks sit beside (square PNGs that the
# collection registry serves for prefect-kubernetes and prefect-azure).
_LOGOS = "https://raw.githubusercontent.com/PrefectHQ/prefect/420d0d6a78bb6df1fc18bcf188fdad43c1d22ea9/assets/block-logos"
KUBERNETES_LOGO = f"{_LOGOS}/kubernetes.png"
AZURE_LOGO = f"{_LOGOS}/microsoft-azure.png"
CONNECTED_REGISTRY_DOCS = (
    "https://learn.microsoft.com/azure/container-registry/intro-connected-registry"
)

# Words a title keeps in their own case (everything else after the first word is lower case).
TITLE_WORDS = frozenset(
    {
        "ACR",
        "API",
        "ARM",
        "Azure",
        "EdgeSite",
        "CA",
        "CIDR",
        "DNS",
        "Entra",
        "GUID",
        "HTTP",
        "HTTPS",
        "Helm",
        "ID",
        "IP",
        "K3s",
        "Kubernetes",
        "OCI",
        "PEM",
        "ParentRegistry",
        "RKE2",
        "SSH",
        "TLS",
        "TTL",
    }
)

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# A bare https://host[:port] URL (the validator names the rule; the form refuses early).
HTTPS_BASE_URL = re.compile(r"https://[^/?#\s]+/?")
# A Kubernetes quantity as a PVC storage request takes it (binary or decimal suffix).
QUANTITY = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?", re.ASCII)
# An ARM api-version (date, optionally a preview).
API_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:-preview)?", re.ASCII)
# Host name or address without spaces, not an ssh option.
SSH_HOST = re.compile(r"[^-\s]\S*")


def pattern(regex: re.Pattern[str], *, optional_empty: bool = False) -> JsonDict:
    """``json_schema_extra`` putting ``regex`` (anchored) into the form's schema only.

    The form refuses a mismatch at submit (its message is the JSON-schema one, "does not
    match ..."), so the field's description says the rule in words; the pydantic validator
    decides, with a message naming the field and the fix. ``optional_empty``: "" (use the
    default) passes too.
    """
    text = patterns.form_pattern(regex)
    if optional_empty:
        text = f"^(?:{regex.pattern})?$"
    return {"pattern": text}


def multiline_secret(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` for a multi-line secret (a private key, a kubeconfig).

    Prefect's UI renders ``format: password`` as a one-line ``<input type=password>``, which
    turns a pasted key's line breaks into spaces (PrefectHQ/prefect#6949); without a format a
    string field is a resizable textarea. The field stays a ``SecretStr``: Prefect lists it in
    the block schema's ``secret_fields``, stores it encrypted and returns it obfuscated. The
    cost: the textarea shows the text while it is typed or pasted (never after saving).
    """
    for sub in [schema, *schema.get("anyOf", [])]:
        if sub.get("format") == "password":
            del sub["format"]


_PEM = re.compile(
    r"\s*-----BEGIN (?P<label>[A-Z0-9 ]+)-----(?P<body>.*?)-----END (?P=label)-----\s*", re.S
)


def repair_private_key(text: str, field: str = "ssh_private_key") -> str:
    """The key with its line breaks, if a one-line input replaced them by spaces or removed
    them. Any other text is returned as it is: whether it is a key is decided where the key is
    parsed (tasks/site/ssh_keys.py, with the passphrase). Raises ValueError (naming ``field``
    and the fix) for a one-line key that cannot be rebuilt."""
    match = _PEM.fullmatch(text)
    if match is None or "\n" in text.strip():
        return text
    body = match["body"]
    if ":" in body:  # legacy encrypted PEM headers (Proc-Type, DEK-Info) cannot be rebuilt
        raise ValueError(
            f"{field} lost its line breaks and has PEM headers that cannot be rebuilt: paste "
            "the key with its line breaks (or convert it with ssh-keygen -p -o)"
        )
    compact = "".join(body.split())
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"{field} is not a readable key: its body is not base64; paste the whole key file"
        ) from None
    width = 70 if match["label"] == "OPENSSH PRIVATE KEY" else 64
    lines = [compact[i : i + width] for i in range(0, len(compact), width)]
    label = match["label"]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"]) + "\n"


def check_kubeconfig(text: str, field: str = "kubeconfig") -> str:
    """A kubeconfig (YAML or JSON) with clusters, users and contexts; a one-line paste of a
    YAML file (line breaks lost) is refused with the fix instead of failing at the first run."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict) or not data.get("clusters"):
        lost = "\n" not in text.strip()
        why = " (its line breaks were lost)" if lost else ""
        raise ValueError(
            f"{field} is not a kubeconfig with clusters{why}: paste the whole file, e.g. "
            "/etc/rancher/k3s/k3s.yaml with its server address changed to one you can reach"
        )
    return text


def _portable(regex: re.Pattern[str]) -> str:
    """The pattern without Python-only named groups, which an ECMA-262 (browser) regex
    refuses; JSON-schema patterns are ECMA-262."""
    return re.sub(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>", "(?:", regex.pattern)


# Flow-parameter forms (the validators in model.cron / model.durations decide, with ranges).
CRON_FORM: JsonDict = {
    "pattern": rf"^\s*{patterns.CRON_FIELD.pattern}(?:\s+{patterns.CRON_FIELD.pattern}){{4}}\s*$"
}
DURATION_FORM: JsonDict = {
    "pattern": rf"^\s*(?:{_portable(patterns.ISO_DURATION)}|{_portable(patterns.TIMESPAN)})\s*$"
}
