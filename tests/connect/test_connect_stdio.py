"""``connect(StdioServerParameters)``: a killed child is respawned; a call lost with it is settled."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import pytest
from connect_helpers import child_pids, settle_tasks, value

import mcp_hooks


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def test_stdio_child_killed_before_a_call(mcp_stdio_fault_server: Any) -> None:
    srv = mcp_stdio_fault_server
    children = child_pids()
    async with mcp_hooks.connect(srv.stdio_server_parameters()) as s:
        first = await s.call_tool("echo", {"text": "a"})
        pid = srv.pid
        assert pid and f"(pid {pid})" in first.content[0].text
        assert pid in child_pids()
        os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < end:
            await asyncio.sleep(0.05)
        result = await asyncio.wait_for(s.call_tool("echo", {"text": "b"}), 30)
        assert value(result) == "b"
        assert f"(pid {pid})" not in result.content[0].text
        assert s.reconnects == 1
    assert not await settle_tasks()
    end = time.monotonic() + 5
    while child_pids() != children and time.monotonic() < end:
        await asyncio.sleep(0.05)
    assert child_pids() == children


async def test_stdio_child_killed_during_incr(mcp_stdio_fault_server: Any) -> None:
    srv = mcp_stdio_fault_server
    async with mcp_hooks.connect(srv.stdio_server_parameters()) as s:
        await s.call_tool("echo", {"text": "a"})
        srv.kill_during_next_call("incr", when="after")
        started = time.monotonic()
        with pytest.raises(mcp_hooks.OutcomeUncertain) as info:
            await s.call_tool("incr", {"key": "stdio"})
        assert time.monotonic() - started < 20
        assert info.value.tool == "incr"
        assert info.value.__cause__ is not None
        assert srv.executions("incr") == 1
        assert srv.counter("stdio") == 1
        assert value(await s.call_tool("echo", {"text": "b"})) == "b"
        assert srv.counter("stdio") == 1


async def test_stdio_child_killed_during_read_only_call(mcp_stdio_fault_server: Any) -> None:
    srv = mcp_stdio_fault_server
    async with mcp_hooks.connect(srv.stdio_server_parameters()) as s:
        await s.call_tool("echo", {"text": "a"})
        srv.kill_during_next_call("echo", when="after")
        result = await asyncio.wait_for(s.call_tool("echo", {"text": "x"}), 30)
        assert value(result) == "x"
        assert srv.executions("echo") == 3


async def test_stdio_own_exception_and_clean_exit(mcp_stdio_fault_server: Any) -> None:
    srv = mcp_stdio_fault_server
    children = child_pids()
    with pytest.raises(ValueError):
        async with mcp_hooks.connect(srv.stdio_server_parameters()) as s:
            await s.call_tool("echo", {"text": "a"})
            raise ValueError("mine")
    assert not await settle_tasks()
    end = time.monotonic() + 5
    while child_pids() != children and time.monotonic() < end:
        await asyncio.sleep(0.05)
    assert child_pids() == children
