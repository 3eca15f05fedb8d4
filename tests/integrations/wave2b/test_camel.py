"""camel-ai 0.2 (``camel.toolkits.MCPToolkit`` / ``camel.utils.mcp_client.MCPClient``, mcp 1.x only) against a
real MCP server that restarts or dies mid-call, without and with ``mcp_hooks.instrument("mcp")``.

The tool path is the one a ``ChatAgent`` runs for a model's tool call: ``MCPToolkit.get_tools()`` gives one
``FunctionTool`` per MCP tool, built by ``MCPClient.generate_function_from_mcp_tool``
(camel/utils/mcp_client.py), whose ``func.async_call`` (the closure ``async_mcp_call``) awaits
``self._session.call_tool(name, kwargs)`` on the client's one ``ClientSession`` and re-raises any error.
``ChatAgent._aexecute_tool`` (camel/agents/chat_agent.py) awaits ``tool.func.async_call(**args)`` and turns
an exception into the text the model reads: ``"Tool execution failed: Error executing async tool 'x':
<message>"``. The transport (the SDK's ``streamablehttp_client``) and the session are entered by
``MCPClient._try_connect`` in a task of camel's own (``_establish_connection``), with a read timeout of
10 s (``MCPClient(timeout=None)``); ``MCPToolkit`` retries only the connect step.

The agent-level tests run ``ChatAgent.astep`` over camel's own test model, ``camel.models.StubModel``,
scripted to ask for one tool call and then to answer with what the tool gave it (no LLM).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
    twenty_reads_across_a_kill,
)

pytest.importorskip("camel.toolkits")

from camel.toolkits import FunctionTool, MCPToolkit
from camel.utils.mcp_client import MCPClient
from mcp.shared.exceptions import McpError

from mcp_hooks.testing import FaultServer

pytestmark = [
    pytest.mark.timeout(120),
    SDK_DEPRECATION,
    # FunctionTool warns that the kit's tools have no parameter descriptions (the repo's "error" filter
    # would make MCPToolkit.get_tools() drop every tool)
    pytest.mark.filterwarnings("ignore:Parameter description is missing:UserWarning"),
]


@pytest.fixture(autouse=True)
def collect_what_the_test_left() -> Iterator[None]:
    """Collect the test's garbage in its own teardown, where the filter above applies (else the leaked stream
    is reported at the end of the session, which fails the run)."""
    yield
    gc.collect()


def camel_client(url: str) -> MCPClient:
    return MCPClient({"url": url, "type": "streamable_http"})


@contextlib.asynccontextmanager
async def toolkit(url: str) -> AsyncIterator[tuple[MCPToolkit, dict[str, FunctionTool]]]:
    """A connected ``MCPToolkit`` with one server, and its tools by name (what a ``ChatAgent`` is given)."""
    kit = MCPToolkit(clients=[camel_client(url)])
    await asyncio.wait_for(kit.connect(), 60)
    try:
        yield kit, {tool.get_function_name(): tool for tool in kit.get_tools()}
    finally:
        await asyncio.wait_for(kit.disconnect(), 30)


async def call(tool: FunctionTool, **args: Any) -> Any:
    """What ``ChatAgent._aexecute_tool`` awaits for an MCP tool."""
    return await asyncio.wait_for(tool.func.async_call(**args), SETTLE_SECONDS)


# --- without the healing layer: what users of camel get today ----------------------------------------------


async def test_baseline_every_call_fails_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    async with toolkit(srv.url) as (kit, tools):
        assert (await call(tools["echo"], text="before")).startswith("before (pid ")
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back; the toolkit still says it is connected; every call fails
            kind, error = await outcome(call(tools["echo"], text=f"after {attempt}"))
            assert kind == "error" and isinstance(error, McpError), repr(error)
            assert str(error) == "Session terminated"
        assert kit.is_connected
    assert srv.executions("echo") == 1


async def test_baseline_a_write_lost_in_flight_times_out(no_healing: None, mcp_fault_server: FaultServer) -> None:
    """mcp 1.x does not settle a request whose connection died: the call waits for camel's read timeout
    (10 s) although the server is back, and then says it timed out (not that the write may have run)."""
    srv = mcp_fault_server
    async with toolkit(srv.url) as (_, tools):
        await call(tools["echo"], text="warm up")
        back = arm_lost_write(srv)
        kind, error = await outcome(call(tools["incr"], key="w"))
        back.join(30)
        assert kind == "error" and isinstance(error, McpError), repr(error)
        assert str(error).startswith("Timed out while waiting for response"), repr(error)
        assert UNCERTAIN not in str(error)
    assert srv.executions("incr") == 1


# --- with the healing layer ------------------------------------------------------------------------------


@needs_healing
async def test_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with toolkit(srv.url) as (kit, tools):
        first = await call(tools["echo"], text="before")
        session = kit.clients[0].session
        await restart_under(srv)
        started = time.monotonic()
        after = await call(tools["echo"], text="after")
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ")
        assert pid_in(after) == srv.pid != pid_in(first)
        # the toolkit's direct API, on the same healed session
        direct = await asyncio.wait_for(kit.call_tool("echo", {"text": "direct"}), 20)
        assert direct.content[0].text.startswith("direct (pid ")
        assert kit.clients[0].session is session  # healed beneath camel: its session object never changed
    print(f"[camel] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_20_calls_in_flight_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with toolkit(srv.url) as (_, tools):
        await call(tools["echo"], text="warm up")
        await twenty_reads_across_a_kill(srv, lambda: call(tools["slow"], seconds=2.0))
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_a_write_lost_in_flight_runs_once_and_says_outcome_uncertain(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with toolkit(srv.url) as (_, tools):
        await call(tools["echo"], text="warm up")
        back = arm_lost_write(srv)
        started = time.monotonic()
        kind, error = await outcome(call(tools["incr"], key="w"))
        elapsed = time.monotonic() - started
        back.join(30)
        # async_call re-raises the SDK's error; ChatAgent shows the model its message
        assert kind == "error" and isinstance(error, McpError), repr(error)
        assert str(error).startswith(UNCERTAIN), repr(error)
        assert srv.executions("incr") == 1
        assert srv.counter("w") == 1
        assert (await call(tools["echo"], text="next")).startswith("next (pid ")
        assert await call(tools["incr"], key="w") == "2"
    assert srv.executions("incr") == 2
    print(f"[camel] the lost write settled as outcome uncertain in {elapsed:.2f} s")
    assert elapsed < SETTLE_SECONDS
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_the_tool_list_after_a_restart_is_the_new_servers(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """``MCPClient.list_mcp_tools()`` (camel's live listing; ``get_tools()`` serves the list cached at connect)
    right after a restart that changed the server's tools lists the new process's tools."""
    srv = mcp_fault_server
    async with toolkit(srv.url) as (kit, tools):
        client = kit.clients[0]
        before = {tool.name for tool in (await asyncio.wait_for(client.list_mcp_tools(), 20)).tools}
        assert before == set(tools) and "extra" not in before
        srv.offer_extra_tool(True)
        await restart_under(srv)
        listed = (await asyncio.wait_for(client.list_mcp_tools(), 20)).tools
        assert {tool.name for tool in listed} == before | {"extra"}
        (extra,) = [tool for tool in listed if tool.name == "extra"]
        answer = await call(FunctionTool(client.generate_function_from_mcp_tool(extra)))
        assert answer.startswith(f"extra (pid {srv.pid})")
    assert rebuilds.count == 1, rebuilds


# --- the agent: ChatAgent over camel's StubModel, scripted -------------------------------------------------


def scripted_model() -> Any:
    """camel's ``StubModel`` (its model for unit tests) answering from a script: while ``queue`` holds
    ``(name, args)`` it asks for that tool call; after a tool answered it says what the tool message read."""
    from camel.models.stub_model import StubModel
    from camel.types import ModelType
    from openai.types.chat import ChatCompletion, ChatCompletionMessage
    from openai.types.chat.chat_completion import Choice
    from openai.types.chat.chat_completion_message_tool_call import ChatCompletionMessageToolCall, Function
    from openai.types.completion_usage import CompletionUsage

    class ScriptedStubModel(StubModel):
        queue: list[tuple[str, dict[str, Any]]]

        def _answer(self, messages: list[Any]) -> ChatCompletion:
            last = messages[-1]
            if self.queue and last.get("role") != "tool":
                name, args = self.queue.pop(0)
                call = ChatCompletionMessageToolCall(
                    id=f"call_{uuid.uuid4().hex[:8]}",
                    type="function",
                    function=Function(name=name, arguments=json.dumps(args)),
                )
                message = ChatCompletionMessage(role="assistant", content=None, tool_calls=[call])
                finish = "tool_calls"
            else:
                message = ChatCompletionMessage(role="assistant", content=str(last.get("content")))
                finish = "stop"
            usage = CompletionUsage(completion_tokens=1, prompt_tokens=1, total_tokens=2)
            choice = Choice(finish_reason=finish, index=0, message=message, logprobs=None)  # type: ignore[arg-type]
            return ChatCompletion(
                id="scripted", model="stub", object="chat.completion", created=0, choices=[choice], usage=usage
            )

        async def _arun(self, messages: list[Any], response_format: Any = None, tools: Any = None) -> Any:
            return self._answer(messages)

        def _run(self, messages: list[Any], response_format: Any = None, tools: Any = None) -> Any:
            return self._answer(messages)

    model = ScriptedStubModel(ModelType.STUB)
    model.queue = []
    return model


@contextlib.asynccontextmanager
async def chat_agent(url: str) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """``await run(tool, **args)``: one ``ChatAgent.astep`` in which the model asks for that call; the text
    the agent recorded as the tool's result (what the model read)."""
    from camel.agents import ChatAgent

    model = scripted_model()
    async with toolkit(url) as (_, tools):
        agent = ChatAgent(system_message="You call tools.", model=model, tools=list(tools.values()))

        async def run(name: str, **args: Any) -> str:
            model.queue.append((name, args))
            response = await asyncio.wait_for(agent.astep(f"call {name}"), SETTLE_SECONDS)
            (record,) = response.info["tool_calls"]
            assert record.tool_name == name, record
            assert response.msgs[0].content == str(record.result)  # the scripted model says what it read
            return str(record.result)

        yield run


async def test_baseline_chat_agent_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    async with chat_agent(srv.url) as run:
        assert (await run("echo", text="before")).startswith("before (pid ")
        srv.restart(signal.SIGKILL)
        answer = await run("echo", text="after")
        assert answer == "Tool execution failed: Error executing async tool 'echo': Session terminated"
    assert srv.executions("echo") == 1


@needs_healing
async def test_chat_agent_after_a_restart_and_a_lost_write(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with chat_agent(srv.url) as run:
        assert (await run("echo", text="before")).startswith("before (pid ")
        await restart_under(srv)
        assert (await run("echo", text="after")).startswith(f"after (pid {srv.pid})")
        back = arm_lost_write(srv)
        answer = await run("incr", key="w")
        back.join(30)
        assert answer.startswith(f"Tool execution failed: Error executing async tool 'incr': {UNCERTAIN}"), answer
        assert await run("incr", key="w") == "2"
    assert srv.executions("incr") == 2
    assert rebuilds.count == 2, rebuilds  # the restart, then the kill


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    out = run_child(
        child_script(
            ("camel.toolkits", "camel.utils.mcp_client"),
            """
            from camel.toolkits import MCPToolkit
            from camel.utils.mcp_client import MCPClient

            async def main():
                with FaultServer() as srv:
                    kit = MCPToolkit(clients=[MCPClient({"url": srv.url, "type": "streamable_http"})])
                    await kit.connect()
                    try:
                        echo = {t.get_function_name(): t for t in kit.get_tools()}["echo"]
                        await echo.func.async_call(text="before")
                        await asyncio.to_thread(srv.restart, signal.SIGKILL)
                        answer = await asyncio.wait_for(echo.func.async_call(text="after"), 20)
                        print("ANSWER", answer, "SERVER", srv.pid)
                    finally:
                        await kit.disconnect()

            asyncio.run(main())
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    answer, server_pid = line[len("ANSWER ") :].rsplit(" SERVER ", 1)
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
