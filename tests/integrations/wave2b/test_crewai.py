"""crewai 1.15 and crewai-tools 1.15 (mcp 1.30.0 only) against a real MCP server that restarts or dies
mid-call, without and with ``mcp_hooks.instrument("mcp")``.

Two tool paths:

* ``MCPServerAdapter`` (crewai_tools/adapters/mcp_adapter.py) over streamable HTTP: it starts mcpadapt's
  ``MCPAdapt`` (mcpadapt/core.py), which holds ONE ``ClientSession`` on its own thread and event loop for the
  adapter's life; each ``CrewAIMCPTool._run`` calls ``_sync_call_tool`` -> ``session.call_tool`` on that loop
  and waits. Nothing in it reconnects: after a restart every call fails until a new adapter is built.
* crewai's native ``Agent(mcps=[MCPServerHTTP(...)])``: ``MCPNativeTool._run_async``
  (crewai/tools/mcp_native_tool.py) builds a fresh ``MCPClient``, connects, calls and disconnects per call,
  so there is no session to lose.

What the model reads is what crewai's native tool-calling step hands back:
``execute_single_native_tool_call`` (crewai/utilities/agent_utils.py, the step executor's call) calls
``tool.run(**args)`` and turns an exception into ``"Error executing tool: <error>"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import signal
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
    pid_in,
    restart_under,
    run_child,
    twenty_reads_across_a_kill,
)

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")  # no network in tests
os.environ.setdefault("OTEL_SDK_DISABLED", "true")

with warnings.catch_warnings():  # crewai's import emits ImportWarning/DeprecationWarning of its own
    warnings.simplefilter("ignore")
    pytest.importorskip("crewai_tools")
    pytest.importorskip("mcpadapt")
    from crewai import Agent
    from crewai.mcp import MCPServerHTTP
    from crewai.tools import BaseTool
    from crewai.utilities.agent_utils import execute_single_native_tool_call
    from crewai.utilities.string_utils import sanitize_tool_name
    from crewai_tools import MCPServerAdapter

from mcp_hooks.testing import FaultServer

pytestmark = [
    pytest.mark.timeout(150),
    SDK_DEPRECATION,  # mcpadapt and crewai's HTTP transport call the deprecated ``streamablehttp_client``
    pytest.mark.filterwarnings("ignore::DeprecationWarning:crewai"),  # crewai's Agent() reads its deprecated fields
]

ERROR = "Error executing tool: "


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect the connections the SDK and the framework leave to the garbage collector while this test's
    warning filters still apply (at the end of the run they would be reported as unraisable)."""
    yield
    gc.collect()


@contextlib.contextmanager
def adapter_tools(url: str) -> Iterator[tuple[MCPServerAdapter, dict[str, BaseTool]]]:
    adapter = MCPServerAdapter({"url": url, "transport": "streamable-http"})
    try:
        yield adapter, {t.name: t for t in adapter.tools}
    finally:
        adapter.stop()


def model_call(tools: dict[str, BaseTool], name: str, **args: Any) -> str:
    """A model's native tool call of ``tools[name]`` (by the tool's own name) through crewai's own step: what
    the model reads back."""
    tool_call = {
        "id": f"call_{uuid.uuid4().hex[:8]}",
        "type": "function",
        "function": {"name": tools[name].name, "arguments": json.dumps(args)},
    }
    result = execute_single_native_tool_call(
        tool_call,
        available_functions={sanitize_tool_name(t.name): t.run for t in tools.values()},
        original_tools=list(tools.values()),
        structured_tools=None,
        tools_handler=None,
        agent=None,
        task=None,
        crew=None,
        event_source=object(),
    )
    assert result.func_name == sanitize_tool_name(tools[name].name), result
    return str(result.result)


async def reads(tools: dict[str, BaseTool], name: str, pool: ThreadPoolExecutor | None = None, **args: Any) -> str:
    """:func:`model_call` on a thread (crewai's tools block), bounded."""
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.run_in_executor(pool, lambda: model_call(tools, name, **args)), SETTLE_SECONDS)


def ok(read: str) -> str:
    assert not read.startswith(ERROR), read
    return read


# --- MCPServerAdapter without the healing layer: what its users get today ------------------------------------


async def test_baseline_adapter_every_call_fails_after_a_restart(
    no_healing: None, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with adapter_tools(srv.url) as (adapter, tools):
        ok(await reads(tools, "echo", text="before"))
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back: every call still fails, on the dead session
            assert await reads(tools, "echo", text=f"after {attempt}") == ERROR + "Session terminated"
        # listing again (what ``start()`` does, mcpadapt ``MCPAdapt.tools()``) fails the same way
        with pytest.raises(Exception, match="Session terminated"):
            await asyncio.to_thread(adapter._adapter.tools)  # type: ignore[union-attr]
    assert srv.executions("echo") == 1


# --- crewai native ``Agent(mcps=[...])``: a session per call ------------------------------------------------


@pytest.mark.skipif(
    sys.version_info < (3, 12),
    reason="crewai 1.15's native MCP tool fails every call made with no running event loop on Python 3.11 "
    "(test_native_tool_called_from_sync_code_fails_on_python_3_11)",
)
def test_native_path_needs_nothing_across_a_restart_sync(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    agent = Agent(role="r", goal="g", backstory="b", mcps=[MCPServerHTTP(url=srv.url)])
    tools = {t.name.rsplit("_", 1)[-1]: t for t in agent.get_mcp_tools(agent.mcps)}
    first = ok(model_call(tools, "echo", text="before"))
    srv.restart(signal.SIGKILL)
    after = ok(model_call(tools, "echo", text="after"))
    assert pid_in(after) == srv.pid != pid_in(first)


async def test_native_path_needs_nothing_across_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    """Without the healing layer: each call opens its own session, so a restart between two calls costs
    nothing. Called with an event loop running in the caller's thread (an async application), where
    ``MCPNativeTool._run`` runs the call on a thread of its own."""
    srv = mcp_fault_server
    agent = Agent(role="r", goal="g", backstory="b", mcps=[MCPServerHTTP(url=srv.url)])
    tools = {t.name.rsplit("_", 1)[-1]: t for t in agent.get_mcp_tools(agent.mcps)}
    assert {"echo", "incr"} <= set(tools)
    first = ok(model_call(tools, "echo", text="before"))
    srv.restart(signal.SIGKILL)
    after = ok(model_call(tools, "echo", text="after"))
    assert after.startswith("after (pid ") and pid_in(after) == srv.pid != pid_in(first)
    assert ok(model_call(tools, "incr", key="n")) == "1"
    assert srv.executions("echo") == 2


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="Python 3.11 only (asyncio.wait_for runs in a new task)")
def test_native_tool_called_from_sync_code_fails_on_python_3_11(
    no_healing: None, mcp_fault_server: FaultServer
) -> None:
    """An upstream crewai bug, restart or not: ``HTTPTransport.connect`` (crewai/mcp/transports/http.py) enters
    the SDK transport under ``asyncio.wait_for``, which on Python 3.11 runs it in another task, so leaving it
    raises "Attempted to exit cancel scope in a different task"; crewai treats that as teardown noise, but
    ``MCPNativeTool._run`` called ``asyncio.run`` inside ``except RuntimeError`` (no running loop), so the
    "no running event loop" RuntimeError in the chain is raised as the failure. The tool DID run."""
    srv = mcp_fault_server
    agent = Agent(role="r", goal="g", backstory="b", mcps=[MCPServerHTTP(url=srv.url)])
    tools = {t.name.rsplit("_", 1)[-1]: t for t in agent.get_mcp_tools(agent.mcps)}
    read = model_call(tools, "echo", text="hello")
    assert read == ERROR + "Error executing MCP tool echo: Error during MCP client disconnect: no running event loop"
    assert srv.executions("echo") == 1


# --- MCPServerAdapter with the healing layer ------------------------------------------------------------------


@needs_healing
async def test_adapter_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with adapter_tools(srv.url) as (adapter, tools):
        first = ok(await reads(tools, "echo", text="before"))
        session_before = adapter._adapter.sessions[0]  # type: ignore[union-attr]
        await restart_under(srv)
        started = time.monotonic()
        after = ok(await reads(tools, "echo", text="after"))
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ") and pid_in(after) == srv.pid != pid_in(first)
        assert ok(await reads(tools, "incr", key="h")) == "1"
        assert adapter._adapter.sessions[0] is session_before  # type: ignore[union-attr]  # healed beneath it
    print(f"[crewai adapter] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_adapter_20_concurrent_calls_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with adapter_tools(srv.url) as (_, tools), ThreadPoolExecutor(20) as pool:
        ok(await reads(tools, "echo", text="warm up"))
        await twenty_reads_across_a_kill(srv, lambda: reads(tools, "slow", pool, seconds=2.0))
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_adapter_a_write_lost_in_flight_runs_once_and_the_model_reads_uncertain(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with adapter_tools(srv.url) as (_, tools):
        ok(await reads(tools, "echo", text="warm up"))
        back = arm_lost_write(srv)
        read = await reads(tools, "incr", key="w")
        back.join(30)
        assert read.startswith(ERROR + UNCERTAIN), read
        assert srv.executions("incr") == 1
        assert ok(await reads(tools, "echo", text="next")).startswith(f"next (pid {srv.pid})")
        assert ok(await reads(tools, "incr", key="w")) == "2"
    assert srv.executions("incr") == 2
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_adapter_tool_list_right_after_a_restart_is_the_new_servers(
    healing: None, mcp_fault_server: FaultServer
) -> None:
    """``MCPServerAdapter.tools`` is the list made at start; mcpadapt's ``MCPAdapt.tools()`` (what ``start()``
    uses) lists again on the same, healed, session and shows the new process's tools, callable."""
    srv = mcp_fault_server
    with adapter_tools(srv.url) as (adapter, tools):
        ok(await reads(tools, "echo", text="warm up"))
        srv.offer_extra_tool(True)
        await restart_under(srv)
        relisted = await asyncio.wait_for(asyncio.to_thread(adapter._adapter.tools), 30)  # type: ignore[union-attr]
        fresh = {t.name: t for t in relisted}
        assert set(fresh) == {*tools, "extra"}
        assert ok(await reads(fresh, "extra")).startswith(f"extra (pid {srv.pid})")


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    out = run_child(
        child_script(
            ("crewai_tools", "mcpadapt", "mcpadapt.core"),
            """
            import warnings
            warnings.simplefilter("ignore")
            from crewai_tools import MCPServerAdapter

            with FaultServer() as srv:
                adapter = MCPServerAdapter({"url": srv.url, "transport": "streamable-http"})
                try:
                    echo = next(t for t in adapter.tools if t.name == "echo")
                    echo.run(text="before")
                    srv.restart(signal.SIGKILL)
                    print("ANSWER", echo.run(text="after"), "SERVER", srv.pid)
                finally:
                    adapter.stop()
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    answer, server_pid = line[len("ANSWER ") :].rsplit(" SERVER ", 1)
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
