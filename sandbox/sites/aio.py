"""One asyncio loop in a daemon thread hosts every simulated node of a process.

A hundred nodes means hundreds of listeners; one loop keeps that to one thread instead of a
thread per server and per connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="sandbox-sites", daemon=True)
        self._users = 0
        self._lock = threading.Lock()
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def on_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = 60) -> T:
        """Run ``coro`` on the loop from another thread and wait for its result."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run called from the loop itself (would deadlock)")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def acquire(self) -> None:
        with self._lock:
            self._users += 1

    def release(self) -> None:
        """Stop the loop once its last user is gone."""
        with self._lock:
            self._users -= 1
            last = self._users <= 0
        if last and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
