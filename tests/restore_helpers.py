"""Shared by the restore tests of ``connect()`` and of the healing layer: what a rebuilt session sets up
again, and the ``tools/list_changed`` it is told."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from typing import Any

import mcp

from mcp_hooks.testing import FaultServer
from mcp_hooks.testing.controller import EXTRA_TOOL

LIST_CHANGED = "notifications/tools/list_changed"


class Heard:
    """A session's ``message_handler``: the server notifications it was handed, in order."""

    def __init__(self) -> None:
        self.notifications: list[Any] = []
        self.other: list[Any] = []

    async def __call__(self, message: Any) -> None:
        inner = getattr(message, "root", message)  # mcp 1.x: a ServerNotification root model
        if isinstance(getattr(inner, "method", None), str):
            self.notifications.append(inner)
        else:
            self.other.append(message)  # 1.x: server requests; both: transport exceptions

    def methods(self) -> list[str]:
        return [n.method for n in self.notifications]

    def tools_changed(self) -> list[Any]:
        return [n for n in self.notifications if n.method == LIST_CHANGED]


def pid_of(result: Any) -> int:
    """The pid of the server process that answered the kit's ``echo``."""
    assert not getattr(result, "isError", False) and not getattr(result, "is_error", False), result
    text = str(result.content[0].text)
    return int(text.rsplit("(pid ", 1)[1].rstrip(")"))


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def restart_and_call(srv: FaultServer, session: Any) -> int:
    """SIGKILL the server, start a new process on the same port, then make one call on the same session;
    returns the new pid (the call's answer must come from it)."""
    first = srv.pid
    await asyncio.to_thread(srv.restart, signal.SIGKILL)
    second = srv.pid
    assert second is not None and second != first
    assert pid_of(await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 30)) == second
    return second


async def hears_one_tools_change(srv: FaultServer, session: Any, heard: Heard, *, add: bool) -> None:
    """Restart the server with its extra tool added (``add``) or removed, make a call: the session hears
    exactly one ``tools/list_changed``, and listing again shows the tool come or go."""
    before = {t.name for t in (await session.list_tools()).tools}
    assert (EXTRA_TOOL in before) is not add
    srv.offer_extra_tool(add)
    await restart_and_call(srv, session)
    assert await eventually(lambda: bool(heard.tools_changed())), heard.methods()
    await asyncio.sleep(0.3)  # room for a second one to show
    (notification,) = heard.tools_changed()
    assert isinstance(notification, mcp.types.ToolListChangedNotification)
    after = {t.name for t in (await session.list_tools()).tools}
    assert after ^ before == {EXTRA_TOOL}
