"""Helpers for the ``connect()`` tests: every test runs a real fault server on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path
from typing import Any

from mcp_hooks.connection import MCP_MAJOR

#: Under mcp 2.x the default mode negotiates the session-less protocol; "legacy" gives sessions.
SESSIONS: dict[str, Any] = {"mode": "legacy"} if MCP_MAJOR >= 2 else {}


def text(result: Any) -> str:
    assert not getattr(result, "isError", False) and not getattr(result, "is_error", False), result
    return result.content[0].text


def value(result: Any) -> str:
    return text(result).split(" (pid", 1)[0]


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def child_pids() -> set[int]:
    """Live (non-zombie) children of this process, from /proc."""
    me = os.getpid()
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == me and state != "Z":
            found.add(int(entry.name))
    return found


def other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


async def settle_tasks(timeout: float = 2.0) -> set[asyncio.Task[Any]]:
    """Tasks other than the current one still alive after a short grace (cleanup scheduled by close)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while other_tasks() and loop.time() < end:
        await asyncio.sleep(0.05)
    return other_tasks()


def kill_pid(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)


if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # pragma: no cover - anyio's backport on 3.10
    from exceptiongroup import BaseExceptionGroup

__all__ = [
    "SESSIONS",
    "BaseExceptionGroup",
    "child_pids",
    "fd_count",
    "kill_pid",
    "other_tasks",
    "settle_tasks",
    "text",
    "value",
]
