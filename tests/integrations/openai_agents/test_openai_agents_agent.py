"""A whole agent run (``agents.Runner.run``) across a server restart, with a scripted model (no network)."""

from __future__ import annotations

import json
from typing import Any

import mcp_hooks_openai_agents
import pytest
from oa_support import FRAMEWORK_WARNINGS, Target, invoke, outcome, text

import mcp_hooks

pytestmark = [pytest.mark.timeout(90), FRAMEWORK_WARNINGS]


def _scripted_model(turns: list[list[Any]]) -> Any:
    from agents import ModelResponse, Usage
    from agents.models.interface import Model

    class ScriptedModel(Model):
        """Answers each turn with the next scripted output items; sees what the tools returned."""

        def __init__(self) -> None:
            self.turns = list(turns)
            self.inputs: list[Any] = []

        async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
            self.inputs.append(input)
            return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    return ScriptedModel()


def _tool_call(call_id: str, name: str, **arguments: Any) -> Any:
    from openai.types.responses import ResponseFunctionToolCall

    return ResponseFunctionToolCall(
        type="function_call", call_id=call_id, name=name, arguments=json.dumps(arguments), id=f"fc_{call_id}"
    )


def _message(words: str) -> Any:
    from openai.types.responses import ResponseOutputMessage, ResponseOutputText

    return ResponseOutputMessage(
        id="msg_1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=words, annotations=[])],
    )


def _tool_outputs(result: Any) -> list[Any]:
    from agents.items import ToolCallOutputItem

    return [item.output for item in result.new_items if isinstance(item, ToolCallOutputItem)]


@pytest.mark.parametrize("with_shim", [True, False], ids=["shim", "no-shim"])
async def test_agent_run_after_a_restart(request: pytest.FixtureRequest, target: Target, with_shim: bool) -> None:
    """The agent lists the server's tools, then calls three of them at once: after a restart, that works
    with the shim and fails without it."""
    if not with_shim and target.session_less:
        pytest.skip("mcp 2.x over HTTP is session-less: a restart is invisible without the shim too")
    request.getfixturevalue("shim" if with_shim else "no_shim")
    from agents import Agent, Runner

    srv = target.srv
    async with target.server(cache_tools_list=False) as server:
        await invoke(server, "echo", text="before")
        target.restart()
        model = _scripted_model(
            [
                [
                    _tool_call("c1", "echo", text="one"),
                    _tool_call("c2", "echo", text="two"),
                    _tool_call("c3", "put", key="city", value="Lyon"),
                ],
                [_message("done")],
            ]
        )
        agent = Agent(name="assistant", instructions="use the tools", model=model, mcp_servers=[server])
        if with_shim:
            result = await Runner.run(agent, "go")
            outputs = [text(o) for o in _tool_outputs(result)]
            assert result.final_output == "done"
            assert outputs[0].startswith("one (pid ") and outputs[1].startswith("two (pid ")
            assert outputs[2] == "city=Lyon"
            assert srv.stored("city") == "Lyon"
            assert mcp_hooks_openai_agents.reconnect_count(server) == (0 if target.session_less else 1)
        else:
            # the run dies listing the tools (mcp 1.x over stdio may even cancel this task)
            kind, value = await outcome(Runner.run(agent, "go"))
            assert kind != "ok", value
            assert not isinstance(value, mcp_hooks.OutcomeUncertain)
            assert srv.stored("city") is None
