"""How long-running operations end: rules that make matching writes end ``Failed`` or ``Canceled``.

ARM's async contract (Azure-AsyncOperation) reports a terminal status of ``Succeeded``,
``Failed`` or ``Canceled`` with an ``error`` object; a Location-style operation that failed
answers its poll with the error status code and an ARM error body. A rule turns the next
matching write (method and path regexes) into such an operation, even a write ACR answers
synchronously: that write then answers 201 + Azure-AsyncOperation (or 202 + Location) so the
failure can be reported the way ARM reports failed operations.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sandbox.azure.rule_list import RuleList

OUTCOMES = ("Failed", "Canceled")
_ASCII_IGNORECASE = re.IGNORECASE | re.ASCII


@dataclass
class LroOutcome:
    """Matching writes (``times`` of them, None = all) end with ``status`` and this error."""

    status: str = "Failed"
    method: str = "PUT|PATCH|POST|DELETE"
    path: str = ".*"
    code: str = ""
    message: str = ""
    http_status: int = 500  # what a failed Location-style poll answers
    times: int | None = 1
    fired: int = 0

    def __post_init__(self) -> None:
        if self.status not in OUTCOMES:
            raise ValueError(f"unknown LRO outcome {self.status!r}; use one of {OUTCOMES}")
        if not 400 <= int(self.http_status) <= 599:
            raise ValueError("http_status must be a 4xx or 5xx status")
        self.http_status = int(self.http_status)
        if not self.code:
            self.code = "OperationCanceled" if self.status == "Canceled" else "InternalServerError"
        if not self.message:
            self.message = (
                "The operation was canceled."
                if self.status == "Canceled"
                else "The operation failed because of an internal error. Please retry later."
            )
        self._method = re.compile(self.method, _ASCII_IGNORECASE)
        self._path = re.compile(self.path, _ASCII_IGNORECASE)

    def matches(self, method: str, path: str) -> bool:
        live = self.times is None or self.fired < self.times
        return live and bool(self._method.fullmatch(method) and self._path.search(path))

    def error(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message}

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "method": self.method,
            "path": self.path,
            "code": self.code,
            "message": self.message,
            "http_status": self.http_status,
            "times": self.times,
            "fired": self.fired,
        }


@dataclass
class LroOutcomes(RuleList[LroOutcome]):
    def peek(self, method: str, path: str) -> LroOutcome | None:
        with self._lock:
            return next((r for r in self.rules if r.matches(method, path)), None)

    def take(self, method: str, path: str) -> LroOutcome | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.fired += 1
                    return rule
        return None
