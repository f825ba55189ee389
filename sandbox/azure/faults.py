"""Fault injection (rate-based with a seeded RNG, or scripted sequences) and the request log."""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from sandbox.azure.http import Response
from sandbox.azure.rule_list import RuleList

KINDS = ("429", "500", "503", "drop", "ok")


@dataclass
class FaultRule:
    """Matches requests by method/path regex; fires by ``rate`` or by a scripted ``sequence``.

    ``sequence`` entries are consumed one per matching request ("ok" lets one through); once
    exhausted the rule is inert. With ``rate``, each match fires with that probability, at most
    ``times`` times (None = unlimited).
    """

    kind: str = "503"
    method: str = ".*"
    path: str = ".*"
    rate: float | None = None
    times: int | None = 1
    sequence: list[str] | None = None
    retry_after: float = 0
    fired: int = 0

    def __post_init__(self) -> None:
        for kind in [self.kind, *(self.sequence or [])]:
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; use one of {KINDS}")
        self._method = re.compile(self.method, re.IGNORECASE)
        self._path = re.compile(self.path, re.IGNORECASE)

    def matches(self, method: str, path: str) -> bool:
        return bool(self._method.fullmatch(method) and self._path.search(path))

    def next_kind(self, rng: random.Random) -> str | None:
        if self.sequence is not None:
            if not self.sequence:
                return None
            kind = self.sequence.pop(0)
            if kind != "ok":
                self.fired += 1
            return None if kind == "ok" else kind
        if self.times is not None and self.fired >= self.times:
            return None
        if self.rate is not None and rng.random() >= self.rate:
            return None
        self.fired += 1
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "method": self.method,
            "path": self.path,
            "rate": self.rate,
            "times": self.times,
            "sequence": self.sequence,
            "retry_after": self.retry_after,
            "fired": self.fired,
        }


def fault_response(kind: str, retry_after: float) -> Response:
    if kind == "drop":
        return Response(status=0, drop=True)
    status = int(kind)
    codes = {429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}
    headers = {"Retry-After": str(int(retry_after))} if status in (429, 503) else {}
    return Response.json(
        status,
        {"error": {"code": codes[status], "message": f"Injected fault: HTTP {status}."}},
        headers,
    )


@dataclass
class FaultTable(RuleList[FaultRule]):
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        self._rng = random.Random(self.seed)

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def pick(self, method: str, path: str) -> Response | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    kind = rule.next_kind(self._rng)
                    if kind is not None:
                        return fault_response(kind, rule.retry_after)
        return None


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: str
    status: int
    write: bool
    kind: str  # entra | arm | dataplane | other
    lro_poll: bool
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
