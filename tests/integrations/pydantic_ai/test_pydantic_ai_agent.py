"""A real pydantic-ai ``Agent`` run (pydantic-ai's own ``FunctionModel`` scripts the model) calls MCP
tools through pydantic-ai's ``MCPToolset`` while the real fault server restarts under it."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import UnexpectedModelBehavior
from pydantic_ai.messages import ToolCallPart
from pydantic_ai_helpers import (
    FASTMCP_MAJOR,
    MCP_MAJOR,
    ScriptedModel,
    rebuilds,
    session_toolset,
)

from mcp_hooks import OutcomeUncertain
from mcp_hooks.testing import FaultServer

pytestmark = pytest.mark.timeout(90)


def _restart_then_call(srv: FaultServer, *calls: ToolCallPart) -> ScriptedModel:
    async def first() -> list[ToolCallPart]:
        await asyncio.to_thread(srv.restart)  # the server restarts while the agent's session is open
        return list(calls)

    return ScriptedModel(first)


async def test_an_agent_run_gets_its_answer_across_a_restart(shim: object, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    toolset = session_toolset(srv.url)
    script = _restart_then_call(srv, ToolCallPart("echo", {"text": "hi"}))
    agent = Agent(script.model(), toolsets=[toolset])
    started = time.monotonic()
    result = await agent.run("say hi through the server")
    print(f"pydantic-ai on fastmcp {FASTMCP_MAJOR}.x/mcp {MCP_MAJOR}.x: run took {time.monotonic() - started:.2f} s")
    assert result.output == f"hi (pid {srv.pid})"
    assert [p.outcome for p in script.returns] == ["success"]
    assert rebuilds(toolset) == 1
    assert ran("echo") == 1
    assert not toolset.client.is_connected()  # the run's exit closed the rebuilt session


async def test_without_the_shim_the_model_retries_a_dead_session(no_shim: None, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    toolset = session_toolset(srv.url, max_retries=2)
    script = _restart_then_call(srv, ToolCallPart("echo", {"text": "hi"}))
    agent = Agent(script.model(), toolsets=[toolset])
    with pytest.raises(UnexpectedModelBehavior, match="exceeded max retries"):
        await agent.run("say hi through the server")
    # the model was told "Session not found/terminated" and called the tool again, on the same dead
    # session, until pydantic-ai gave up; the tool never ran
    assert [p.outcome for p in script.returns] == ["retried", "retried"]
    assert all("session" in str(p.content).lower() for p in script.returns)
    assert ran("echo") == 0


async def test_parallel_tool_calls_share_one_rebuild(shim: object, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    toolset = session_toolset(srv.url)
    calls = [ToolCallPart("echo", {"text": f"t{i}"}) for i in range(4)]
    script = _restart_then_call(srv, *calls)
    agent = Agent(script.model(), toolsets=[toolset])
    result = await agent.run("four at once")
    assert sorted(str(p.content).split()[0] for p in script.returns) == ["t0", "t1", "t2", "t3"]
    assert {p.outcome for p in script.returns} == {"success"}
    assert str(srv.pid) in result.output
    assert rebuilds(toolset) == 1
    assert ran("echo") == 4


async def test_a_write_lost_in_flight_is_reported_to_the_model_not_run_twice(shim: object, srv: FaultServer) -> None:
    ran = srv.executions_from_now()
    toolset = session_toolset(srv.url)

    async def first() -> list[ToolCallPart]:
        srv.kill_during_next_call("incr", when="after")
        srv.revive_when_dead()
        return [ToolCallPart("incr", {"key": "orders-told"})]

    class CheckFirst(ScriptedModel):
        """A model that, told the outcome is uncertain, does not blindly call ``incr`` again."""

        async def __call__(self, messages, info):  # type: ignore[no-untyped-def]
            response = await super().__call__(messages, info)
            if any(isinstance(p, ToolCallPart) for p in response.parts) and self.requests > 1:
                from pydantic_ai.messages import ModelResponse, TextPart

                return ModelResponse(parts=[TextPart("I will check the counter before trying again.")])
            return response

    script = CheckFirst(first)
    agent = Agent(script.model(), toolsets=[toolset])
    result = await agent.run("count one order")
    assert result.output == "I will check the counter before trying again."
    [told] = script.returns
    assert told.outcome == "retried"
    assert "outcome uncertain" in str(told.content)
    assert ran("incr") == 1
    assert srv.counter("orders-told") == 1


async def test_tool_error_behavior_error_gets_outcome_uncertain(shim: object, srv: FaultServer) -> None:
    toolset = session_toolset(srv.url, tool_error_behavior="error")

    async def first() -> list[ToolCallPart]:
        srv.kill_during_next_call("incr", when="after")
        srv.revive_when_dead()
        return [ToolCallPart("incr", {"key": "orders-raised"})]

    agent = Agent(ScriptedModel(first).model(), toolsets=[toolset])
    with pytest.raises(OutcomeUncertain) as caught:
        await agent.run("count one order")
    assert caught.value.tool == "incr"
    assert srv.counter("orders-raised") == 1


async def test_a_held_agent_survives_a_restart_between_runs(shim: object, srv: FaultServer) -> None:
    toolset = session_toolset(srv.url)

    async def call_echo() -> list[ToolCallPart]:
        return [ToolCallPart("echo", {"text": "again"})]

    async with Agent(ScriptedModel(call_echo).model(), toolsets=[toolset]) as agent:
        first = await agent.run("one")
        srv.restart()
        agent_two = Agent(ScriptedModel(call_echo).model(), toolsets=[toolset])
        second = await agent_two.run("two")
        assert first.output != second.output == f"again (pid {srv.pid})"
        assert rebuilds(toolset) == 1
