"""smolagents 1.x over mcpadapt (mcp 1.x only) against a real MCP server that restarts or dies mid-call,
without and with ``mcp_hooks.instrument("mcp")``.

The tool path: ``ToolCollection.from_mcp(...)`` (smolagents/tools.py) and ``smolagents.MCPClient``
(smolagents/mcp_client.py) both enter ``mcpadapt.core.MCPAdapt`` synchronously: it starts a daemon
thread with its own event loop (``MCPAdapt._run_loop``), which owns the transport (the SDK's
``streamablehttp_client``) and the ``ClientSession`` for as long as the collection is open. Each MCP
tool becomes an ``MCPAdaptTool`` (mcpadapt/smolagents_adapter.py) whose ``forward`` calls
``partial(_sync_call_tool, session, name)`` (mcpadapt/core.py): ``run_coroutine_threadsafe(
session.call_tool(...), adapter.loop).result()``, with no timeout, and the session was built with none
either (``client_session_timeout_seconds=5`` is an ``int``, which ``mcptools`` only honours as a
``float``). An error raises out of ``forward``; a ``ToolCallingAgent`` turns it into
``AgentToolExecutionError("Error executing tool 'x' with arguments {...}: McpError: <message>\\nPlease
try again or use another tool")``, which the model reads as ``"Error:\\n..."`` on its next turn.

The tests call the tool object as the agent does (``tool(**arguments, sanitize_inputs_outputs=True)``)
from their own threads, and run a ``ToolCallingAgent`` over a scripted ``smolagents.models.Model``
subclass (no LLM). ``MCPAdapt.tools()`` (what ``get_tools`` will do, per smolagents' own note) lists the
tools again on the same session.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
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
    run_child,
)

pytest.importorskip("mcpadapt.core")
pytest.importorskip("smolagents")

from mcp.shared.exceptions import McpError
from mcpadapt.core import MCPAdapt
from mcpadapt.smolagents_adapter import SmolAgentsAdapter
from smolagents import ToolCallingAgent, ToolCollection
from smolagents.models import ChatMessage, ChatMessageToolCall, ChatMessageToolCallFunction, MessageRole, Model
from smolagents.tools import Tool

from mcp_hooks.testing import FaultServer

pytestmark = [pytest.mark.timeout(120), SDK_DEPRECATION]


@pytest.fixture(autouse=True)
def collect_what_the_test_left() -> Iterator[None]:
    """Collect the test's garbage in its own teardown, where the filter above applies (else the leaked stream
    is reported at the end of the session, which fails the run)."""
    yield
    gc.collect()


def params(url: str) -> dict[str, Any]:
    return {"url": url, "transport": "streamable-http"}


@contextlib.contextmanager
def collection(url: str) -> Iterator[dict[str, Tool]]:
    """``ToolCollection.from_mcp`` over streamable HTTP: the tools by name, live while the block runs."""
    with ToolCollection.from_mcp(params(url), trust_remote_code=True, structured_output=False) as tools:
        yield {tool.name: tool for tool in tools.tools}


def started(tool: Tool, **args: Any) -> concurrent.futures.Future[Any]:
    """Call ``tool`` as smolagents' agents do, on a thread of its own (a call left waiting forever cannot
    block the test's shutdown)."""
    box: concurrent.futures.Future[Any] = concurrent.futures.Future()

    def run() -> None:
        try:
            box.set_result(tool(**args, sanitize_inputs_outputs=True))
        except BaseException as exc:
            box.set_exception(exc)

    threading.Thread(target=run, name=f"smolagents-call-{tool.name}", daemon=True).start()
    return box


def call(tool: Tool, **args: Any) -> Any:
    return started(tool, **args).result(SETTLE_SECONDS)


def failure(tool: Tool, **args: Any) -> BaseException:
    with pytest.raises(Exception) as caught:
        call(tool, **args)
    return caught.value


# --- without the healing layer: what users of smolagents get today -----------------------------------------


def test_baseline_every_call_fails_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    with collection(srv.url) as tools:
        assert call(tools["echo"], text="before").startswith("before (pid ")
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back; the adapter's thread is alive; every call raises
            error = failure(tools["echo"], text=f"after {attempt}")
            assert isinstance(error, McpError) and str(error) == "Session terminated", repr(error)
    assert srv.executions("echo") == 1


def test_baseline_a_write_lost_in_flight_is_left_waiting(no_healing: None, mcp_fault_server: FaultServer) -> None:
    """mcp 1.x does not settle a request whose connection died, and mcpadapt waits with no timeout at all:
    the call would wait forever although the server is back (it ends when the collection is closed)."""
    srv = mcp_fault_server
    with collection(srv.url) as tools:
        call(tools["echo"], text="warm up")
        back = arm_lost_write(srv)
        pending = started(tools["incr"], key="w")
        with pytest.raises(concurrent.futures.TimeoutError):
            pending.result(5.0)
        back.join(30)
    assert srv.executions("incr") == 1


# --- with the healing layer ------------------------------------------------------------------------------


@needs_healing
def test_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with collection(srv.url) as tools:
        first = call(tools["echo"], text="before")
        srv.restart(signal.SIGKILL)
        begun = time.monotonic()
        after = call(tools["echo"], text="after")
        elapsed = time.monotonic() - begun
        assert after.startswith("after (pid ")
        assert pid_in(after) == srv.pid != pid_in(first)
        assert call(tools["echo"], text="again").startswith("again (pid ")
    print(f"[smolagents] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
def test_20_calls_in_flight_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with collection(srv.url) as tools:
        call(tools["echo"], text="warm up")
        calls = [started(tools["slow"], seconds=2.0) for _ in range(20)]
        give_up = time.monotonic() + 20
        while srv.executions("slow") < 20:
            assert time.monotonic() < give_up, "the 20 calls did not reach the server"
            time.sleep(0.02)
        srv.restart(signal.SIGKILL)
        answers = [c.result(60) for c in calls]
    assert all(a.startswith("slept 2.0 s (pid ") for a in answers), answers
    assert {pid_in(a) for a in answers} == {srv.pid}
    assert srv.executions("slow") == 40  # each killed in flight, each replayed once (read-only)
    assert rebuilds.count == 1, rebuilds


@needs_healing
def test_a_write_lost_in_flight_runs_once_and_says_outcome_uncertain(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with collection(srv.url) as tools:
        call(tools["echo"], text="warm up")
        back = arm_lost_write(srv)
        begun = time.monotonic()
        error = failure(tools["incr"], key="w")
        elapsed = time.monotonic() - begun
        back.join(30)
        # forward raises the SDK's error, whose message is what the agent shows the model
        assert isinstance(error, McpError) and str(error).startswith(UNCERTAIN), repr(error)
        assert srv.executions("incr") == 1
        assert srv.counter("w") == 1
        assert call(tools["echo"], text="next").startswith("next (pid ")
        assert call(tools["incr"], key="w") == "2"
    assert srv.executions("incr") == 2
    print(f"[smolagents] the lost write settled as outcome uncertain in {elapsed:.2f} s")
    assert elapsed < SETTLE_SECONDS
    assert rebuilds.count == 1, rebuilds


@needs_healing
def test_the_tool_list_after_a_restart_is_the_new_servers(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """``MCPAdapt.tools()`` (mcpadapt's "get latest tools", on the adapter's one session) right after a
    restart that changed the server's tools lists the new process's tools, and the new tool answers."""
    srv = mcp_fault_server
    adapter = MCPAdapt(params(srv.url), SmolAgentsAdapter(structured_output=False))
    adapter.start()
    try:
        before = {tool.name for tool in adapter.tools()}
        assert {"echo", "incr", "slow"} <= before and "extra" not in before
        srv.offer_extra_tool(True)
        srv.restart(signal.SIGKILL)
        tools = {tool.name: tool for tool in adapter.tools()}
        assert set(tools) == before | {"extra"}
        assert call(tools["extra"]).startswith(f"extra (pid {srv.pid})")
    finally:
        adapter.close()
    assert rebuilds.count == 1, rebuilds


# --- the agent: ToolCallingAgent over a scripted model -----------------------------------------------------


class ScriptedModel(Model):
    """No LLM: each run asks for the tool call queued on ``queue`` as ``(name, args)``, then gives as its
    final answer what it read on the next turn (``"Observation:\\n<answer>"`` or ``"Error:\\n<error>..."``)."""

    def __init__(self) -> None:
        super().__init__(model_id="wave2b-scripted")
        self.queue: list[tuple[str, dict[str, Any]]] = []

    def generate(self, messages: list[Any], **kwargs: Any) -> ChatMessage:
        if self.queue:
            name, args = self.queue.pop(0)
        else:
            name, args = "final_answer", {"answer": text_of(messages[-1])}
        function = ChatMessageToolCallFunction(name=name, arguments=args)
        tool_call = ChatMessageToolCall(id=f"call_{uuid.uuid4().hex[:8]}", type="function", function=function)
        return ChatMessage(role=MessageRole.ASSISTANT, content="", tool_calls=[tool_call])


def text_of(message: Any) -> str:
    content = message.content if isinstance(message, ChatMessage) else message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content)


@contextlib.contextmanager
def agent_over(url: str) -> Iterator[Any]:
    """``run(tool, **args)``: a ``ToolCallingAgent`` run in which the model asks for that call; its final
    answer is what the model read about the call."""
    model = ScriptedModel()
    with collection(url) as tools:
        agent = ToolCallingAgent(tools=list(tools.values()), model=model, max_steps=3, verbosity_level=0)

        def run(name: str, **args: Any) -> str:
            model.queue.append((name, args))
            box: concurrent.futures.Future[Any] = concurrent.futures.Future()
            threading.Thread(target=lambda: box.set_result(agent.run(f"call {name}")), daemon=True).start()
            answer = box.result(SETTLE_SECONDS)
            assert isinstance(answer, str), answer
            return answer

        yield run


def test_baseline_tool_calling_agent_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    with agent_over(srv.url) as run:
        assert run("echo", text="before").startswith("Observation:\nbefore (pid ")
        srv.restart(signal.SIGKILL)
        answer = run("echo", text="after")
        assert answer.startswith(
            "Error:\nError executing tool 'echo' with arguments {'text': 'after'}: McpError: Session terminated\n"
        ), answer
    assert srv.executions("echo") == 1


@needs_healing
def test_tool_calling_agent_after_a_restart_and_a_lost_write(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    with agent_over(srv.url) as run:
        assert run("echo", text="before").startswith("Observation:\nbefore (pid ")
        srv.restart(signal.SIGKILL)
        assert run("echo", text="after").startswith(f"Observation:\nafter (pid {srv.pid})")
        back = arm_lost_write(srv)
        answer = run("incr", key="w")
        back.join(30)
        assert answer.startswith(
            f"Error:\nError executing tool 'incr' with arguments {{'key': 'w'}}: McpError: {UNCERTAIN}"
        )
        assert run("incr", key="w") == "Observation:\n2"
    assert srv.executions("incr") == 2
    assert rebuilds.count == 2, rebuilds  # the restart, then the kill


@needs_healing
def test_closing_the_collection_leaves_no_stream_unclosed(healing: None, mcp_fault_server: FaultServer) -> None:
    """``MCPAdapt.close()`` ends the session by cancelling the task that owns it (then closes its loop):
    the healing layer closes its streams on that cancelled exit too."""
    with collection(mcp_fault_server.url) as tools:
        assert call(tools["echo"], text="once").startswith("once (pid ")
    del tools
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        gc.collect()
    unclosed = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
    assert unclosed == []


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    out = run_child(
        child_script(
            ("smolagents", "mcpadapt", "mcpadapt.core"),
            """
            from smolagents import MCPClient

            with FaultServer() as srv:
                with MCPClient({"url": srv.url, "transport": "streamable-http"}, structured_output=False) as tools:
                    echo = {t.name: t for t in tools}["echo"]
                    echo(text="before")
                    srv.restart(signal.SIGKILL)
                    print("ANSWER", echo(text="after"), "SERVER", srv.pid)
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    answer, server_pid = line[len("ANSWER ") :].rsplit(" SERVER ", 1)
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
