"""``connect()``: input validation, start-up failure, the caller's own errors, clean exit, bounds."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from typing import Any

import pytest
from connect_helpers import SESSIONS, BaseExceptionGroup, child_pids, fd_count, settle_tasks, value

import mcp_hooks
from mcp_hooks.connection import MCP_MAJOR


async def test_bad_url_scheme_is_value_error() -> None:
    with pytest.raises(ValueError):
        async with mcp_hooks.connect("ftp://x"):
            pass


async def test_bad_target_type_is_type_error() -> None:
    with pytest.raises(TypeError):
        async with mcp_hooks.connect(123):
            pass


@pytest.mark.skipif(MCP_MAJOR >= 2, reason="mcp 1.x only")
async def test_mode_needs_mcp2() -> None:
    with pytest.raises(ValueError):
        async with mcp_hooks.connect("http://127.0.0.1:1/mcp", mode="legacy"):
            pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_url_raises_within_deadline() -> None:
    url = f"http://127.0.0.1:{_free_port()}/mcp"
    started = time.monotonic()
    with pytest.raises(Exception) as info:
        async with mcp_hooks.connect(url, deadline=3, **SESSIONS):
            pytest.fail("connected to nothing")
    elapsed = time.monotonic() - started
    assert elapsed < 3 + 1.0, elapsed
    err = info.value
    assert not isinstance(err, BaseExceptionGroup), repr(err)
    # the connect error itself (httpx/httpx2 ConnectError, an OSError) or a timeout naming the server
    names = {c.__name__ for c in type(err).__mro__}
    assert names & {"ConnectError", "OSError", "TimeoutError", "ConnectionError"}, repr(err)
    assert not await settle_tasks()


async def test_callers_own_exception_comes_out_as_itself(server: Any) -> None:
    mine = ValueError("mine")
    with pytest.raises(ValueError) as info:
        async with mcp_hooks.connect(server.url, **SESSIONS) as s:
            await s.call_tool("echo", {"text": "a"})
            raise mine
    assert info.value is mine
    assert not await settle_tasks()


async def test_callers_own_exception_after_recovery_comes_out_as_itself(server: Any) -> None:
    with pytest.raises(KeyError):
        async with mcp_hooks.connect(server.url, **SESSIONS) as s:
            await s.call_tool("echo", {"text": "a"})
            server.restart(signal.SIGKILL)
            await s.call_tool("echo", {"text": "b"})
            raise KeyError("k")


async def test_clean_exit_leaves_nothing(server: Any) -> None:
    await asyncio.sleep(0)
    fds, children, tasks = fd_count(), child_pids(), await settle_tasks()
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
    assert not await settle_tasks() - tasks
    assert child_pids() == children
    assert fd_count() <= fds + 2, (fds, fd_count())


async def test_clean_exit_after_restarts_leaves_nothing(server: Any) -> None:
    fds, children, tasks = fd_count(), child_pids(), await settle_tasks()
    async with mcp_hooks.connect(server.url, keepalive=0.5, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        for _ in range(3):
            await asyncio.to_thread(server.restart, signal.SIGKILL)
            await s.call_tool("echo", {"text": "b"})
        assert s.reconnects == 3
        children = child_pids()  # the server's new process
    assert not await settle_tasks() - tasks
    assert child_pids() == children
    assert fd_count() <= fds + 2, (fds, fd_count())


async def test_close_while_server_is_down(server: Any) -> None:
    tasks = await settle_tasks()
    started = time.monotonic()
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        server.stop(signal.SIGKILL)
        await asyncio.sleep(0.5)  # background healing is retrying now
    assert time.monotonic() - started < 15
    assert not await settle_tasks() - tasks


async def test_call_lost_in_flight_settles_within_20s(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        await s.call_tool("echo", {"text": "a"})
        server.delay("incr", 60)
        call = asyncio.create_task(s.call_tool("incr", {"key": "lost"}))
        while server.executions("incr") == 0:
            await asyncio.sleep(0.05)
        server.kill()  # and it stays down
        died = time.monotonic()
        with pytest.raises(mcp_hooks.OutcomeUncertain):
            await asyncio.wait_for(call, 25)
        assert time.monotonic() - died <= 20
        server.clear_controls()
        await asyncio.to_thread(server.start)
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"


async def test_slow_tool_is_not_cut_short(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        result = await s.call_tool("slow", {"seconds": 2.5})
        assert "slept" in result.content[0].text
        assert s.reconnects == 0


async def test_tool_error_passes_through(server: Any) -> None:
    async with mcp_hooks.connect(server.url, **SESSIONS) as s:
        result = await s.call_tool("fail", {"message": "boom"})
        assert getattr(result, "isError", None) or getattr(result, "is_error", None)
        assert s.reconnects == 0
        assert server.executions("fail") == 1
