"""The pydantic-ai shim and ``mcp_hooks.instrument("mcp")`` on together (what ``mcp_hooks.instrument()``
and ``mcp-hooks run`` turn on): the toolset's fastmcp client session is the shims' to heal (the fastmcp
integration, which the pydantic-ai one turns on, opens it under ``bypass()``), so one loss is rebuilt
once, by the shim, and the SDK healing beneath stays out of it.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo
from pydantic_ai_helpers import ScriptedModel, rebuilds, session_toolset

from mcp_hooks.testing import FaultServer
from mcp_hooks.testing.events import RecoveryEvents

pytestmark = pytest.mark.timeout(90)


async def test_an_agent_run_across_a_restart_is_rebuilt_once_by_the_shim(
    shim: object, sdk_healing: None, mcp_recovery_events: RecoveryEvents, srv: FaultServer
) -> None:
    ran = srv.executions_from_now()
    toolset = session_toolset(srv.url)

    async def restart_then_call() -> list[ToolCallPart]:
        await asyncio.to_thread(srv.restart)  # the server restarts while the agent's session is open
        await asyncio.sleep(0.5)  # a rebuild beneath the session would have started by now
        return [ToolCallPart("echo", {"text": "hi"})]

    script = ScriptedModel(restart_then_call)
    result = await Agent(script.model(), toolsets=[toolset]).run("say hi through the server")
    assert result.output == f"hi (pid {srv.pid})"
    assert [p.outcome for p in script.returns] == ["success"]
    assert rebuilds(toolset) == 1
    assert ran("echo") == 1
    assert [call.framework for call in mcp_recovery_events.reconnects] == ["fastmcp"]


async def test_a_write_killed_in_flight_runs_once(
    shim: object, sdk_healing: None, mcp_recovery_events: RecoveryEvents, srv: FaultServer
) -> None:
    ran = srv.executions_from_now()
    toolset = session_toolset(srv.url)
    revived: list[threading.Thread] = []

    async def kill_during_incr() -> list[ToolCallPart]:
        srv.kill_during_next_call("incr", when="after")
        revived.append(srv.revive_when_dead())
        return [ToolCallPart("incr", {"key": "sdk-healing-orders"})]

    class CheckFirst(ScriptedModel):
        """A model that, told the outcome is uncertain, does not blindly call ``incr`` again."""

        async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
            response = await super().__call__(messages, info)
            if self.requests > 1 and any(isinstance(p, ToolCallPart) for p in response.parts):
                return ModelResponse(parts=[TextPart("I will check the counter before trying again.")])
            return response

    script = CheckFirst(kill_during_incr)
    try:
        result = await Agent(script.model(), toolsets=[toolset]).run("count one order")
    finally:
        for thread in revived:
            thread.join(30)
    assert result.output == "I will check the counter before trying again."
    [told] = script.returns
    assert told.outcome == "retried"
    assert "outcome uncertain" in str(told.content)  # the shim's verdict, mapped to ModelRetry
    assert ran("incr") == 1
    assert srv.counter("sdk-healing-orders") == 1
    assert {call.framework for call in mcp_recovery_events.reconnects} == {"fastmcp"}
