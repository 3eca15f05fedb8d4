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

import logging
from typing import Any

import mcp_hooks
from mcp_hooks.healing import settle

log = logging.getLogger("mcp_hooks.fastmcp")

MODULE = "mcp.client.streamable_http"
CLASS = "StreamableHTTPTransport"
METHOD = "_handle_sse_response"
MESSAGE = "SSE stream ended without a response"


def _lost(exc: BaseException | None) -> Any:
    from mcp.types import ErrorData

    return ErrorData(code=settle.CONNECTION_CLOSED, message=MESSAGE)


async def _watch(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrapper of ``_handle_sse_response(response, ctx, is_initialization=False)``."""
    if len(args) > 1:
        response, ctx, rest = args[0], args[1], args[2:]
        return await settle.run_watched(lambda watched: wrapped(response, watched, *rest, **kwargs), ctx, _lost)
    if "ctx" not in kwargs:
        return await wrapped(*args, **kwargs)
    others = {name: value for name, value in kwargs.items() if name != "ctx"}
    return await settle.run_watched(lambda watched: wrapped(*args, ctx=watched, **others), kwargs["ctx"], _lost)


#: The fix, wrapped in place by the fastmcp integration under mcp 1.x (not found elsewhere: skipped).
PATCH = mcp_hooks.Patch(MODULE, f"{CLASS}.{METHOD}", _watch, required=False, owner="mcp_hooks.fastmcp")


def installed() -> bool:
    return PATCH.applied
