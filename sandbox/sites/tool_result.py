"""What a simulated command-line tool answers: stdout, stderr and an exit status."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ToolResult:
    stdout: str = ""
    stderr: str = ""
    exit: int = 0

    @classmethod
    def fail(cls, message: str, code: int = 1) -> ToolResult:
        return cls(stderr=message if message.endswith("\n") else message + "\n", exit=code)
