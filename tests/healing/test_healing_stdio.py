"""A raw SDK ``ClientSession`` over stdio, healed beneath itself: the child is respawned when it dies,
a call lost with it is settled, and a child that keeps dying is given up with one clear error."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import mcp
import pytest
from healing_helpers import Events, alive, error_text, outcome, raw_stdio_session, text, wait_for

pytestmark = [pytest.mark.usefixtures("healing"), pytest.mark.timeout(90)]


async def test_child_killed_before_a_call_is_respawned(mcp_stdio_fault_server: Any, events: Events) -> None:
    srv = mcp_stdio_fault_server
    async with raw_stdio_session(srv.stdio_server_parameters()) as session:
        first = text(await session.call_tool("echo", {"text": "a"}))
        pid = srv.pid
        assert pid and f"(pid {pid})" in first
        os.kill(pid, signal.SIGKILL)
        assert await wait_for(lambda: not alive(pid), 10)
        result = text(await asyncio.wait_for(session.call_tool("echo", {"text": "b"}), 20))
        assert result.startswith("b (pid ") and f"(pid {pid})" not in result
    assert len(events.reconnects) == 1
    assert not alive(srv.pid or 0)


async def test_write_lost_with_the_child_runs_once(mcp_stdio_fault_server: Any, events: Events) -> None:
    srv = mcp_stdio_fault_server
    async with raw_stdio_session(srv.stdio_server_parameters()) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        srv.kill_during_next_call("incr")
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("incr", {"key": "stdio-write"}), 20)
        assert error_text(caught.value).startswith("outcome uncertain")
        assert srv.executions("incr") == 1
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "next"}), 20)).startswith("next")
    assert srv.executions("incr") == 1


async def test_read_only_call_lost_with_the_child_is_replayed(mcp_stdio_fault_server: Any, events: Events) -> None:
    srv = mcp_stdio_fault_server
    async with raw_stdio_session(srv.stdio_server_parameters()) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        srv.kill_during_next_call("echo")
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "lost"}), 20)).startswith("lost")
    assert srv.executions("echo") == 3
    assert [c.tool for c in events.recovered] == ["echo"]


_ONCE = textwrap.dedent(
    """
    import os, sys
    marker = sys.argv[1]
    if os.path.exists(marker):
        sys.exit(3)  # every later start dies at once: a crash loop
    open(marker, "w").close()
    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
    """
)


async def test_a_crash_loop_is_given_up_with_one_clear_error(
    mcp_stdio_fault_server: Any, events: Events, tmp_path: Path
) -> None:
    srv = mcp_stdio_fault_server
    real = srv.stdio_server_parameters()
    script = tmp_path / "once.py"
    script.write_text(_ONCE)
    params = mcp.StdioServerParameters(
        command=sys.executable, args=[str(script), str(tmp_path / "started"), *real.args], env=real.env
    )
    assert real.command == sys.executable
    async with raw_stdio_session(params) as session:
        text(await session.call_tool("echo", {"text": "a"}))
        os.kill(srv.pid, signal.SIGKILL)
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("echo", {"text": "b"}), 30)
        message = error_text(caught.value)
        assert "exited" in message and "not restarted again" in message and str(script) in message
        # later calls fail at once with the same error, no respawn
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Exception) as again:
            await asyncio.wait_for(session.call_tool("echo", {"text": "c"}), 5)
        assert error_text(again.value) == message
        assert outcome(again.value) == ("not-run", "crash-loop")
        assert outcome(caught.value) is not None and outcome(caught.value)[1] == "crash-loop"  # type: ignore[index]
        assert loop.time() - started < 2
