"""mcp-hooks for pydantic-ai: an agent's MCP tool calls survive the loss of the server's session.

Turn it on with ``mcp_hooks.instrument("pydantic-ai")`` (or ``mcp_hooks.instrument()`` for every
installed shim). pydantic-ai 2.x calls MCP tools through ``pydantic_ai.mcp.MCPToolset``, which holds a
fastmcp ``Client``: ``MCPToolset._call_tool_checked`` -> ``Client.call_tool`` -> ``call_tool_mcp``, and
``get_tools`` -> ``Client.list_tools``. The recovery itself (detect, rebuild the client's session in
place once for all parallel tool calls, replay what is safe) is the fastmcp integration's, which this
one turns on. Without it, pydantic-ai turns "Session not found" into ``ModelRetry``: the model is asked
to call the tool again, on the same dead session, until the run fails with ``UnexpectedModelBehavior``.

What is pydantic-ai's own here: a tool call lost in flight that is not safe to repeat comes back from
the fastmcp layer as :class:`mcp_hooks.OutcomeUncertain`, which ``_call_tool_checked`` does not expect
(it maps only ``ToolError`` and ``McpError``), so it would end the agent run. This shim maps it the way
pydantic-ai maps protocol errors: ``ModelRetry`` carrying the uncertainty message (the model is told to
check whether the action happened before trying again; ``__cause__`` is the ``OutcomeUncertain``), and
raises it unchanged when the toolset's ``tool_error_behavior`` is ``"error"``.

pydantic-ai 1.x (its own ``MCPServer`` classes on the raw SDK session) is not covered: the shim steps
aside there with one log line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import mcp_hooks_fastmcp

import mcp_hooks
from mcp_hooks import OutcomeUncertain

__all__ = ["FRAMEWORK", "PydanticAIIntegration", "mcp_hooks_integration"]

log = logging.getLogger("mcp_hooks.pydantic_ai")

FRAMEWORK = "pydantic-ai"
#: ``pydantic-ai`` depends on ``pydantic-ai-slim``, which holds the code.
DISTRIBUTIONS = ("pydantic-ai-slim", "pydantic-ai")

MODULE = "pydantic_ai.mcp"
CLASS = "MCPToolset"
METHOD = "_call_tool_checked"


async def _tell_the_model(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``OutcomeUncertain`` from below becomes pydantic-ai's ``ModelRetry`` (unless ``"error"``)."""
    if not mcp_hooks_integration.enabled:
        return await wrapped(*args, **kwargs)
    try:
        return await wrapped(*args, **kwargs)
    except OutcomeUncertain as uncertain:
        if getattr(instance, "tool_error_behavior", "retry") == "error":
            raise
        from pydantic_ai.exceptions import ModelRetry

        raise ModelRetry(str(uncertain)) from uncertain


class PydanticAIIntegration(mcp_hooks.Integration):
    """The pydantic-ai shim: ``mcp_hooks.instrument("pydantic-ai")``."""

    name = "pydantic-ai"
    distribution = "pydantic-ai-slim"
    distributions = DISTRIBUTIONS
    min_version = "2"
    max_version = "3"
    #: pydantic_ai.mcp imports fastmcp and the SDK: patched when it is imported, never imported here
    patches = (mcp_hooks.Patch(MODULE, f"{CLASS}.{METHOD}", _tell_the_model, owner="mcp_hooks.pydantic_ai"),)

    def __init__(self) -> None:
        super().__init__()
        self._started_fastmcp = False

    def targets(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return ()  # the recovery is the fastmcp integration's (below pydantic-ai's error mapping)

    def _on(self) -> None:
        fastmcp = mcp_hooks_fastmcp.mcp_hooks_integration
        if not fastmcp.enabled:
            if not fastmcp.instrument():
                raise RuntimeError(
                    "mcp_hooks: pydantic-ai calls MCP tools through the fastmcp Client, whose integration "
                    f"cannot run here: {fastmcp.why_not}"
                )
            self._started_fastmcp = True

    def _off(self) -> None:
        if self._started_fastmcp:
            mcp_hooks_fastmcp.mcp_hooks_integration.uninstrument()
            self._started_fastmcp = False


mcp_hooks_integration = PydanticAIIntegration()
