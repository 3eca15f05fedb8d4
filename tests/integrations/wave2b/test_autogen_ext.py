"""autogen-ext 0.7 (``autogen_ext.tools.mcp.McpWorkbench``, mcp 1.x only) against a real MCP server that
restarts or dies mid-call, without and with ``mcp_hooks.instrument("mcp")``.

The tool path is the one an autogen ``AssistantAgent(workbench=...)`` runs for a model's function call:
``McpWorkbench.call_tool(name, arguments)`` (autogen_ext/tools/mcp/_workbench.py) asks its
``McpSessionActor`` (autogen_ext/tools/mcp/_actor.py) for the call. The actor's own task
(``_run_actor``) owns the transport and the ``ClientSession`` (``create_mcp_server_session``,
_session.py: the SDK's ``streamablehttp_client`` for ``StreamableHttpServerParams``) and hands back the
un-awaited ``session.call_tool(...)`` coroutine, which the caller awaits. ``call_tool`` catches every
exception and returns ``ToolResult(is_error=True, result=[TextResultContent(str(error) + "\\n")])``
(``_format_errors``), which is what the agent gives the model. ``McpWorkbench.list_tools`` lists the
tools again on every agent turn.

The agent-level tests run ``AssistantAgent`` over autogen's own offline model,
``autogen_ext.models.replay.ReplayChatCompletionClient``, scripted to ask for one tool call per run
(no LLM); with ``reflect_on_tool_use=False`` the run's last message is the tool's answer as the model
would read it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
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

pytest.importorskip("autogen_ext.tools.mcp")

from autogen_core.tools import ToolResult
from autogen_ext.tools.mcp import McpWorkbench, StreamableHttpServerParams

from mcp_hooks.testing import FaultServer

pytestmark = [pytest.mark.timeout(120), SDK_DEPRECATION]


@contextlib.asynccontextmanager
async def workbench(url: str) -> AsyncIterator[McpWorkbench]:
    wb = McpWorkbench(StreamableHttpServerParams(url=url))
    await asyncio.wait_for(wb.start(), 30)
    try:
        yield wb
    finally:
        await asyncio.wait_for(wb.stop(), 30)


def text(result: ToolResult) -> str:
    return "".join(str(getattr(part, "content", "")) for part in result.result)


async def ok(call: Awaitable[ToolResult]) -> str:
    result = await asyncio.wait_for(call, SETTLE_SECONDS)
    assert not result.is_error, result
    return text(result)


async def tool_names(wb: McpWorkbench) -> set[str]:
    return {schema["name"] for schema in await asyncio.wait_for(wb.list_tools(), 20)}


# --- without the healing layer: what users of autogen get today ---------------------------------------------


async def test_baseline_every_call_fails_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    srv = mcp_fault_server
    async with workbench(srv.url) as wb:
        await ok(wb.call_tool("echo", {"text": "before"}))
        srv.restart(signal.SIGKILL)
        for attempt in range(2):  # the server is back; every call on this workbench fails
            result = await asyncio.wait_for(wb.call_tool("echo", {"text": f"after {attempt}"}), 20)
            assert result.is_error, result
            assert text(result) == "Session terminated\n"
        with pytest.raises(Exception, match="Session terminated"):  # listing the tools (every agent turn) too
            await asyncio.wait_for(wb.list_tools(), 20)
    assert srv.executions("echo") == 1


async def test_baseline_a_write_lost_in_flight_is_left_waiting(no_healing: None, mcp_fault_server: FaultServer) -> None:
    """mcp 1.x does not settle a request whose connection died: the call waits for the read timeout
    (``StreamableHttpServerParams.sse_read_timeout``: 300 s) although the server is back."""
    srv = mcp_fault_server
    async with workbench(srv.url) as wb:
        await ok(wb.call_tool("echo", {"text": "warm up"}))
        back = arm_lost_write(srv)
        assert await still_pending_after(wb.call_tool("incr", {"key": "w"}))
        back.join(30)
    assert srv.executions("incr") == 1


# --- with the healing layer ------------------------------------------------------------------------------


@needs_healing
async def test_next_call_answers_after_a_restart(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with workbench(srv.url) as wb:
        first = await ok(wb.call_tool("echo", {"text": "before"}))
        actor = wb._actor
        await restart_under(srv)
        started = time.monotonic()
        after = await ok(wb.call_tool("echo", {"text": "after"}))
        elapsed = time.monotonic() - started
        assert after.startswith("after (pid ")
        assert pid_in(after) == srv.pid != pid_in(first)
        assert (await ok(wb.call_tool("echo", {"text": "again"}))).startswith("again (pid ")
        assert wb._actor is actor  # healed beneath the workbench: its actor (and session) never noticed
    print(f"[autogen-ext] first call after the restart answered in {elapsed * 1000:.0f} ms")
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_20_calls_in_flight_across_a_kill_all_answer_with_one_rebuild(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with workbench(srv.url) as wb:
        await ok(wb.call_tool("echo", {"text": "warm up"}))
        calls = [asyncio.ensure_future(wb.call_tool("slow", {"seconds": 2.0})) for _ in range(20)]
        await wait_until(lambda: srv.executions("slow") >= 20, "the 20 calls to reach the server")
        await restart_under(srv)
        results = await asyncio.wait_for(asyncio.gather(*calls), 60)
    answers = [text(r) for r in results]
    assert not any(r.is_error for r in results), answers
    assert all(a.startswith("slept 2.0 s (pid ") for a in answers), answers
    assert {pid_in(a) for a in answers} == {srv.pid}
    assert srv.executions("slow") == 40  # each killed in flight, each replayed once (read-only)
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_a_write_lost_in_flight_runs_once_and_says_outcome_uncertain(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    srv = mcp_fault_server
    async with workbench(srv.url) as wb:
        await ok(wb.call_tool("echo", {"text": "warm up"}))
        back = arm_lost_write(srv)
        started = time.monotonic()
        kind, result = await outcome(wb.call_tool("incr", {"key": "w"}))
        elapsed = time.monotonic() - started
        back.join(30)
        # McpWorkbench turns the SDK's error into the ToolResult the agent hands the model
        assert kind == "ok", result
        assert result.is_error, result
        assert text(result).startswith(UNCERTAIN), result
        assert srv.executions("incr") == 1
        assert srv.counter("w") == 1
        assert (await ok(wb.call_tool("echo", {"text": "next"}))).startswith("next (pid ")
        assert await ok(wb.call_tool("incr", {"key": "w"})) == "2"
    assert srv.executions("incr") == 2
    print(f"[autogen-ext] the lost write settled as outcome uncertain in {elapsed:.2f} s")
    assert elapsed < SETTLE_SECONDS
    assert rebuilds.count == 1, rebuilds


@needs_healing
async def test_the_tool_list_after_a_restart_is_the_new_servers(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """``McpWorkbench.list_tools`` (what the agent offers the model on each turn) right after a restart that
    changed the server's tools: the healed session lists the new process's tools, and the new tool answers."""
    srv = mcp_fault_server
    async with workbench(srv.url) as wb:
        before = await tool_names(wb)
        assert {"echo", "incr", "slow"} <= before and "extra" not in before
        srv.offer_extra_tool(True)
        await restart_under(srv)
        assert await tool_names(wb) == before | {"extra"}
        assert (await ok(wb.call_tool("extra"))).startswith(f"extra (pid {srv.pid})")
    assert rebuilds.count == 1, rebuilds


# --- the agent: AssistantAgent over autogen's replay model -------------------------------------------------


@contextlib.asynccontextmanager
async def assistant(url: str) -> AsyncIterator[tuple[Callable[..., Awaitable[tuple[str, bool]]], Any]]:
    """An ``AssistantAgent`` with the workbench; ``await run(tool, **args)`` scripts the replay model to ask
    for that call and runs the agent: ``(what the model would read, is_error)``. Also the model, whose
    ``create_calls[-1]["tools"]`` are the tools the agent offered it."""
    from autogen_agentchat.agents import AssistantAgent
    from autogen_agentchat.messages import ToolCallExecutionEvent, ToolCallSummaryMessage
    from autogen_core import FunctionCall
    from autogen_core.models import CreateResult, ModelFamily, ModelInfo, RequestUsage
    from autogen_ext.models.replay import ReplayChatCompletionClient

    info = ModelInfo(
        vision=False, function_calling=True, json_output=False, family=ModelFamily.UNKNOWN, structured_output=False
    )
    model = ReplayChatCompletionClient([], model_info=info)
    async with workbench(url) as wb:
        agent = AssistantAgent("assistant", model_client=model, workbench=wb, reflect_on_tool_use=False)

        async def run(name: str, **args: Any) -> tuple[str, bool]:
            call = FunctionCall(id=f"call_{uuid.uuid4().hex[:8]}", name=name, arguments=json.dumps(args))
            usage = RequestUsage(prompt_tokens=0, completion_tokens=0)
            model.chat_completions.append(
                CreateResult(finish_reason="function_calls", content=[call], usage=usage, cached=False)
            )
            result = await asyncio.wait_for(agent.run(task=f"call {name}"), SETTLE_SECONDS)
            (executed,) = [m for m in result.messages if isinstance(m, ToolCallExecutionEvent)]
            (answer,) = executed.content
            summary = result.messages[-1]
            assert isinstance(summary, ToolCallSummaryMessage), result.messages
            assert summary.content == answer.content
            return answer.content, bool(answer.is_error)

        yield run, model


def offered(model: Any) -> set[str]:
    return {tool["name"] for tool in model.create_calls[-1]["tools"]}


async def test_baseline_assistant_agent_after_a_restart(no_healing: None, mcp_fault_server: FaultServer) -> None:
    """``AssistantAgent.run``: after a restart the agent cannot even list the tools for the model's turn; the
    run raises (autogen wraps the workbench's error)."""
    srv = mcp_fault_server
    async with assistant(srv.url) as (run, _):
        answer, is_error = await run("echo", text="before")
        assert answer.startswith("before (pid ") and not is_error
        srv.restart(signal.SIGKILL)
        kind, value = await outcome(run("echo", text="after"))
        assert kind == "error" and "Session terminated" in str(value), repr(value)
    assert srv.executions("echo") == 1


@needs_healing
async def test_assistant_agent_after_a_restart_a_changed_tool_list_and_a_lost_write(
    healing: None, rebuilds: RebuildCounter, mcp_fault_server: FaultServer
) -> None:
    """``AssistantAgent.run`` with the replay model: after a restart that added a tool, the model is offered
    the new tool and its call answers; a write lost in flight runs once and the model reads that the outcome
    is uncertain; the next write answers."""
    srv = mcp_fault_server
    async with assistant(srv.url) as (run, model):
        answer, is_error = await run("echo", text="before")
        assert answer.startswith("before (pid ") and not is_error
        assert "extra" not in offered(model)
        srv.offer_extra_tool(True)
        await restart_under(srv)
        answer, is_error = await run("extra")
        assert "extra" in offered(model)
        assert answer.startswith(f"extra (pid {srv.pid})") and not is_error
        back = arm_lost_write(srv)
        answer, is_error = await run("incr", key="w")
        back.join(30)
        assert is_error and answer.startswith(UNCERTAIN), answer
        answer, is_error = await run("incr", key="w")
        assert answer == "2" and not is_error
    assert srv.executions("incr") == 2
    assert rebuilds.count == 2, rebuilds  # the restart, then the kill


@needs_healing
def test_instrument_before_the_framework_is_imported() -> None:
    out = run_child(
        child_script(
            ("autogen_ext.tools.mcp", "autogen_ext.tools.mcp._session"),
            """
            from autogen_ext.tools.mcp import McpWorkbench, StreamableHttpServerParams

            async def main():
                with FaultServer() as srv:
                    wb = McpWorkbench(StreamableHttpServerParams(url=srv.url))
                    await wb.start()
                    try:
                        await wb.call_tool("echo", {"text": "before"})
                        await asyncio.to_thread(srv.restart, signal.SIGKILL)
                        result = await asyncio.wait_for(wb.call_tool("echo", {"text": "after"}), 20)
                        print("ANSWER", result.is_error, result.result[0].content, "SERVER", srv.pid)
                    finally:
                        await wb.stop()

            asyncio.run(main())
            """,
        )
    )
    line = next(line for line in out.splitlines() if line.startswith("ANSWER "))
    is_error, rest = line[len("ANSWER ") :].split(" ", 1)
    answer, server_pid = rest.rsplit(" SERVER ", 1)
    assert is_error == "False", line
    assert answer.startswith("after (pid ") and pid_in(answer) == int(server_pid)
