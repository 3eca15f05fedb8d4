"""mcp 1.x: a request whose SSE response stream ends without an answer fails instead of hanging.

In mcp 1.x, ``StreamableHTTPTransport._handle_sse_response`` logs "SSE stream ended" at debug level and
returns when the server dies after opening the response stream (the usual shape of a server killed
while a tool runs). Nothing reaches the session, so the pending request waits forever, and fastmcp
3.x's session monitoring does not see it either: the session task is still alive. mcp 2.x answers
such a request with ``MCPError(-32000, "SSE stream ended without a response")``; this wrapper gives
mcp 1.x the same answer, as a JSON-RPC error for the request's id, which the recovery engine then
treats as lost in flight (replayed only when safe, otherwise ``OutcomeUncertain``).

Installed by the fastmcp integration under mcp 1.x only; ``remove()`` restores the original.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from typing import Any

import mcp_hooks

log = logging.getLogger("mcp_hooks.fastmcp")

MODULE = "mcp.client.streamable_http"
CLASS = "StreamableHTTPTransport"
METHOD = "_handle_sse_response"
MESSAGE = "SSE stream ended without a response"
CONNECTION_CLOSED = -32000


class _WatchedWriter:
    """Forwards to the transport's read-stream writer and notes whether an answer went through."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.answered = False

    async def send(self, item: Any) -> None:
        root = getattr(getattr(item, "message", None), "root", None)
        if root is not None and type(root).__name__ in ("JSONRPCResponse", "JSONRPCError"):
            self.answered = True
        await self._inner.send(item)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _watch(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    ctx: Any = args[1] if len(args) > 1 else kwargs.get("ctx")
    root = getattr(getattr(getattr(ctx, "session_message", None), "message", None), "root", None)
    replaceable = dataclasses.is_dataclass(ctx) and not isinstance(ctx, type)
    if root is None or type(root).__name__ != "JSONRPCRequest" or not replaceable:
        return await wrapped(*args, **kwargs)
    writer = _WatchedWriter(ctx.read_stream_writer)
    watched = dataclasses.replace(ctx, read_stream_writer=writer)
    if len(args) > 1:
        args = (args[0], watched, *args[2:])
    else:
        kwargs = {**kwargs, "ctx": watched}
    result = await wrapped(*args, **kwargs)
    if not writer.answered:
        await _answer_lost(ctx.read_stream_writer, root.id)
    return result


async def _answer_lost(writer: Any, request_id: Any) -> None:
    types = importlib.import_module("mcp.types")
    message = importlib.import_module("mcp.shared.message")
    error = types.JSONRPCError(
        jsonrpc="2.0", id=request_id, error=types.ErrorData(code=CONNECTION_CLOSED, message=MESSAGE)
    )
    log.debug("mcp_hooks: request %r lost with its SSE stream; answering it with an error", request_id)
    try:
        await writer.send(message.SessionMessage(types.JSONRPCMessage(error)))
    except Exception as exc:  # the session is closing: nobody is waiting any more
        log.debug("mcp_hooks: could not deliver the lost-stream error: %r", exc)


#: The fix, wrapped in place by the fastmcp integration under mcp 1.x (not found elsewhere: skipped).
PATCH = mcp_hooks.Patch(MODULE, f"{CLASS}.{METHOD}", _watch, required=False, owner="mcp_hooks.fastmcp")


def installed() -> bool:
    return PATCH.applied
