"""llama-index-tools-mcp 0.6 (mcp 2.x only) against a real MCP server that restarts or dies mid-call, without
and with ``mcp_hooks.instrument("mcp")``.

Tool path: ``McpToolSpec(client=...).to_tool_list_async()`` gives one ``FunctionTool`` per MCP tool whose
function is ``McpToolSpec._create_tool_fn``'s closure (llama_index/tools/mcp/base.py), ``await
self.client.call_tool(name, kwargs)``. The agent runs it in ``BaseWorkflowAgent._call_tool``
(llama_index/core/agent/workflow/base_agent.py), which turns an exception into the ``ToolOutput`` the model
reads, ``content=str(e)``, ``is_error=True``; the tests call that method itself.

* ``BasicMCPClient`` (the default client, llama_index/tools/mcp/client.py) opens a transport, a
  ``ClientSession`` and its handshake for every call: there is no session to lose.
* A long-lived ``ClientSession`` the application passes as ``McpToolSpec(client=session)`` is held for the
  spec's life, and nothing reconnects it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from wave2a_support import (
    SETTLE_SECONDS,
    UNCERTAIN,
    RebuildCounter,
    arm_lost_write,
    child_script,
    needs_healing,
    pid_in,
    restart_under,
    run_child,
    twenty_reads_across_a_kill,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pytest.importorskip("llama_index.tools.mcp")
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.llms.mock import MockFunctionCallingLLM
    from llama_index.core.tools import FunctionTool
    from llama_index.tools.mcp import BasicMCPClient, McpToolSpec

import mcp
from mcp.client.streamable_http import streamable_http_client

from mcp_hooks.testing import FaultServer

pytestmark = [
    pytest.mark.timeout(150),
    pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"),
]

with warnings.catch_warnings():  # llama-index-core reads a pydantic field deprecated since 2.0
    warnings.simplefilter("ignore", DeprecationWarning)
    #: The agent whose ``_call_tool`` runs each call (its LLM, the framework's own mock, is never asked here).
    AGENT = FunctionAgent(tools=[], llm=MockFunctionCallingLLM())


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect the connections the SDK and the framework leave to the garbage collector while this test's
    warning filters still apply (at the end of the run they would be reported as unraisable)."""
    yield
    gc.collect()


@contextlib.asynccontextmanager
async def session_tools(url: str) -> AsyncIterator[tuple[McpToolSpec, dict[str, FunctionTool]]]:
    """The documented long-lived use: the application's own ``ClientSession`` passed to ``McpToolSpec``."""
    async with (
        streamable_http_client(url) as (read, write, *_),
        mcp.ClientSession(read, write) as session,
    ):
        await session.initialize()
        spec = McpToolSpec(client=session)
        tools = await spec.to_tool_list_async()
        yield spec, {t.metadata.get_name(): t for t in tools}


async def model_reads(tool: FunctionTool, **args: Any) -> tuple[bool, str]:
    """``(True, the tool's text)`` or ``(False, what the model reads)``: the agent's own ``_call_tool``."""
    output = await asyncio.wait_for(AGENT._call_tool(None, tool, args), SETTLE_SECONDS)  # type: ignore[arg-type]
    if output.is_error:
        return False, str(output.content)
    result = output.raw_output
    assert not result.is_error, result
    return True, str(result.content[0].text)


async def answer(tool: FunctionTool, **args: Any) -> str:
    ok, read = await model_reads(tool, **args)
    assert ok, read
    return read


# --- BasicMCPClient: a session per call ----------------------------------------------------------------------


async def test_basic_client_needs_nothing_across_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    spec = McpToolSpec(client=BasicMCPClient(srv.url))
    tools = {t.metadata.get_name(): t for t in await spec.to_tool_list_async()}
    first = await answer(tools["echo"], text="before")
    srv.restart(signal.SIGKILL)
    after = await answer(tools["echo"], text="after")
    assert after.startswith("after (pid ") and pid_in(after) == srv.pid != pid_in(first)
    assert await answer(tools["incr"], key="n") == "1"


# --- a long-lived ClientSession, without the healing layer: what its users get today -------------------------


async def test_baseline_session_every_call_fails_after_a_restart(
    no_healing: None, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with session_tools(srv.url) as (spec, tools):
        await answer(tools["echo"], text="before")
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back: every call still fails, on the dead session
            assert await model_reads(tools["echo"], text=f"after {attempt}") == (False, "Session not found")
        with pytest.raises(mcp.MCPError, match="Session not found"):
            await asyncio.wait_for(spec.to_tool_list_async(), 30)
    assert srv.executions("echo") == 1


# --- a long-lived ClientSession with the healing layer -------------------------------------------------------


@needs_healing
async def test_session_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with session_tools(srv.url) as (spec, tools):
        first = await answer(tools["echo"], text="before")
        session = spec.client
        await restart_under(srv)
        started = time.monotonic()
        after = await answer(tools["echo"], text="after")
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ") and pid_in(after) == srv.pid != pid_in(first)
        assert spec.client is session  # healed beneath it: the same session object
    print(f"[llama-index session] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_session_20_concurrent_calls_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with session_tools(srv.url) as (_, tools):
        await answer(tools["echo"], text="warm up")
        await twenty_reads_across_a_kill(srv, lambda: answer(tools["slow"], seconds=2.0))
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_session_a_write_lost_in_flight_runs_once_and_the_model_reads_uncertain(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with session_tools(srv.url) as (_, tools):
        await answer(tools["echo"], text="warm up")
        back = arm_lost_write(srv)
        ok, read = await model_reads(tools["incr"], key="w")
        back.join(30)
        assert not ok and read.startswith(UNCERTAIN), read
        assert srv.executions("incr") == 1
        assert (await answer(tools["echo"], text="next")).startswith(f"next (pid {srv.pid})")
        assert await answer(tools["incr"], key="w") == "2"
    assert srv.executions("incr") == 2
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_session_tool_list_right_after_a_restart_is_the_new_servers(
    healing: None, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with session_tools(srv.url) as (spec, tools):
        await answer(tools["echo"], text="warm up")
        srv.offer_extra_tool(True)
        await restart_under(srv)
        fresh = {t.metadata.get_name(): t for t in await asyncio.wait_for(spec.to_tool_list_async(), 30)}
        assert set(fresh) == {*tools, "extra"}
        assert (await answer(fresh["extra"])).startswith(f"extra (pid {srv.pid})")


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    out = run_child(
        child_script(
            ("llama_index.tools.mcp", "llama_index.tools.mcp.base"),
            """
            import mcp
            from mcp.client.streamable_http import streamable_http_client
            from llama_index.tools.mcp import McpToolSpec

            async def main():
                with FaultServer() as srv:
                    async with (
                        streamable_http_client(srv.url) as (read, write, *_),
                        mcp.ClientSession(read, write) as session,
                    ):
                        await session.initialize()
                        spec = McpToolSpec(client=session)
                        tools = {t.metadata.get_name(): t for t in await spec.to_tool_list_async()}
                        await tools["echo"].acall(text="before")
                        await asyncio.to_thread(srv.restart, signal.SIGKILL)
                        out = await asyncio.wait_for(tools["echo"].acall(text="after"), 20)
                        print("ANSWER", out.raw_output.content[0].text, "SERVER", srv.pid)

            asyncio.run(main())
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    answer, server_pid = line[len("ANSWER ") :].rsplit(" SERVER ", 1)
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
