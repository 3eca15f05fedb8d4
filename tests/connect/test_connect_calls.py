"""``connect()``: the rest of the call surface, cancellation, and use after close."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from connect_helpers import SESSIONS, BaseExceptionGroup, settle_tasks, value

import mcp_hooks


async def test_list_tools_recovers_after_restart(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        names = {t.name for t in (await s.list_tools()).tools}
        assert {"echo", "incr", "put", "slow", "fail"} <= names
        server.restart(signal.SIGKILL)
        assert {t.name for t in (await s.list_tools()).tools} == names
        assert s.reconnects == 1


async def test_cancelling_a_call_is_not_retried_or_swallowed(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        call = asyncio.create_task(s.call_tool("slow", {"seconds": 30}))
        while server.executions("slow") == 0:
            await asyncio.sleep(0.05)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, 10)
        assert value(await s.call_tool("echo", {"text": "a"})) == "a"
        assert s.reconnects == 0
        assert server.executions("slow") == 1


async def test_cancelling_a_call_waiting_for_a_rebuild(server: Any) -> None:
    tasks = await settle_tasks()
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        server.stop(signal.SIGKILL)
        call = asyncio.create_task(s.call_tool("echo", {"text": "b"}))
        await asyncio.sleep(1.0)  # it is waiting for the server to come back
        assert not call.done()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(call, 10)
        await asyncio.to_thread(server.start)
        assert value(await s.call_tool("echo", {"text": "c"})) == "c"
    assert not await settle_tasks() - tasks


async def test_call_after_close_raises(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(s.call_tool("echo", {"text": "b"}), 10)


async def test_give_up_when_the_server_never_returns(server: Any) -> None:
    async with mcp_hooks.connect(server.url, deadline=3, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        server.stop(signal.SIGKILL)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Exception) as info:
            await s.call_tool("echo", {"text": "b"})
        assert loop.time() - started < 3 + 2
        assert not isinstance(info.value, BaseExceptionGroup), repr(info.value)
