"""An ADK agent run through ADK's own tool path: ``Runner`` -> ``LlmAgent`` -> ``McpToolset`` ->
``McpTool.run_async``, with a scripted model (no provider) that asks for the tool calls given and then
reports what the tools answered, exactly as the model would have read it."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions import InMemorySessionService
from google.adk.tools.mcp_tool import McpToolset, StreamableHTTPConnectionParams
from google.genai import types
from pydantic import Field

__all__ = ["Agent", "ScriptedModel", "agent", "text_of"]

_ids = itertools.count(1)


class ScriptedModel(BaseLlm):
    """Asks for ``next_calls`` (all in one model turn, so ADK runs them in parallel), then answers with
    text once the function responses are in; records the tool names the model was offered."""

    model: str = "scripted"
    next_calls: list[tuple[str, dict[str, Any]]] = Field(default_factory=list)
    offered: list[list[str]] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse]:
        self.offered.append(sorted(llm_request.tools_dict))
        last = llm_request.contents[-1] if llm_request.contents else None
        if last is not None and any(part.function_response for part in last.parts or []):
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part.from_text(text="done")]))
            return
        parts = [
            types.Part(function_call=types.FunctionCall(id=f"call-{next(_ids)}", name=name, args=args))
            for name, args in self.next_calls
        ]
        yield LlmResponse(content=types.Content(role="model", parts=parts))


class Agent:
    def __init__(self, runner: Runner, model: ScriptedModel, toolset: McpToolset) -> None:
        self.runner = runner
        self.model = model
        self.toolset = toolset
        self.session_id: str | None = None

    async def call(self, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
        """One agent turn in which the model asks for ``calls``: the function responses, in call order
        (what the model reads: the tool's result, or ADK's ``{"error": ...}``)."""
        if self.session_id is None:
            session = await self.runner.session_service.create_session(app_name="kit", user_id="u")
            self.session_id = session.id
        self.model.next_calls = list(calls)
        responses: dict[str, Any] = {}
        order: list[str] = []
        message = types.Content(role="user", parts=[types.Part.from_text(text="go")])
        async for event in self.runner.run_async(user_id="u", session_id=self.session_id, new_message=message):
            for part in (event.content.parts if event.content else None) or []:
                if part.function_call is not None:
                    order.append(part.function_call.id)
                if part.function_response is not None:
                    responses[part.function_response.id] = part.function_response.response
        return [responses.get(call_id) for call_id in order]


def text_of(response: Any) -> str:
    """The text of a successful MCP tool result as ADK hands it to the model."""
    assert isinstance(response, dict) and "error" not in response, response
    content = response.get("content") or []
    return "".join(part.get("text", "") for part in content)


@contextlib.asynccontextmanager
async def agent(url: str) -> AsyncIterator[Agent]:
    toolset = McpToolset(connection_params=StreamableHTTPConnectionParams(url=url))
    model = ScriptedModel()
    root = LlmAgent(name="kit_agent", model=model, instruction="use the tools", tools=[toolset])
    runner = Runner(app_name="kit", agent=root, session_service=InMemorySessionService())
    try:
        yield Agent(runner, model, toolset)
    finally:
        await toolset.close()
