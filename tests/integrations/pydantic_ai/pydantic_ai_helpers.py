"""Helpers for the pydantic-ai integration's tests (a unique module name: the test folders have no __init__.py)."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from mcp_hooks.engine import gate_for

pytest.importorskip("pydantic_ai.mcp")

from pydantic_ai.mcp import MCPToolset
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

FASTMCP_MAJOR = int(importlib.metadata.version("fastmcp-slim").split(".")[0])
MCP_MAJOR = int(importlib.metadata.version("mcp").split(".")[0])

Step = Callable[[], Awaitable[list[ToolCallPart]]]


def session_toolset(url: str, **kwargs: Any) -> MCPToolset[Any]:
    """pydantic-ai's own ``MCPToolset`` for a URL, on a session-bearing protocol: fastmcp 4 would
    otherwise negotiate the session-less 2026-07-28 protocol against an mcp 2.x server."""
    toolset: MCPToolset[Any] = MCPToolset(url, **kwargs)
    if FASTMCP_MAJOR >= 4:
        toolset.client.mode = "legacy"
    return toolset


def rebuilds(toolset: MCPToolset[Any]) -> int:
    """How many times mcp-hooks rebuilt the session of the toolset's fastmcp client."""
    return gate_for(toolset.client, "").rebuilds


class ScriptedModel:
    """A pydantic-ai ``FunctionModel`` script: the first request runs ``first`` (which may restart the
    server) and answers with its tool calls; a tool call the framework sends back as ``retried`` is
    made again, as a model would; once every call returned, the model answers with their results."""

    def __init__(self, first: Step) -> None:
        self.first = first
        self.returns: list[ToolReturnPart] = []
        self.requests = 0

    async def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests += 1
        if self.requests == 1:
            return ModelResponse(parts=list(await self.first()))
        parts = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
        self.returns.extend(parts)
        again = [
            ToolCallPart(p.tool_name, self.args_of(messages, p.tool_call_id)) for p in parts if p.outcome == "retried"
        ]
        if again:
            return ModelResponse(parts=list(again))
        return ModelResponse(parts=[TextPart(" | ".join(str(p.content) for p in parts))])

    @staticmethod
    def args_of(messages: list[ModelMessage], tool_call_id: str) -> Any:
        for message in messages:
            for part in message.parts:
                if isinstance(part, ToolCallPart) and part.tool_call_id == tool_call_id:
                    return part.args
        raise AssertionError(f"no tool call {tool_call_id}")

    def model(self) -> FunctionModel:
        return FunctionModel(self)
