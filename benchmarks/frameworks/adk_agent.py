"""An ADK agent run through ADK's own tool path: ``Runner`` -> ``LlmAgent`` -> ``McpToolset`` ->
``McpTool.run_async``, with a scripted model (no provider) that asks for the tool calls it is given and
then reports what the tools answered, exactly as the model would have read it.

Shared by the google-adk tests (``tests/integrations/wave2a/test_google_adk.py``) and the benchmark of the
frameworks healed by ``instrument("mcp")`` (``benchmarks/frameworks/healed.py``). Each turn runs in an ADK
session of its own and carries its calls in the user's message, so turns may run concurrently.
"""

from __future__ import annotations

import contextlib
import itertools
import json
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
    """Asks for the calls written in the turn's user message (all in one model turn, so ADK runs them in
    parallel), then answers with text once the function responses are in; records the tool names the
    model was offered."""

    model: str = "scripted"
    offered: list[list[str]] = Field(default_factory=list)

    async def generate_content_async(
        self, llm_request: LlmRequest, stream: bool = False
    ) -> AsyncGenerator[LlmResponse]:
        self.offered.append(sorted(llm_request.tools_dict))
        last = llm_request.contents[-1] if llm_request.contents else None
        if last is not None and any(part.function_response for part in last.parts or []):
            yield LlmResponse(content=types.Content(role="model", parts=[types.Part.from_text(text="done")]))
            return
        asked = json.loads(llm_request.contents[0].parts[0].text or "[]")  # type: ignore[index]
        parts = [
            types.Part(function_call=types.FunctionCall(id=f"call-{next(_ids)}", name=name, args=args))
            for name, args in asked
        ]
        yield LlmResponse(content=types.Content(role="model", parts=parts))


class Agent:
    def __init__(self, runner: Runner, model: ScriptedModel, toolset: McpToolset) -> None:
        self.runner = runner
        self.model = model
        self.toolset = toolset

    async def call(self, *calls: tuple[str, dict[str, Any]]) -> list[Any]:
        """One agent turn in which the model asks for ``calls``: the function responses, in call order
        (what the model reads: the tool's result, or ADK's ``{"error": ...}``)."""
        session = await self.runner.session_service.create_session(app_name="kit", user_id="u")
        responses: dict[str, Any] = {}
        order: list[str] = []
        message = types.Content(role="user", parts=[types.Part.from_text(text=json.dumps(calls))])
        async for event in self.runner.run_async(user_id="u", session_id=session.id, new_message=message):
            for part in (event.content.parts if event.content else None) or []:
                if part.function_call is not None:
                    order.append(part.function_call.id)
                if part.function_response is not None:
                    responses[part.function_response.id] = part.function_response.response
        return [responses.get(call_id) for call_id in order]


def text_of(response: Any) -> str:
    """What the model reads from one function response: the text of the MCP tool's result, or ADK's
    ``{"error": ...}`` as its text."""
    if not isinstance(response, dict):
        return repr(response)
    if "error" in response:
        return f"error: {response['error']}"
    return "".join(part.get("text", "") for part in response.get("content") or [])


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
