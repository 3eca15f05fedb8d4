"""mcp-haystack 2.1 (``haystack_integrations.tools.mcp``, mcp 1.x and 2.x) against a real MCP server that
restarts or dies mid-call, without and with ``mcp_hooks.instrument("mcp")``.

Tool path: what haystack's ``Agent`` runs for a model's tool call, ``tool.invoke(**args)``
(haystack/components/agents/tool_calling.py ``_make_context_bound_invoke``), on

* ``toolset``: an ``MCPToolset`` with ``StreamableHttpServerInfo``: each ``Tool.function`` is the closure
  ``invoke_tool`` (mcp_toolset.py), which runs ``MCPClient.call_tool`` on the process-wide ``AsyncExecutor``
  loop, where the toolset's one session lives (``_MCPClientSessionManager._run`` holds it);
* ``tool``: an ``MCPTool`` (one tool, its own client and session): ``_invoke_tool`` -> the same
  ``MCPClient.call_tool``.

A ``ToolInvocationError`` becomes the tool message the model reads, ``str(error)`` (``_finalize_tool_result``
with ``raise_on_failure=False``).

mcp-haystack has its own reconnect: ``MCPClient.call_tool`` (mcp_tool.py:301) calls ``connect()`` again and
sends the call again when ``is_reconnectable(e)`` (compatibility_layer.py:37: a transport error, or an SDK
error with code ``CONNECTION_CLOSED``), so it replays a call after the ambiguous "Connection closed". A lost
session (``-32600`` "Session terminated" / "Session not found") is not reconnectable: every later call fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
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
    pytest.importorskip("haystack_integrations.tools.mcp")
    from haystack.tools import Tool
    from haystack.tools.errors import ToolInvocationError
    from haystack_integrations.tools.mcp import MCPTool, MCPToolset, StreamableHttpServerInfo
    from haystack_integrations.tools.mcp.mcp_tool import AsyncExecutor

from mcp_hooks.testing import FaultServer

pytestmark = [
    pytest.mark.timeout(150),
    # haystack leaves sockets to the garbage collector when its executor loop is dropped (its baseline tests,
    # without the healing layer, show it as much as the healed ones)
    pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"),
]

MCP_MAJOR = int(version("mcp").split(".")[0])
#: What the SDK raises for a call on a session the server no longer knows (a 404).
SESSION_LOST = "Session not found" if MCP_MAJOR >= 2 else "Session terminated"
#: mcp-haystack's own wording around it (mcp_tool.py ``MCPClient.call_tool``).
FAILED = "Failed to invoke Tool `{}` with parameters"
INVOCATION_TIMEOUT = 8.0
PATHS = ("toolset", "tool")
NAMES = ("echo", "incr", "slow")
#: haystack's reconnect says so when it fires (mcp_tool.py ``MCPClient.call_tool``).
RECONNECT_LOG = "Connection lost during tool call"


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect the connections the SDK and the framework leave to the garbage collector while this test's
    warning filters still apply (at the end of the run they would be reported as unraisable)."""
    yield
    gc.collect()


@contextlib.contextmanager
def haystack_tools(url: str, path: str) -> Iterator[dict[str, Tool]]:
    """The tools an ``Agent`` would be given, connected (warmed up) as ``Agent.warm_up`` does."""
    info = StreamableHttpServerInfo(url=url)
    if path == "toolset":
        toolset = MCPToolset(info, invocation_timeout=INVOCATION_TIMEOUT)
        toolset.warm_up()
        try:
            yield {t.name: t for t in toolset.tools}
        finally:
            toolset.close()
        return
    tools = {name: MCPTool(name, info, invocation_timeout=int(INVOCATION_TIMEOUT)) for name in NAMES}
    for tool in tools.values():
        tool.warm_up()
    try:
        yield tools
    finally:
        for tool in tools.values():
            tool.close()


def _text(result: str) -> str:
    content = json.loads(result)["content"]
    return str(content[0]["text"])


async def invoke(tool: Tool, pool: ThreadPoolExecutor | None = None, **args: Any) -> str:
    """``tool.invoke(**args)`` (it blocks: on a thread, as the Agent's tool-calling pool runs it): the answer's
    text; a ``ToolInvocationError`` is raised."""
    loop = asyncio.get_running_loop()
    result = await asyncio.wait_for(loop.run_in_executor(pool, lambda: tool.invoke(**args)), SETTLE_SECONDS)
    return _text(result)


async def model_reads(tool: Tool, **args: Any) -> tuple[bool, str]:
    """``(True, text)``, or ``(False, the tool message the model reads)`` for a ``ToolInvocationError``."""
    try:
        return True, await invoke(tool, **args)
    except ToolInvocationError as error:
        return False, str(error)


# --- without the healing layer: what users of mcp-haystack get today ----------------------------------------


@pytest.mark.parametrize("path", PATHS)
async def test_baseline_every_call_fails_after_a_restart_and_its_reconnect_never_fires(
    no_healing: None, mcp_fault_server: FaultServer, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    srv = mcp_fault_server
    with haystack_tools(srv.url, path) as tools:
        await invoke(tools["echo"], text="before")
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back: every call still fails, on the dead session
            ok, read = await model_reads(tools["echo"], text=f"after {attempt}")
            assert not ok, read
            assert read.startswith(FAILED.format("echo")) and read.endswith(f"got error: {SESSION_LOST}"), read
    assert RECONNECT_LOG not in caplog.text  # a lost session is not "reconnectable" for mcp-haystack
    assert srv.executions("echo") == 1


async def test_baseline_an_expired_session_is_never_recovered(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    with haystack_tools(srv.url, "toolset") as tools:
        await invoke(tools["echo"], text="before")
        srv.expire_sessions()
        for attempt in range(2):
            ok, read = await model_reads(tools["echo"], text=f"after {attempt}")
            assert not ok and read.endswith(f"got error: {SESSION_LOST}"), read
    assert srv.executions("echo") == 1


async def test_baseline_a_write_lost_in_flight(
    no_healing: None, mcp_fault_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    """mcp 1.x leaves the lost request unanswered: the call times out (``invocation_timeout``). mcp 2.x answers
    it "SSE stream ended without a response": mcp-haystack takes that for a dropped connection and reconnects
    to send the write again, inside the failing call; that attempt is cancelled (the model reads an empty
    error), so here the write did not run twice. The next call on the old session fails "Connection closed",
    which mcp-haystack reconnects and replays (that call never reached the server)."""
    srv = mcp_fault_server
    with haystack_tools(srv.url, "toolset") as tools:
        await invoke(tools["echo"], text="warm up")
        back = arm_lost_write(srv)
        ok, read = await model_reads(tools["incr"], key="w")
        back.join(30)
        assert not ok, read
        assert srv.executions("incr") == 1
        if MCP_MAJOR >= 2:
            assert read.startswith(FAILED.format("incr")) and read.endswith("Error: "), read
            assert f"{RECONNECT_LOG} 'incr'" in caplog.text
            assert (await invoke(tools["echo"], text="next")).startswith("next (pid ")
            assert f"{RECONNECT_LOG} 'echo'" in caplog.text
        else:
            assert read.endswith(f"Error: Operation timed out after {INVOCATION_TIMEOUT} seconds"), read
            assert RECONNECT_LOG not in caplog.text
    assert srv.executions("incr") == 1


# --- with the healing layer ------------------------------------------------------------------------------


@needs_healing
@pytest.mark.parametrize("path", PATHS)
async def test_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    srv = mcp_fault_server
    with haystack_tools(srv.url, path) as tools:
        first = await invoke(tools["echo"], text="before")
        await restart_under(srv)
        started = time.monotonic()
        after = await invoke(tools["echo"], text="after")
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ") and pid_in(after) == srv.pid != pid_in(first)
        assert (await invoke(tools["incr"], key="h")) == "1"
    assert RECONNECT_LOG not in caplog.text  # healed beneath: mcp-haystack's own reconnect had nothing to do
    print(f"[haystack {path}] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == (1 if path == "toolset" else len(NAMES)), rebuilds  # once per session


@needs_healing
async def test_an_expired_session_is_recovered(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with haystack_tools(srv.url, "toolset") as tools:
        await invoke(tools["echo"], text="before")
        srv.expire_sessions()
        assert (await invoke(tools["echo"], text="after")).startswith(f"after (pid {srv.pid})")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_20_concurrent_calls_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with haystack_tools(srv.url, "toolset") as tools, ThreadPoolExecutor(20) as pool:
        await invoke(tools["echo"], text="warm up")
        await twenty_reads_across_a_kill(srv, lambda: invoke(tools["slow"], pool, seconds=2.0))
    assert rebuilds.count == 1, rebuilds


@needs_healing
@pytest.mark.parametrize("down_for", [0.0, 3.0])
async def test_its_own_retry_never_runs_a_write_twice(
    healing: None,
    rebuilds: RebuildCounter,
    mcp_fault_server: FaultServer,
    down_for: float,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The write is lost in flight (the server back at once, or 3 s later): it ran once, the model reads that
    the outcome is uncertain, mcp-haystack's reconnect never fired (the healing layer's answer is not
    "Connection closed"), and the next calls (a read, then the write again) run once each."""
    srv = mcp_fault_server
    with haystack_tools(srv.url, "toolset") as tools:
        await invoke(tools["echo"], text="warm up")
        back = arm_lost_write(srv, revive_after=down_for)
        ok, read = await model_reads(tools["incr"], key="w")
        back.join(30)
        assert not ok, read
        assert read.startswith(FAILED.format("incr")) and f"got error: {UNCERTAIN}" in read, read
        assert srv.executions("incr") == 1
        assert (await invoke(tools["echo"], text="next")).startswith(f"next (pid {srv.pid})")
        assert srv.executions("incr") == 1  # nothing replayed it meanwhile
        assert await invoke(tools["incr"], key="w") == "2"
    assert RECONNECT_LOG not in caplog.text
    assert srv.executions("incr") == 2
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_the_tool_list_right_after_a_restart_is_the_new_servers(
    healing: None, mcp_fault_server: FaultServer
) -> None:
    """``MCPToolset`` lists once, at ``warm_up``; listing again on its healed session (the one its tools call
    through) right after a restart shows the new process's tools, and the old tools still answer."""
    srv = mcp_fault_server
    toolset = MCPToolset(StreamableHttpServerInfo(url=srv.url), invocation_timeout=INVOCATION_TIMEOUT)
    toolset.warm_up()
    try:
        tools = {t.name: t for t in toolset.tools}
        await invoke(tools["echo"], text="warm up")
        srv.offer_extra_tool(True)
        await restart_under(srv)
        client = toolset._worker._client  # type: ignore[union-attr]  # the MCPClient every tool calls through
        listed = await asyncio.to_thread(AsyncExecutor.get_instance().run, client.session.list_tools(), 30)
        assert {t.name for t in listed.tools} == {*NAMES, "put", "fail", "extra"}
        assert (await invoke(tools["echo"], text="after")).startswith(f"after (pid {srv.pid})")
    finally:
        toolset.close()


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    out = run_child(
        child_script(
            ("haystack_integrations.tools.mcp", "haystack_integrations.tools.mcp.mcp_tool"),
            """
            import json
            from haystack_integrations.tools.mcp import MCPToolset, StreamableHttpServerInfo

            with FaultServer() as srv:
                toolset = MCPToolset(StreamableHttpServerInfo(url=srv.url), invocation_timeout=20)
                toolset.warm_up()
                echo = next(t for t in toolset.tools if t.name == "echo")
                try:
                    echo.invoke(text="before")
                    srv.restart(signal.SIGKILL)
                    result = json.loads(echo.invoke(text="after"))
                    print("ANSWER", result["content"][0]["text"], "SERVER", srv.pid)
                finally:
                    toolset.close()
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    answer, server_pid = line[len("ANSWER ") :].rsplit(" SERVER ", 1)
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
