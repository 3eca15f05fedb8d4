"""mcp-hooks for the fastmcp ``Client``: a tool call survives the loss of its MCP session.

Turn it on with ``mcp_hooks.instrument("fastmcp")``. Then ``Client.call_tool`` / ``call_tool_mcp`` and
``list_tools`` / ``list_tools_mcp`` (and everything built on them: pydantic-ai's ``MCPToolset``,
fastmcp's ``ClientGroup``) detect a lost session, rebuild it once for all concurrent callers, in place,
inside the client's own ``async with``, and replay the call when that is safe. A tool call lost in
flight is replayed only when the tool is annotated read-only or idempotent; otherwise the caller gets
:class:`mcp_hooks.OutcomeUncertain` and the session is healed for the next call.

What is wrapped:

- ``call_tool_mcp`` and ``list_tools_mcp`` of ``fastmcp.client.mixins.tools.ClientToolsMixin``
  (fastmcp 3.x and 4.x). ``call_tool`` and ``list_tools`` call them, looked up at call time, so
  nothing captured earlier escapes.
- Under mcp 1.x only, the SDK's ``StreamableHTTPTransport._handle_sse_response``, so that a request
  whose response stream dies with the server fails (as in mcp 2.x) instead of hanging forever; and
  fastmcp's stdio session task, ``_stdio_transport_connect_task``, so that a request pending when a
  stdio server dies fails with "Connection closed" instead of hanging forever (see :mod:`._mcp1_stdio`).
- ``fastmcp.client.client.Client._session_runner``, the client's session task, which opens the SDK
  transport (``transport.connect_session``): it runs under :func:`mcp_hooks.healing.bypass`, so that with
  ``mcp_hooks.instrument("mcp")`` on too the client's session is healed by this shim alone, never by both.

Hooks implemented here (for fastmcp clients only; ``None`` for anything else):

- ``reconnect``: rebuilds the client's session the way the client opens one (see :mod:`._session`).
- ``should_reconnect``: fastmcp's own spellings of a dead session on a client still held: "Client is
  not connected" (the session task died and left no session) and "Session task completed
  unexpectedly" (it ended with a request in flight).
- ``is_replay_safe``: ``tools/list`` always; a request refused with "Client is not connected" (never
  sent); a tool whose annotations, listed when the session was rebuilt, say read-only or idempotent.

fastmcp 2.x is not supported (the shim steps aside): its client does not watch the session task, so a
request sent after the session task died (the server was down) waits forever, shim or not.

With mcp 2.x on both ends fastmcp 4 negotiates the session-less 2026-07-28 protocol by default: a
server restart is then invisible and nothing here runs. Sessions (and their loss) remain for legacy
servers and ``Client(..., mode="legacy")``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import mcp_hooks
from mcp_hooks import ToolCall, hookimpl
from mcp_hooks.classify import Loss, classify
from mcp_hooks.healing import bypass
from mcp_hooks.plugins.replay_safety import repeatable
from mcp_hooks.sdk import MCP_MAJOR

from . import _mcp1_sse, _mcp1_stdio
from ._session import (
    NOT_CONNECTED_TEXT,
    RUNNER_ENDED_TEXT,
    is_client,
    is_held,
    known_annotations,
    plain_annotations,
    rebuild,
)

__all__ = ["FRAMEWORK", "FastMCPIntegration", "mcp_hooks_integration"]

log = logging.getLogger("mcp_hooks.fastmcp")

#: The ``framework`` of every ``ToolCall`` this integration makes.
FRAMEWORK = "fastmcp"
#: fastmcp 3 and 4 ship the client in ``fastmcp-slim`` (``fastmcp`` depends on it).
DISTRIBUTIONS = ("fastmcp-slim", "fastmcp")


#: The client's session task: it enters ``transport.connect_session``, which opens the SDK transport.
RUNNER_MODULE = "fastmcp.client.client"
RUNNER = ("Client", "_session_runner")


async def _runner_under_bypass(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``Client._session_runner``: the transports it opens are the SDK's own while the shim is on (the
    shim heals this session; ``instrument("mcp")`` must not heal it beneath as well). The session task
    runs the whole session, so the bypass holds for every transport it and the tasks it starts open."""
    if not mcp_hooks_integration.enabled:
        return await wrapped(*args, **kwargs)
    with bypass():
        return await wrapped(*args, **kwargs)


#: fastmcp may not be imported yet (``mcp-hooks run``): the kit patches it when it is, never imports it here
_RUNNER_PATCH = mcp_hooks.Patch(RUNNER_MODULE, ".".join(RUNNER), _runner_under_bypass, owner="mcp_hooks.fastmcp")


class FastMCPIntegration(mcp_hooks.Integration):
    """The fastmcp ``Client`` shim: ``mcp_hooks.instrument("fastmcp")``."""

    name = "fastmcp"
    distribution = "fastmcp"
    distributions = DISTRIBUTIONS
    min_version = "3"
    max_version = "5"

    def __init__(self) -> None:
        super().__init__()
        #: the client's session task; under mcp 1.x also the SDK's SSE answer reader (:mod:`._mcp1_sse`)
        #: and fastmcp's stdio session task (:mod:`._mcp1_stdio`)
        mcp1_fixes = (_mcp1_sse.PATCH, _mcp1_stdio.PATCH)
        self.patches = (_RUNNER_PATCH, *mcp1_fixes) if MCP_MAJOR == 1 else (_RUNNER_PATCH,)

    def targets(self) -> Iterable[tuple[str, dict[str, Any]]]:
        owner = "fastmcp.client.mixins.tools:ClientToolsMixin"
        return [(f"{owner}.{method}", {"framework": FRAMEWORK}) for method in ("call_tool_mcp", "list_tools_mcp")]


mcp_hooks_integration = FastMCPIntegration()


def _ours(call: ToolCall) -> bool:
    return call.framework == FRAMEWORK and is_client(call.owner)


def _fastmcp_says_session_gone(call: ToolCall, error: BaseException) -> str | None:
    """Which of fastmcp's own dead-session messages ``error`` is, on a client still held."""
    if not isinstance(error, RuntimeError) or not is_held(call.owner):
        return None
    text = str(error)
    if text.startswith(NOT_CONNECTED_TEXT):
        return NOT_CONNECTED_TEXT
    if text.startswith(RUNNER_ENDED_TEXT):
        return RUNNER_ENDED_TEXT
    return None


@hookimpl
def reconnect(call: ToolCall) -> Any:
    """Rebuild the session of a fastmcp ``Client`` in place (a coroutine, awaited by the engine)."""
    if not is_client(call.owner):
        return None
    return rebuild(call.owner, call.tool)


@hookimpl
def should_reconnect(call: ToolCall, error: BaseException) -> bool | None:
    """fastmcp's own spellings of a dead session (the SDK's are the built-in plugin's)."""
    if _ours(call) and _fastmcp_says_session_gone(call, error) is not None:
        return True
    return None


@hookimpl
def is_replay_safe(call: ToolCall, error: BaseException) -> bool | None:
    """``tools/list``, requests never sent, and tools annotated read-only or idempotent."""
    if not _ours(call) or classify(error).loss is Loss.INTERRUPTED:
        return None
    if _fastmcp_says_session_gone(call, error) == NOT_CONNECTED_TEXT:
        return True  # fastmcp refused to send it: there was no session
    if call.tool is None:
        return True  # list_tools_mcp: a read
    annotations = call.annotations if call.annotations is not None else known_annotations(call.owner, call.tool)
    if annotations is not None and repeatable(plain_annotations(annotations)):
        return True
    return None
