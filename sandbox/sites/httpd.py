"""A small HTTP/1.1 server on asyncio streams (keep-alive, Content-Length bodies, optional TLS).

The Kubernetes API of every node and the tools' control channel run on it, so a hundred nodes
share one thread and a K3s restart can close a listener and its open connections at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    peer_cert: dict[str, Any] | None = None

    def param(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, **headers: str) -> Response:
        return cls(status, json.dumps(obj).encode(), headers=dict(headers))


Handler = Callable[[Request], Awaitable[Response]]
MAX_BODY = 16 * 1024 * 1024


class HttpServer:
    def __init__(
        self,
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._handler = handler
        self._ssl = ssl_context
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start(self) -> int:
        """Listen (again on the same port after a stop, as a restarted daemon does)."""
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, ssl=self._ssl, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Close the listener and drop every open connection (clients see a reset)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                request = await self._read_request(reader, writer)
                if request is None:
                    return
                try:
                    response = await self._handler(request)
                except Exception as exc:
                    response = Response.json(
                        500, {"kind": "Status", "status": "Failure", "message": repr(exc)}
                    )
                keep = request.headers.get("connection", "").lower() != "close"
                await self._write(writer, response, keep)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            return
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Request | None:
        line = await reader.readline()
        if not line:
            return None
        parts = line.decode("latin-1").strip().split()
        if len(parts) != 3:
            return None
        method, target, _ = parts
        headers: dict[str, str] = {}
        while True:
            raw = await reader.readline()
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            return None
        body = await reader.readexactly(length) if length else b""
        split = urlsplit(target)
        peer = writer.get_extra_info("peercert")
        return Request(
            method=method.upper(),
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=headers,
            body=body,
            peer_cert=peer or None,
        )

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, response: Response, keep: bool) -> None:
        try:
            phrase = http.HTTPStatus(response.status).phrase
        except ValueError:
            phrase = "Unknown"
        head = [f"HTTP/1.1 {response.status} {phrase}"]
        headers = {
            "Content-Type": response.content_type,
            "Content-Length": str(len(response.body)),
            "Connection": "keep-alive" if keep else "close",
            **response.headers,
        }
        head += [f"{k}: {v}" for k, v in headers.items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + response.body)
        await writer.drain()
