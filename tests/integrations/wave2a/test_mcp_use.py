"""mcp-use 1.x (mcp 1.x only) against a real MCP server that restarts or dies mid-call, without and with
``mcp_hooks.instrument("mcp")``.

Tool paths:

* ``agent``: what ``MCPAgent`` gives its LangChain agent: ``LangChainAdapter.create_tools(client)``
  (mcp_use/agents/adapters/langchain_adapter.py) builds one ``McpToLangChainAdapter`` tool per MCP tool,
  whose ``_arun`` awaits ``BaseConnector.call_tool`` (mcp_use/client/connectors/base.py) and turns every
  exception into ``format_error(e)``, a dict ``{"error": type, "details": message, ...}`` that the model
  reads (``handle_tool_error=True``). The agent's ``ToolNode`` calls ``await tool.ainvoke(tool_call)``.
* ``session``: ``client.get_session("kit").call_tool(...)``: ``MCPSession.call_tool`` ->
  ``BaseConnector.call_tool`` -> ``ClientSession.call_tool``; errors raise.
* ``MCPAgent.run`` itself, over a scripted LangChain chat model (no LLM), for the whole agent loop
  (its ``tool_error_handler`` middleware included).

mcp-use has its own reconnect: ``BaseConnector.auto_reconnect`` (always True) makes ``_ensure_connected``
call ``connect()`` again *before* a call when ``is_connected`` is false (its connection task ended or its
streams closed). A lost session (404) never makes it false, so it never fires on a restart; and it never
sends a call again after it failed, so it cannot run a write twice by itself.

The streamable-HTTP transport runs in mcp-use's own task (``StreamableHttpConnectionManager``, which
passes its own ``httpx.AsyncClient`` as ``http_client=``); the ``ClientSession`` is entered in the caller's task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wave2a_support import (
    SETTLE_SECONDS,
    UNCERTAIN,
    RebuildCounter,
    arm_lost_write,
    child_script,
    error_words,
    needs_healing,
    outcome,
    pid_in,
    restart_under,
    run_child,
    scripted_chat_model,
    still_pending_after,
    wait_until,
)

with warnings.catch_warnings():  # mcp_use/__init__.py imports its own deprecated modules
    warnings.simplefilter("ignore", DeprecationWarning)
    pytest.importorskip("mcp_use")
    from mcp_use import MCPAgent, MCPClient
    from mcp_use.agents.adapters.langchain_adapter import LangChainAdapter

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from mcp.shared.exceptions import McpError

from mcp_hooks.testing import FaultServer

pytestmark = [
    pytest.mark.timeout(120),
    # LangChainAdapter.create_tools reads the connector's deprecated ``tools`` property itself
    pytest.mark.filterwarnings("ignore:The 'tools' property is deprecated:DeprecationWarning"),
    # mcp-use's connect() leaves anyio memory streams unclosed (seen without the healing layer too)
    pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"),
]


class McpUse:
    """An ``MCPClient`` with one server, its session (the connector) and the agent's tools."""

    def __init__(self, client: MCPClient, tools: dict[str, BaseTool]) -> None:
        self.client = client
        self.tools = tools

    @property
    def connector(self) -> Any:
        return self.client.get_session("kit").connector

    async def agent_call(self, name: str, **args: Any) -> ToolMessage:
        """What the agent's ``ToolNode`` does with a model's tool call: ``await tool.ainvoke(tool_call)``."""
        tool = self.tools[name]
        call = {"name": name, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "tool_call"}
        message = await tool.ainvoke(call)
        assert isinstance(message, ToolMessage), message
        return message

    async def session_call(self, name: str, **args: Any) -> Any:
        return await self.client.get_session("kit").call_tool(name, args)

    async def call_text(self, path: str, name: str, **args: Any) -> str:
        """The answer's text by either path; an error (a ``format_error`` dict, or raised) is raised as
        ``ToolFailed`` with its type and message."""
        if path == "agent":
            message = await self.agent_call(name, **args)
            content = message.content
            assert isinstance(content, str), content
            if content.startswith("{"):
                failure = json.loads(content)
                raise ToolFailed(failure["error"], failure["details"])
            return content
        result = await self.session_call(name, **args)
        assert not result.isError, result
        return str(result.content[0].text)


class ToolFailed(Exception):
    def __init__(self, kind: str, details: str) -> None:
        super().__init__(f"{kind}: {details}")
        self.kind = kind
        self.details = details


@contextlib.asynccontextmanager
async def mcp_use_client(url: str) -> AsyncIterator[McpUse]:
    client = MCPClient({"mcpServers": {"kit": {"url": url}}})
    try:
        tools = await LangChainAdapter().create_tools(client)  # opens the session, as MCPAgent.initialize does
        yield McpUse(client, {t.name: t for t in tools})
    finally:
        await client.close_all_sessions()


PATHS = ("agent", "session")


@contextlib.asynccontextmanager
async def mcp_agent(url: str) -> AsyncIterator[Any]:
    """An initialized ``MCPAgent`` over a scripted chat model (no LLM): ``await run(tool, **args)`` makes
    the model ask for that tool call, and the run's final answer is the tool message the model read."""
    model = scripted_chat_model()
    client = MCPClient({"mcpServers": {"kit": {"url": url}}})
    agent = MCPAgent(llm=model, client=client, memory_enabled=False)
    await agent.initialize()

    async def run(name: str, **args: Any) -> str:
        model.queue.append((name, args))
        answer = await asyncio.wait_for(agent.run("go", manage_connector=False), SETTLE_SECONDS)
        assert isinstance(answer, str), answer
        return answer

    try:
        yield run
    finally:
        await agent.close()


# --- without the healing layer: what users of mcp-use get today ---------------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_baseline_every_call_fails_after_a_restart_and_auto_reconnect_never_fires(
    no_healing: None, mcp_fault_server: FaultServer, path: str
) -> None:
    srv = mcp_fault_server
    async with mcp_use_client(srv.url) as mu:
        await mu.call_text(path, "echo", text="before")
        session_before = mu.connector.client_session
        assert mu.connector.auto_reconnect
        srv.restart(signal.SIGKILL)
        for attempt in range(2):
            kind, value = await outcome(mu.call_text(path, "echo", text=f"after {attempt}"))
            assert kind == "error", value
            if path == "agent":  # what the model reads
                assert isinstance(value, ToolFailed), repr(value)
                assert (value.kind, value.details) == ("McpError", "Session terminated")
            else:
                assert isinstance(value, McpError) and "Session terminated" in str(value), repr(value)
        # the connector still believes it is connected, so its auto_reconnect never ran
        assert mu.connector.is_connected
        assert mu.connector.client_session is session_before
    assert srv.executions("echo") == 1


async def test_baseline_a_write_lost_in_flight_is_left_waiting(no_healing: None, mcp_fault_server: FaultServer) -> None:
    """mcp 1.x does not settle a request whose connection died: the call waits for the read timeout
    (mcp-use's ``sse_read_timeout``: 300 s) although the server is back."""
    srv = mcp_fault_server
    async with mcp_use_client(srv.url) as mu:
        await mu.call_text("agent", "echo", text="warm up")
        back = arm_lost_write(srv)
        assert await still_pending_after(mu.agent_call("incr", key="w"))
        back.join(30)
    assert srv.executions("incr") == 1


async def test_baseline_mcp_agent_run_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    """``MCPAgent.run`` with a scripted model: after a restart the model reads mcp-use's error dict."""
    srv = mcp_fault_server
    async with mcp_agent(srv.url) as run:
        assert (await run("echo", text="before")).startswith("before (pid ")
        srv.restart(signal.SIGKILL)
        failure = json.loads(await run("echo", text="after"))
        assert (failure["error"], failure["details"]) == ("McpError", "Session terminated")
    assert srv.executions("echo") == 1


# --- with the healing layer ------------------------------------------------------------------------------


@needs_healing
@pytest.mark.parametrize("path", PATHS)
async def test_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer, path: str
) -> None:
    srv = mcp_fault_server
    async with mcp_use_client(srv.url) as mu:
        first = await mu.call_text(path, "echo", text="before")
        session_before = mu.connector.client_session
        await restart_under(srv)
        started = time.monotonic()
        after = await asyncio.wait_for(mu.call_text(path, "echo", text="after"), 20)
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ")
        assert pid_in(after) == srv.pid != pid_in(first)
        assert (await mu.call_text(path, "echo", text="again")).startswith("again (pid ")
        # healed beneath mcp-use: its session object is the same one, its own reconnect had nothing to do
        assert mu.connector.client_session is session_before
    print(f"[mcp-use {path}] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_20_calls_in_flight_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with mcp_use_client(srv.url) as mu:
        await mu.call_text("agent", "echo", text="warm up")
        calls = [asyncio.ensure_future(mu.call_text("agent", "slow", seconds=2.0)) for _ in range(20)]
        await wait_until(lambda: srv.executions("slow") >= 20, "the 20 calls to reach the server")
        await restart_under(srv)
        answers = await asyncio.wait_for(asyncio.gather(*calls), 60)
    assert all(a.startswith("slept 2.0 s (pid ") for a in answers), answers
    assert {pid_in(a) for a in answers} == {srv.pid}
    assert srv.executions("slow") == 40  # each killed in flight, each replayed once (read-only)
    assert rebuilds.count == 1, rebuilds


@needs_healing
@pytest.mark.parametrize("path", PATHS)
async def test_a_write_lost_in_flight_runs_once_and_says_outcome_uncertain(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer, path: str
) -> None:
    srv = mcp_fault_server
    async with mcp_use_client(srv.url) as mu:
        await mu.call_text(path, "echo", text="warm up")
        back = arm_lost_write(srv)
        started = time.monotonic()
        kind, value = await outcome(mu.call_text(path, "incr", key="w"))
        elapsed = time.monotonic() - started
        back.join(30)
        assert kind == "error", value
        if path == "agent":  # the format_error dict the model reads
            assert isinstance(value, ToolFailed) and value.kind == "McpError", value
            assert value.details.startswith(UNCERTAIN), value
        else:
            assert isinstance(value, McpError) and str(value.error.message).startswith(UNCERTAIN), repr(value)
        assert srv.executions("incr") == 1
        assert srv.counter("w") == 1
        assert (await asyncio.wait_for(mu.call_text(path, "echo", text="next"), 20)).startswith("next (pid ")
        assert await mu.call_text(path, "incr", key="w") == "2"
    assert srv.executions("incr") == 2
    print(f"[mcp-use {path}] the lost write settled as outcome uncertain in {elapsed:.2f} s")
    assert elapsed < SETTLE_SECONDS
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_auto_reconnect_and_healing_never_run_a_write_twice(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """The write is lost in flight and the server stays down 3 s before it comes back: whatever mcp-use's
    ``auto_reconnect`` and the healing layer each do about it, the write ran once, the model is told the
    outcome is uncertain, and the next calls (a read, then the write again) run once each."""
    srv = mcp_fault_server
    async with mcp_use_client(srv.url) as mu:
        await mu.call_text("agent", "echo", text="warm up")
        assert mu.connector.auto_reconnect
        back = arm_lost_write(srv, revive_after=3.0)
        kind, value = await outcome(mu.call_text("agent", "incr", key="w"))
        assert kind == "error", value
        assert UNCERTAIN in error_words(value), value
        back.join(30)
        assert srv.executions("incr") == 1
        assert (await asyncio.wait_for(mu.call_text("agent", "echo", text="next"), 20)).startswith("next (pid ")
        assert srv.executions("incr") == 1  # nothing replayed it meanwhile
        assert await mu.call_text("agent", "incr", key="w") == "2"
        assert mu.connector.is_connected
    assert srv.executions("incr") == 2
    assert srv.counter("w") == 2
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_mcp_agent_run_after_a_restart_and_a_lost_write(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """``MCPAgent.run`` with a scripted model: after a restart the run answers; a write lost in flight
    runs once and the model reads mcp-use's error dict saying the outcome is uncertain."""
    srv = mcp_fault_server
    async with mcp_agent(srv.url) as run:
        assert (await run("echo", text="before")).startswith("before (pid ")
        await restart_under(srv)
        assert (await run("echo", text="after")).startswith(f"after (pid {srv.pid})")
        back = arm_lost_write(srv)
        failure = json.loads(await run("incr", key="w"))
        back.join(30)
        assert failure["error"] == "McpError" and failure["details"].startswith(UNCERTAIN), failure
        assert await run("incr", key="w") == "2"
    assert srv.executions("incr") == 2
    assert rebuilds.count == 2, rebuilds  # the restart, then the kill


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    out = run_child(
        child_script(
            ("mcp_use", "mcp_use.client.task_managers.streamable_http"),
            """
            from mcp_use import MCPClient

            async def main():
                with FaultServer() as srv:
                    client = MCPClient({"mcpServers": {"kit": {"url": srv.url}}})
                    session = await client.create_session("kit")
                    try:
                        await session.call_tool("echo", {"text": "before"})
                        await asyncio.to_thread(srv.restart, signal.SIGKILL)
                        result = await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 20)
                        print("ANSWER", result.content[0].text, "SERVER", srv.pid)
                    finally:
                        await client.close_all_sessions()

            asyncio.run(main())
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    answer, server_pid = line[len("ANSWER ") :].rsplit(" SERVER ", 1)
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
