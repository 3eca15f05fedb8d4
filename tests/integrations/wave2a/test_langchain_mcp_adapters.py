"""langchain-mcp-adapters 0.3.x (mcp 1.x only) against a real MCP server that restarts or dies mid-call,
without and with ``mcp_hooks.instrument("mcp")``.

The tool path is the one a LangChain / LangGraph agent runs: ``convert_mcp_tool_to_langchain_tool``
(langchain_mcp_adapters/tools.py) builds a ``StructuredTool(coroutine=call_tool)``, and LangGraph's
``ToolNode`` (what ``create_agent`` uses) calls ``await tool.ainvoke(tool_call)`` with a ``ToolCall`` dict,
which gives a ``ToolMessage``. Two modes:

* ``persistent``: ``async with client.session("kit")`` + ``load_mcp_tools(session)``: every call goes to
  the closure-captured ``ClientSession`` (``session.call_tool`` in ``execute_tool``);
* ``per_call``: ``client.get_tools()`` (the default): each call opens, initializes and closes a session
  of its own (``create_session(connection)`` in ``execute_tool``).

Only ``isError`` results become a ``ToolMessage(status="error")`` (``_handle_mcp_tool_error``); an SDK
error (``McpError``) propagates out of ``ainvoke``, and out of LangGraph's ``ToolNode`` with its default
``handle_tool_errors``: ``create_agent``'s run ends with it (shown with a scripted chat model, no LLM).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from wave2a_support import (
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
    scripted_chat_model,
    still_pending_after,
    wait_until,
)

pytest.importorskip("langchain_mcp_adapters")

from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_mcp_adapters.client import MultiServerMCPClient
from langchain_mcp_adapters.tools import load_mcp_tools
from mcp.shared.exceptions import McpError

from mcp_hooks.testing import FaultServer

pytestmark = [pytest.mark.timeout(120)]

MODES = ("persistent", "per_call")


@contextlib.asynccontextmanager
async def agent_tools(url: str, mode: str) -> AsyncIterator[dict[str, BaseTool]]:
    """The LangChain tools an agent gets for the kit's server, by name, in ``mode``."""
    client = MultiServerMCPClient({"kit": {"transport": "streamable_http", "url": url}})
    if mode == "per_call":
        yield {t.name: t for t in await client.get_tools()}
        return
    async with client.session("kit") as session:
        yield {t.name: t for t in await load_mcp_tools(session, server_name="kit")}


async def call(tool: BaseTool, **args: Any) -> ToolMessage:
    """What LangGraph's ``ToolNode`` does with a model's tool call: ``await tool.ainvoke(tool_call)``."""
    message = await tool.ainvoke(
        {"name": tool.name, "args": args, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "tool_call"}
    )
    assert isinstance(message, ToolMessage), message
    return message


def text(message: ToolMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") if isinstance(block, dict) else str(block) for block in content)


def ok_text(message: ToolMessage) -> str:
    assert message.status == "success", message
    return text(message)


# --- without the healing layer: what users of langchain-mcp-adapters get today ------------------------------


async def test_baseline_persistent_session_breaks_for_good_after_a_restart(
    no_healing: None, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with agent_tools(srv.url, "persistent") as tools:
        ok_text(await call(tools["echo"], text="before"))
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back: every call still fails, on the dead session
            kind, value = await outcome(call(tools["echo"], text=f"after {attempt}"))
            assert kind == "error", value
            assert isinstance(value, McpError) and "Session terminated" in str(value), repr(value)
    assert srv.executions("echo") == 1


async def test_baseline_per_call_mode_has_no_session_to_lose_between_calls(
    no_healing: None, mcp_fault_server: FaultServer
) -> None:
    """The default mode opens a session per call: a restart between two calls costs nothing (one handshake
    per call is its price); only a call in flight can be lost (next test)."""
    srv = mcp_fault_server
    async with agent_tools(srv.url, "per_call") as tools:
        first = ok_text(await call(tools["echo"], text="before"))
        srv.restart(signal.SIGKILL)
        after = ok_text(await call(tools["echo"], text="after"))
    assert pid_in(after) == srv.pid != pid_in(first)


@pytest.mark.parametrize("mode", MODES)
async def test_baseline_a_write_lost_in_flight_is_left_waiting(
    no_healing: None, mcp_fault_server: FaultServer, mode: str
) -> None:
    """mcp 1.x does not settle a request whose connection died: the call waits for the read timeout (the
    adapters' default ``sse_read_timeout`` is 300 s), in both modes, although the server is back."""
    srv = mcp_fault_server
    async with agent_tools(srv.url, mode) as tools:
        ok_text(await call(tools["echo"], text="warm up"))
        back = arm_lost_write(srv)
        assert await still_pending_after(call(tools["incr"], key="w"))
        back.join(30)
    assert srv.executions("incr") == 1


async def test_baseline_agent_run_ends_with_session_terminated_after_a_restart(
    no_healing: None, mcp_fault_server: FaultServer
) -> None:
    """A LangChain agent (``create_agent``) with a scripted model, persistent session: after a restart the
    run itself raises (LangGraph's ``ToolNode`` does not catch SDK errors by default)."""
    create_agent = pytest.importorskip("langchain.agents").create_agent
    srv = mcp_fault_server
    model = scripted_chat_model()
    async with agent_tools(srv.url, "persistent") as tools:
        agent = create_agent(model, list(tools.values()))
        model.queue.append(("echo", {"text": "before"}))
        state = await agent.ainvoke({"messages": [("user", "go")]})
        assert str(state["messages"][-1].content).startswith("before (pid ")
        srv.restart(signal.SIGKILL)
        model.queue.append(("echo", {"text": "after"}))
        with pytest.raises(McpError, match="Session terminated"):
            await asyncio.wait_for(agent.ainvoke({"messages": [("user", "go")]}), 20)
    assert srv.executions("echo") == 1


# --- with the healing layer ------------------------------------------------------------------------------


@needs_healing
@pytest.mark.parametrize("mode", MODES)
async def test_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer, mode: str
) -> None:
    srv = mcp_fault_server
    async with agent_tools(srv.url, mode) as tools:
        first = ok_text(await call(tools["echo"], text="before"))
        await restart_under(srv)
        started = time.monotonic()
        after = ok_text(await asyncio.wait_for(call(tools["echo"], text="after"), 20))
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ")
        assert pid_in(after) == srv.pid != pid_in(first)
        assert ok_text(await call(tools["echo"], text="again")).startswith("again (pid ")
    print(f"[langchain-mcp-adapters {mode}] first call after the restart answered in {elapsed * 1000:.0f} ms")
    # per call: each call has a fresh session, so nothing is rebuilt
    assert rebuilds.count == (1 if mode == "persistent" else 0), rebuilds


@needs_healing
async def test_20_calls_in_flight_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """Persistent mode: 20 read-only calls (``slow``, annotated readOnlyHint) running on the server when it
    is SIGKILLed: one rebuild for the shared session, all 20 answered by the new process."""
    srv = mcp_fault_server
    async with agent_tools(srv.url, "persistent") as tools:
        ok_text(await call(tools["echo"], text="warm up"))
        calls = [asyncio.ensure_future(call(tools["slow"], seconds=2.0)) for _ in range(20)]
        await wait_until(lambda: srv.executions("slow") >= 20, "the 20 calls to reach the server")
        await restart_under(srv)
        messages = await asyncio.wait_for(asyncio.gather(*calls), 60)
    answers = [ok_text(m) for m in messages]
    assert all(a.startswith("slept 2.0 s (pid ") for a in answers), answers
    assert {pid_in(a) for a in answers} == {srv.pid}
    assert srv.executions("slow") == 40  # each killed in flight, each replayed once (read-only)
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_per_call_mode_20_calls_in_flight_across_a_kill(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """Per-call mode: 20 sessions, each with its ``slow`` call in flight when the server is SIGKILLed. Each
    session is rebuilt once; nothing hangs and nothing runs more than twice (once lost, once replayed).

    A per-call session never sends ``tools/list`` itself (the adapters list the tools once, through another
    session, in ``get_tools()``): the layer knows ``slow`` is read-only from what the server listed to that
    other session, and replays every call.
    """
    srv = mcp_fault_server
    async with agent_tools(srv.url, "per_call") as tools:
        ok_text(await call(tools["echo"], text="warm up"))
        calls = [outcome(call(tools["slow"], seconds=2.0), timeout=60) for _ in range(20)]
        running = asyncio.ensure_future(asyncio.gather(*calls))
        await wait_until(lambda: srv.executions("slow") >= 20, "the 20 calls to reach the server")
        await restart_under(srv)
        results = await asyncio.wait_for(running, 60)
    answered = [ok_text(value) for kind, value in results if kind == "ok"]
    uncertain = [value for kind, value in results if kind == "error"]
    assert all(isinstance(e, McpError) and str(e.error.message).startswith(UNCERTAIN) for e in uncertain), uncertain
    assert all(a.startswith("slept 2.0 s (pid ") and pid_in(a) == srv.pid for a in answered), answered
    assert srv.executions("slow") == 20 + len(answered)  # only the answered ones were sent again, once
    assert rebuilds.count == 20, rebuilds  # one per session that lost a call
    assert uncertain == [], f"{len(uncertain)} of 20 read-only calls answered 'outcome uncertain'"
    assert len(answered) == 20


@needs_healing
@pytest.mark.parametrize("mode", MODES)
async def test_a_write_lost_in_flight_runs_once_and_says_outcome_uncertain(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer, mode: str
) -> None:
    srv = mcp_fault_server
    async with agent_tools(srv.url, mode) as tools:
        ok_text(await call(tools["echo"], text="warm up"))
        back = arm_lost_write(srv)
        started = time.monotonic()
        kind, value = await outcome(call(tools["incr"], key="w"))
        elapsed = time.monotonic() - started
        back.join(30)
        # the SDK's own error type, which langchain-mcp-adapters lets through (not a ToolException)
        assert kind == "error", value
        assert isinstance(value, McpError), repr(value)
        assert str(value.error.message).lower().startswith(UNCERTAIN), value.error
        assert srv.executions("incr") == 1
        assert srv.counter("w") == 1
        # the next calls work: a read, then the write again (the caller's decision, not ours)
        assert ok_text(await asyncio.wait_for(call(tools["echo"], text="next"), 20)).startswith("next (pid ")
        assert ok_text(await call(tools["incr"], key="w")) == "2"
    assert srv.executions("incr") == 2
    print(f"[langchain-mcp-adapters {mode}] the lost write settled as outcome uncertain in {elapsed:.2f} s")
    assert elapsed < SETTLE_SECONDS
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_agent_runs_after_a_restart_and_a_lost_write_ends_the_run(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """A LangChain agent (``create_agent``, a LangGraph graph whose tool node is a ``ToolNode``) with a
    scripted model. After a restart its run answers. A write lost in flight is an SDK error, which the
    ``ToolNode``'s *default* error handling does not catch: the run ends with it (as it did with "Session
    terminated" without the layer); only ``ToolNode(handle_tool_errors=True)`` hands it to the model."""
    create_agent = pytest.importorskip("langchain.agents").create_agent
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    srv = mcp_fault_server
    model = scripted_chat_model()
    async with agent_tools(srv.url, "persistent") as tools:
        agent = create_agent(model, list(tools.values()))

        async def run(name: str, **args: Any) -> str:
            model.queue.append((name, args))
            state = await asyncio.wait_for(agent.ainvoke({"messages": [("user", "go")]}), SETTLE_SECONDS)
            return str(state["messages"][-1].content)

        assert (await run("echo", text="before")).startswith("before (pid ")
        await restart_under(srv)
        assert (await run("echo", text="after")).startswith(f"after (pid {srv.pid})")
        back = arm_lost_write(srv)
        with pytest.raises(McpError, match=f"^{UNCERTAIN}"):
            await run("incr", key="w")
        back.join(30)
        # the same tools under a ToolNode that hands tool errors to the model
        builder = StateGraph(MessagesState)
        builder.add_node("tools", ToolNode(list(tools.values()), handle_tool_errors=True))
        builder.add_edge(START, "tools")
        lenient = builder.compile()
        call = {"name": "incr", "args": {"key": "w"}, "id": "call_lenient", "type": "tool_call"}
        back = arm_lost_write(srv)
        state = await asyncio.wait_for(
            lenient.ainvoke({"messages": [AIMessage(content="", tool_calls=[call])]}), SETTLE_SECONDS
        )
        back.join(30)
        message = state["messages"][-1]
        assert message.status == "error" and UNCERTAIN in text(message), message
    assert srv.executions("incr") == 2  # once per lost call, never replayed
    assert srv.counter("w") == 2
    assert rebuilds.count == 3, rebuilds  # the restart, then each kill


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    """The in-process tests turn the layer on after langchain-mcp-adapters imported the SDK transports;
    here it is on first (persistent mode, where there is a session to lose)."""
    out = run_child(
        child_script(
            ("langchain_mcp_adapters", "langchain_mcp_adapters.sessions"),
            """
            from langchain_mcp_adapters.client import MultiServerMCPClient
            from langchain_mcp_adapters.tools import load_mcp_tools

            async def main():
                with FaultServer() as srv:
                    client = MultiServerMCPClient({"kit": {"transport": "streamable_http", "url": srv.url}})
                    async with client.session("kit") as session:
                        tools = {t.name: t for t in await load_mcp_tools(session)}
                        await tools["echo"].ainvoke({"text": "before"})
                        await asyncio.to_thread(srv.restart, signal.SIGKILL)
                        blocks = await asyncio.wait_for(tools["echo"].ainvoke({"text": "after"}), 20)
                        print("ANSWER", blocks[0]["text"], "SERVER", srv.pid)

            asyncio.run(main())
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    answer, server_pid = line[len("ANSWER ") :].rsplit(" SERVER ", 1)
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
