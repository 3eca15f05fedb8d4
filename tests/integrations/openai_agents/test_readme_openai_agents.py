"""The README's openai-agents blocks, run in the openai-agents environment against the testing kit's
server: ``mcp_hooks.instrument()`` (every installed shim) and the openai-agents example, whose server an
agent then uses across a real restart. Only the model is scripted (no network); the tool calls are the
agent's own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import mcp_hooks_openai_agents
import pytest
import readme_blocks
from oa_support import FRAMEWORK_WARNINGS, MCP_V2, invoke, pid_in, text

import mcp_hooks
from mcp_hooks.testing import FaultServer

pytestmark = [pytest.mark.timeout(90), FRAMEWORK_WARNINGS]


BLOCKS = readme_blocks.blocks_for("openai-agents")
INSTRUMENT_ALL = [b for b in BLOCKS if "mcp_hooks.instrument()" in b.source]
EXAMPLE = [b for b in BLOCKS if "MCPServerStreamableHttp(" in b.source]

#: the HTTP restart a session-less mcp 2.x protocol does not even see: nothing to rebuild there
REBUILDS_AFTER_A_RESTART = 0 if MCP_V2 else 1


@pytest.fixture(autouse=True)
def _shims_off_after() -> Any:
    mcp_hooks.uninstrument()
    yield
    mcp_hooks.uninstrument()
    integration = mcp_hooks_openai_agents.mcp_hooks_integration
    integration.options = {}
    integration.watch_http = True


def test_every_openai_agents_block_is_one_this_file_runs() -> None:
    assert sorted(INSTRUMENT_ALL + EXAMPLE, key=lambda b: b.line) == BLOCKS, "run the new block here"
    assert (len(INSTRUMENT_ALL), len(EXAMPLE)) == (1, 1)


@pytest.mark.parametrize("block", INSTRUMENT_ALL, ids=lambda b: b.where)
async def test_instrument_quickstart(block: Any, mcp_shared_fault_server: FaultServer) -> None:
    from agents.mcp import MCPServerStreamableHttp

    srv = mcp_shared_fault_server
    assert await readme_blocks.run(block, {}) == [{"mcp": True, "openai-agents": True}]  # built-in "mcp", this shim
    async with MCPServerStreamableHttp({"url": srv.url}) as server:
        first = text(await invoke(server, "echo", text="before"))
        srv.restart()
        second = text(await invoke(server, "echo", text="after"))
        assert mcp_hooks_openai_agents.reconnect_count(server) == REBUILDS_AFTER_A_RESTART
    assert pid_in(second) == srv.pid != pid_in(first)


def _one_tool_call_model(first: Callable[[], Awaitable[None]], tool: str, **arguments: Any) -> Any:
    """A scripted model: first turn, ``await first()`` then one call of ``tool``; next turn, a final answer."""
    from agents import ModelResponse, Usage
    from agents.models.interface import Model
    from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText

    class OneToolCall(Model):
        def __init__(self) -> None:
            self.turns = 0

        async def get_response(self, *args: Any, **kwargs: Any) -> Any:
            self.turns += 1
            if self.turns == 1:
                await first()
                call = ResponseFunctionToolCall(
                    type="function_call", call_id="c1", name=tool, arguments=json.dumps(arguments), id="fc_c1"
                )
                return ModelResponse(output=[call], usage=Usage(), response_id=None)
            words = ResponseOutputText(type="output_text", text="done", annotations=[])
            message = ResponseOutputMessage(
                id="msg_1", type="message", role="assistant", status="completed", content=[words]
            )
            return ModelResponse(output=[message], usage=Usage(), response_id=None)

        def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

    return OneToolCall()


async def _agent_calls_echo(server: Any, words: str, first: Callable[[], Awaitable[None]]) -> str:
    """One agent run (``Runner.run``): its model runs ``first``, then calls ``echo``; what the tool returned."""
    from agents import Agent, Runner
    from agents.items import ToolCallOutputItem

    agent = Agent(name="assistant", model=_one_tool_call_model(first, "echo", text=words), mcp_servers=[server])
    result = await Runner.run(agent, "go")
    assert result.final_output == "done"
    (output,) = [item.output for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    return text(output)


async def _nothing() -> None:
    return None


@pytest.mark.parametrize("block", EXAMPLE, ids=lambda b: b.where)
async def test_openai_agents_example(block: Any, mcp_shared_fault_server: FaultServer) -> None:
    srv = mcp_shared_fault_server
    ran = srv.executions_from_now()
    namespace: dict[str, Any] = {}
    assert await readme_blocks.run(block.with_url(srv.url), namespace) == [{"openai-agents": True}]
    server = namespace["server"]

    async def restart() -> None:  # the README: "restart the MCP server under a running agent"
        await asyncio.to_thread(srv.restart)

    async with server:
        first = await _agent_calls_echo(server, "before", _nothing)
        second = await _agent_calls_echo(server, "after", restart)  # "the agent's next tool call answers"
        assert mcp_hooks_openai_agents.reconnect_count(server) == REBUILDS_AFTER_A_RESTART
    assert second.startswith("after (pid ")
    assert pid_in(second) == srv.pid != pid_in(first)
    assert ran("echo") == 2
