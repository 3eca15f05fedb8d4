"""JSON-RPC messages as the installed SDK major spells them, for the healing relay.

mcp 1.x wraps every message in a ``JSONRPCMessage`` root model (``.root``); mcp 2.x hands the
request, notification, response or error itself. The relay reads and builds messages only through
these helpers, so the difference lives here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from ..sdk import MCP_MAJOR

__all__ = [
    "MCP_MAJOR",
    "UNCERTAIN_CODE",
    "answer_with",
    "error_answer",
    "fields",
    "first_round",
    "inner",
    "method_of",
    "notification",
    "outcome",
    "request",
    "sdk_error",
    "with_id",
]


_types: Any = importlib.import_module("mcp.types")
_message: Any = importlib.import_module("mcp.shared.message")
_exceptions: Any = importlib.import_module("mcp.shared.exceptions")

#: The JSON-RPC code of an answer the relay makes up. -32603 (internal error) on purpose: the SDK's
#: own "connection closed" (-32000) is what frameworks retry on, and a write must not be retried.
UNCERTAIN_CODE = -32603


def outcome(may_have_run: bool, reason: str, **extra: Any) -> dict[str, Any]:
    """The ``data`` of an error answer mcp-hooks makes up: ``{"mcp-hooks": {"outcome": ..., "reason": ...}}``.

    ``outcome`` is ``"uncertain"`` when the request may have run on the server, else ``"not-run"`` (it
    surely never ran: safe to send again). ``reason`` says why it was answered so:
    ``"in-flight"`` (lost while the server had it), ``"max-reconnects"``, ``"unreachable"``,
    ``"circuit-open"``, ``"credentials-refused"``, ``"crash-loop"``, ``"refused"`` (HTTP 429/503).
    """
    return {"mcp-hooks": {"outcome": "uncertain" if may_have_run else "not-run", "reason": reason, **extra}}


#: mcp 1.x's root model around every message (mcp 2.x has none).
_ROOTED: Any = getattr(_types, "JSONRPCMessage", None) if MCP_MAJOR < 2 else None


def inner(session_message: Any) -> Any:
    """The request, notification, response or error inside a ``SessionMessage`` (either major)."""
    message = session_message.message
    return message.root if _ROOTED is not None and isinstance(message, _ROOTED) else message


def fields(message: Any) -> Any:
    """A JSON-RPC message's fields by name (``.get(name)``: ``None`` where its kind has none, a response's
    ``method``, a notification's ``id``). Read from the model's own fields: a pydantic model raises for an
    attribute it lacks, and raising costs the relay's path several microseconds per message."""
    found = getattr(message, "__dict__", None)
    if found is None:
        return {name: getattr(message, name, None) for name in ("id", "method", "params", "result", "error")}
    return found


def method_of(session_message: Any) -> str | None:
    return fields(inner(session_message)).get("method")  # type: ignore[no-any-return]


def _wrap(message: Any, metadata: Any = None) -> Any:
    if MCP_MAJOR < 2:
        message = _types.JSONRPCMessage(message)
    return _message.SessionMessage(message=message, metadata=metadata)


def with_id(session_message: Any, request_id: str | int) -> Any:
    """A copy of a request ``SessionMessage`` with another JSON-RPC id (same metadata)."""
    copied = inner(session_message).model_copy(update={"id": request_id})
    return _wrap(copied, session_message.metadata)


def first_round(session_message: Any) -> Any:
    """A copy of a multi-round-trip round (2026-07-28) as its flow's first request: without the
    ``inputResponses`` and ``requestState`` of the later rounds (same id and metadata)."""
    request = inner(session_message)
    params = {k: v for k, v in (request.params or {}).items() if k not in ("inputResponses", "requestState")}
    return _wrap(request.model_copy(update={"params": params}), session_message.metadata)


def request(
    request_id: str | int, method: str, params: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> Any:
    """A request ``SessionMessage``; ``headers``: the HTTP headers the transport sends it with (mcp 2.x)."""
    metadata = _message.ClientMessageMetadata(headers=headers) if headers else None
    return _wrap(_types.JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method, params=params), metadata)


def notification(method: str, params: dict[str, Any] | None = None) -> Any:
    return _wrap(_types.JSONRPCNotification(jsonrpc="2.0", method=method, params=params))


def error_answer(request_id: Any, code: int, message: str, data: Any = None) -> Any:
    """A JSON-RPC error answer for ``request_id``, ready for the session's read stream."""
    return answer_with(request_id, _types.ErrorData(code=code, message=message, data=data))


def answer_with(request_id: Any, error: Any) -> Any:
    """The JSON-RPC error answer carrying ``error`` (an ``ErrorData``) for ``request_id``."""
    return _wrap(_types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error))


def sdk_error(error: Any) -> Exception:
    """The exception the SDK would raise for a JSON-RPC ``error`` object (``McpError`` / ``MCPError``)."""
    if MCP_MAJOR < 2:
        return _exceptions.McpError(error)  # type: ignore[no-any-return]
    return _exceptions.MCPError.from_error_data(error)  # type: ignore[no-any-return]
