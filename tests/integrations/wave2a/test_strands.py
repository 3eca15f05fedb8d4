"""strands-agents 1.x (``strands.tools.mcp``) against a real MCP server that restarts or dies mid-call,
without and with ``mcp_hooks.instrument("mcp")``.

The tool path is the one a strands ``Agent`` runs for a model's tool use: the tool executor streams
``MCPAgentTool.stream(tool_use, invocation_state)`` (strands/tools/mcp/mcp_agent_tool.py), which awaits
``MCPClient.call_tool_async`` (strands/tools/mcp/mcp_client.py). That runs ``session.call_tool`` on the
client's own background thread and event loop (``_invoke_on_background_thread``), which owns the
transport and the ``ClientSession``; every exception becomes ``MCPToolResult(status="error",
content=[{"text": "Tool execution failed: <message>"}])`` (``_handle_tool_execution_error``), which the
model sees. ``MCPClient.call_tool_sync`` is the same for synchronous callers. The tests call the tool
object as the executor does, and also run ``Agent(tools=[client])`` with ``agent.tool.<name>(...)``,
which goes through the agent's own tool executor (strands ships no fake model, so no model turn is run).

``MCPClient(url=...)`` is the streamable-HTTP transport strands builds itself (on mcp 1.x through the
SDK's deprecated ``streamablehttp_client``, imported when the client starts).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from wave2a_support import (
    SDK_DEPRECATION,
    SETTLE_SECONDS,
    UNCERTAIN,
    RebuildCounter,
    arm_lost_write,
    child_script,
    needs_healing,
    outcome,
    pid_in,
    restart_under,
    run_child,
    still_pending_after,
    wait_until,
)

pytest.importorskip("strands.tools.mcp")

from strands.tools.mcp import MCPClient
from strands.tools.mcp.mcp_agent_tool import MCPAgentTool

from mcp_hooks.testing import FaultServer

pytestmark = [pytest.mark.timeout(120), SDK_DEPRECATION]


@contextlib.asynccontextmanager
async def started_client(url: str) -> AsyncIterator[tuple[MCPClient, dict[str, MCPAgentTool]]]:
    """A started ``MCPClient`` and its agent tools by name (``start``/``stop`` block: run in a thread)."""
    client = MCPClient(url=url)
    await asyncio.to_thread(client.start)
    try:
        tools = {t.tool_name: t for t in await asyncio.to_thread(client.list_tools_sync)}
        yield client, tools
    finally:
        await asyncio.to_thread(client.stop, None, None, None)


async def call(tool: MCPAgentTool, **args: Any) -> dict[str, Any]:
    """What strands' tool executor does with a model's tool use: stream the tool, keep its result event."""
    tool_use = {"toolUseId": f"tooluse_{uuid.uuid4().hex[:8]}", "name": tool.tool_name, "input": args}
    last: Any = None
    async for event in tool.stream(tool_use, {}):  # type: ignore[arg-type]
        last = event
    assert last is not None and "tool_result" in last, last
    result: dict[str, Any] = last["tool_result"]
    return result


def text(result: dict[str, Any]) -> str:
    return "".join(str(block.get("text", "")) for block in result.get("content", []))


def ok_text(result: dict[str, Any]) -> str:
    assert result["status"] == "success", result
    return text(result)


# --- without the healing layer: what users of strands get today ---------------------------------------------


async def test_baseline_every_call_fails_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    async with started_client(srv.url) as (client, tools):
        ok_text(await call(tools["echo"], text="before"))
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back; the client's thread is alive; every call fails
            result = await asyncio.wait_for(call(tools["echo"], text=f"after {attempt}"), 20)
            assert result["status"] == "error", result
            assert text(result) == "Tool execution failed: Session terminated"
        # the direct-call path (``agent.tool.echo(...)``) is no better
        result = await asyncio.to_thread(client.call_tool_sync, "direct", "echo", {"text": "sync"})
        assert result["status"] == "error" and "Session terminated" in text(result), result
    assert srv.executions("echo") == 1


async def test_baseline_a_write_lost_in_flight_is_left_waiting(no_healing: None, mcp_fault_server: FaultServer) -> None:
    """mcp 1.x does not settle a request whose connection died: the tool call waits for the read timeout
    (the SDK's default: 300 s) although the server is back."""
    srv = mcp_fault_server
    async with started_client(srv.url) as (_, tools):
        ok_text(await call(tools["echo"], text="warm up"))
        back = arm_lost_write(srv)
        assert await still_pending_after(call(tools["incr"], key="w"))
        back.join(30)
    assert srv.executions("incr") == 1


@contextlib.contextmanager
def agent_with(url: str) -> Iterator[Any]:
    """A strands ``Agent`` given the ``MCPClient`` as its tool provider (it starts and stops the client);
    ``agent.tool.<name>(...)`` runs a tool through the agent's own tool executor (no model)."""
    from strands import Agent

    agent = Agent(tools=[MCPClient(url=url)], callback_handler=None)
    try:
        yield agent
    finally:
        agent.cleanup()


def test_baseline_agent_tool_call_fails_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    with agent_with(srv.url) as agent:
        assert ok_text(agent.tool.echo(text="before")).startswith("before (pid ")
        srv.restart(signal.SIGKILL)
        result = agent.tool.echo(text="after")
        assert result["status"] == "error" and text(result) == "Tool execution failed: Session terminated", result
    assert srv.executions("echo") == 1


# --- with the healing layer ------------------------------------------------------------------------------


@needs_healing
async def test_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with started_client(srv.url) as (client, tools):
        first = ok_text(await call(tools["echo"], text="before"))
        await restart_under(srv)
        started = time.monotonic()
        after = ok_text(await asyncio.wait_for(call(tools["echo"], text="after"), 20))
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ")
        assert pid_in(after) == srv.pid != pid_in(first)
        # the direct-call path (call_tool_sync, from another thread) uses the same healed session
        direct = await asyncio.to_thread(client.call_tool_sync, "direct", "echo", {"text": "sync"})
        assert ok_text(direct).startswith("sync (pid ")
    print(f"[strands] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_20_calls_in_flight_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with started_client(srv.url) as (_, tools):
        ok_text(await call(tools["echo"], text="warm up"))
        calls = [asyncio.ensure_future(call(tools["slow"], seconds=2.0)) for _ in range(20)]
        await wait_until(lambda: srv.executions("slow") >= 20, "the 20 calls to reach the server")
        await restart_under(srv)
        results = await asyncio.wait_for(asyncio.gather(*calls), 60)
    answers = [ok_text(r) for r in results]
    assert all(a.startswith("slept 2.0 s (pid ") for a in answers), answers
    assert {pid_in(a) for a in answers} == {srv.pid}
    assert srv.executions("slow") == 40  # each killed in flight, each replayed once (read-only)
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_a_write_lost_in_flight_runs_once_and_says_outcome_uncertain(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with started_client(srv.url) as (_, tools):
        ok_text(await call(tools["echo"], text="warm up"))
        back = arm_lost_write(srv)
        started = time.monotonic()
        kind, result = await outcome(call(tools["incr"], key="w"))
        elapsed = time.monotonic() - started
        back.join(30)
        # strands turns the SDK's error into the text the model reads
        assert kind == "ok", result
        assert result["status"] == "error", result
        assert text(result).startswith(f"Tool execution failed: {UNCERTAIN}"), result
        assert srv.executions("incr") == 1
        assert srv.counter("w") == 1
        assert ok_text(await asyncio.wait_for(call(tools["echo"], text="next"), 20)).startswith("next (pid ")
        assert ok_text(await call(tools["incr"], key="w")) == "2"
    assert srv.executions("incr") == 2
    print(f"[strands] the lost write settled as outcome uncertain in {elapsed:.2f} s")
    assert elapsed < SETTLE_SECONDS
    assert rebuilds.count == 1, rebuilds


@needs_healing
def test_agent_tool_calls_after_a_restart_and_a_lost_write(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with agent_with(srv.url) as agent:
        assert ok_text(agent.tool.echo(text="before")).startswith("before (pid ")
        srv.restart(signal.SIGKILL)
        assert ok_text(agent.tool.echo(text="after")).startswith(f"after (pid {srv.pid})")
        back = arm_lost_write(srv)
        result = agent.tool.incr(key="w")
        back.join(30)
        assert result["status"] == "error", result
        assert text(result).startswith(f"Tool execution failed: {UNCERTAIN}"), result
        assert ok_text(agent.tool.incr(key="w")) == "2"
    assert srv.executions("incr") == 2
    assert rebuilds.count == 2, rebuilds  # the restart, then the kill


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    out = run_child(
        child_script(
            ("strands", "strands.tools.mcp"),
            """
            from strands.tools.mcp import MCPClient

            async def call(tool, **args):
                last = None
                async for event in tool.stream({"toolUseId": "t", "name": tool.tool_name, "input": args}, {}):
                    last = event
                return last["tool_result"]

            async def main():
                with FaultServer() as srv:
                    client = MCPClient(url=srv.url)
                    with client:
                        tools = {t.tool_name: t for t in client.list_tools_sync()}
                        await call(tools["echo"], text="before")
                        await asyncio.to_thread(srv.restart, signal.SIGKILL)
                        result = await asyncio.wait_for(call(tools["echo"], text="after"), 20)
                        print("ANSWER", result["status"], result["content"][0]["text"], "SERVER", srv.pid)

            asyncio.run(main())
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    status, rest = line[len("ANSWER ") :].split(" ", 1)
    answer, server_pid = rest.rsplit(" SERVER ", 1)
    assert status == "success", line
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
