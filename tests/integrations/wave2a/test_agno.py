"""agno 3.1 (``agno.tools.mcp.MCPTools``, mcp 2.x only, on a fastmcp 4 ``Client``) against a real MCP
server that restarts or dies mid-call, without and with ``mcp_hooks.instrument("mcp")``.

The tool path is the one agno's agent runs for a model's tool call: the ``Function`` that
``MCPTools.build_tools`` registers has as entrypoint the closure of ``agno.utils.mcp.get_entrypoint_for_tool``,
which looks up the toolkit's session at call time and awaits ``call_tool(name, args,
raise_on_error=False)`` on the fastmcp ``Client``. An ``MCPError`` becomes the ``ToolResult`` text
"MCP tool 'x' failed: <message>. The MCP server may be unreachable ..." that the model reads. The
fastmcp ``Client`` holds an SDK ``ClientSession`` in its session task, so ``instrument("mcp")`` heals
beneath it; agno's own ``refresh_connection`` (off by default) only pings at the start of a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wave2a_support import (
    SETTLE_SECONDS,
    UNCERTAIN,
    RebuildCounter,
    arm_lost_write,
    needs_healing,
    pid_in,
    restart_under,
    wait_until,
)

pytest.importorskip("agno.tools.mcp")

from agno.tools.mcp import MCPTools

from mcp_hooks.testing import FaultServer

pytestmark = [pytest.mark.timeout(120)]
FAILED = "MCP tool '{}' failed: "


@pytest.fixture
def srv(mcp_fault_server_factory: Any) -> FaultServer:
    server: FaultServer = mcp_fault_server_factory(legacy_only=True)
    return server


@contextlib.asynccontextmanager
async def toolkit(url: str) -> AsyncIterator[MCPTools]:
    async with MCPTools(url=url, transport="streamable-http") as tools:
        yield tools


async def call(tools: MCPTools, name: str, **args: Any) -> str:
    """What the agent's tool call returns to the model: the ``ToolResult``'s text."""
    result = tools.functions[name].entrypoint(**args)  # type: ignore[misc]
    if asyncio.iscoroutine(result):
        result = await result
    return str(getattr(result, "content", result))


def ok(answer: str) -> str:
    assert " failed: " not in answer, answer
    return answer


async def test_baseline_every_call_fails_after_a_restart(no_healing: None, srv: FaultServer) -> None:
    async with toolkit(srv.url) as tools:
        ok(await call(tools, "echo", text="before"))
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back: every call still fails, on the dead session
            answer = await asyncio.wait_for(call(tools, "echo", text=f"after {attempt}"), 30)
            assert answer.startswith(FAILED.format("echo") + "Session not found"), answer
    assert srv.executions("echo") == 1


@needs_healing
async def test_next_call_answers_after_a_restart(healing: None, rebuilds: RebuildCounter, srv: FaultServer) -> None:
    async with toolkit(srv.url) as tools:
        first = ok(await call(tools, "echo", text="before"))
        await restart_under(srv)
        started = time.monotonic()
        after = ok(await asyncio.wait_for(call(tools, "echo", text="after"), 30))
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ") and pid_in(after) == srv.pid != pid_in(first)
        assert await tools.is_alive()
    print(f"[agno] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_20_concurrent_calls_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, srv: FaultServer
) -> None:
    async with toolkit(srv.url) as tools:
        ok(await call(tools, "echo", text="warm up"))
        calls = [asyncio.ensure_future(call(tools, "slow", seconds=2.0)) for _ in range(20)]
        await wait_until(lambda: srv.executions("slow") >= 20, "the 20 calls to reach the server")
        await restart_under(srv)
        answers = await asyncio.wait_for(asyncio.gather(*calls), 60)
    assert all(a.startswith("slept 2.0 s (pid ") for a in answers), answers
    assert srv.executions("slow") == 40  # each killed in flight, each replayed once (read-only)
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_a_write_lost_in_flight_runs_once_and_the_model_reads_uncertain(
    healing: None, rebuilds: RebuildCounter, srv: FaultServer
) -> None:
    async with toolkit(srv.url) as tools:
        ok(await call(tools, "echo", text="warm up"))
        back = arm_lost_write(srv)
        answer = await asyncio.wait_for(call(tools, "incr", key="agno-w"), SETTLE_SECONDS)
        back.join(30)
        assert answer.startswith(FAILED.format("incr")) and UNCERTAIN in answer, answer
        assert ok(await asyncio.wait_for(call(tools, "echo", text="next"), 30)).startswith("next (pid ")
    assert srv.executions("incr") == 1
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_a_read_only_call_lost_in_flight_is_replayed(healing: None, srv: FaultServer) -> None:
    async with toolkit(srv.url) as tools:
        ok(await call(tools, "echo", text="warm up"))
        back = arm_lost_write(srv, tool="echo")
        answer = await asyncio.wait_for(call(tools, "echo", text="lost"), SETTLE_SECONDS)
        back.join(30)
        assert ok(answer).startswith("lost (pid ")
    assert srv.executions("echo") == 3


@needs_healing
async def test_a_changed_tool_list_is_seen_when_agno_lists_again(healing: None, srv: FaultServer) -> None:
    """agno builds its functions when it connects and does not act on ``tools/list_changed`` (which the
    healing layer sends after a rebuild that changed the tools); listing again on the healed session
    (``build_tools``, what each agent-managed run does) shows the new tool, with no reconnect."""
    async with toolkit(srv.url) as tools:
        ok(await call(tools, "echo", text="warm up"))
        srv.offer_extra_tool(True)
        await restart_under(srv)
        ok(await asyncio.wait_for(call(tools, "echo", text="healed"), 30))
        assert "extra" not in tools.functions
        await tools.build_tools()
        assert ok(await call(tools, "extra")).startswith("extra (pid ")
