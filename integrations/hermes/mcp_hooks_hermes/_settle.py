"""Settle requests lost in flight on mcp 1.x streamable HTTP, for the sessions hermes-agent owns.

mcp 1.x never answers a request whose answer was lost: when the server dies while a request is
outstanding, the client's POST handler logs "SSE stream ended" and returns, and the caller waits for
ever (hermes: until its tool timeout, holding its per-server lock). A POST that fails outright
(connection refused, HTTP 400) raises inside the transport's task group, which tears the whole
transport down and cancels the session before the session can fail its pending requests.

Two wrappers, active only on hermes' own MCP event loop (``tools.mcp_tool._mcp_loop``, which runs
nothing but hermes' MCP connections), close both holes:

- ``StreamableHTTPTransport._handle_post_request``: when the POST of a request ends without an
  answer, the request is answered with an error. The error's code and message follow mcp 2.x
  (a JSON-RPC error in a 4xx body is passed on as it is; "Connection closed" for a stream that ended
  mid-answer), and the transport exception, if any, is kept on the error data so the shim can hang it
  on the raised ``McpError`` as ``__cause__``, where ``mcp_hooks.classify`` reads it (connection
  refused: the request did not run; read error: it may have). The exception is not re-raised, so one
  failed POST no longer tears down the connection: hermes' own reconnect, asked by the shim, does that.
- ``BaseSession.__aexit__``: a session that closes fails every request still waiting on it with
  "Connection closed" (mcp 1.x tries, but under cancellation its own attempt never runs).

Both stand on the core's :mod:`mcp_hooks.healing.settle`; what is hermes' own here is the error each
request is answered with, and the transport exception it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import PrivateAttr

from mcp_hooks.healing import settle

log = logging.getLogger("mcp_hooks.hermes")

#: mcp.types.CONNECTION_CLOSED / INTERNAL_ERROR (both majors use these numbers)
CONNECTION_CLOSED = settle.CONNECTION_CLOSED
INTERNAL_ERROR = -32603

STREAM_ENDED = (
    "Connection closed: the SSE stream ended without a response "
    "(the connection to the server was lost while the request was in flight)"
)
SESSION_CLOSED = "Connection closed: the session was closed while the request was outstanding"

_loop_of_owner: Callable[[], Any] | None = None


def set_scope(loop_of_owner: Callable[[], Any] | None) -> None:
    """Act only while running on the event loop ``loop_of_owner()`` returns; ``None``: never act
    (the wrappers stay installed while the shim is off, and pass through)."""
    global _loop_of_owner
    _loop_of_owner = loop_of_owner


def is_active() -> bool:
    scope = _loop_of_owner
    if scope is None:
        return False
    try:
        return asyncio.get_running_loop() is scope()
    except Exception:
        return False


def _error_data_class() -> type[Any]:
    from mcp.types import ErrorData

    class LostRequestError(ErrorData):
        """An answer made up by the client for a request whose real answer was lost.

        ``transport_error`` (private: never serialized) is the exception that lost it, if any.
        """

        _transport_error: BaseException | None = PrivateAttr(default=None)

    return LostRequestError


_LOST_CLASS: type[Any] | None = None


def lost_error_class() -> type[Any]:
    global _LOST_CLASS
    if _LOST_CLASS is None:
        _LOST_CLASS = _error_data_class()
    return _LOST_CLASS


def lost_error(code: int, message: str, transport_error: BaseException | None = None) -> Any:
    error = lost_error_class()(code=code, message=message)
    error._transport_error = transport_error
    return error


def transport_error_of(error: BaseException) -> BaseException | None:
    """The transport exception kept on an ``McpError`` raised for a lost request, if any."""
    data = getattr(error, "error", None)
    if _LOST_CLASS is not None and isinstance(data, _LOST_CLASS):
        found = data._transport_error
        return found if isinstance(found, BaseException) else None
    return None


def is_lost_request(error: BaseException) -> bool:
    """Whether ``error`` is an ``McpError`` raised for an answer made up here."""
    return _LOST_CLASS is not None and isinstance(getattr(error, "error", None), _LOST_CLASS)


# --- the POST of one request --------------------------------------------------------------------


class _ReadErrorBodies:
    """Stands in for the transport's ``httpx.AsyncClient``: reads the (small) body of an error answer
    before the SDK raises on its status, so the raised ``HTTPStatusError`` can say what the server said."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    @contextlib.asynccontextmanager
    async def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        async with self._client.stream(*args, **kwargs) as response:
            if response.status_code >= 400:
                with contextlib.suppress(Exception):
                    await response.aread()
            yield response


def _body_error(response: Any) -> tuple[int, str] | None:
    """The JSON-RPC error in an HTTP error body, as mcp 2.x reports it, or ``None``."""
    try:
        payload = json.loads(response.text)
    except Exception:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return None
    code, message = error.get("code"), error.get("message")
    if isinstance(code, int) and not isinstance(code, bool) and isinstance(message, str):
        return code, message
    return None


def error_for(exc: BaseException) -> Any:
    """The answer for a request whose POST raised ``exc``: code and message as mcp 2.x would raise
    them, and ``exc`` kept for the classifier."""
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        found = _body_error(response)
        if found is not None:
            return lost_error(found[0], found[1], exc)
        reason = getattr(response, "reason_phrase", "") or ""
        try:
            body = response.text.strip() if response is not None else ""
        except Exception:
            body = ""
        message = f"HTTP {status} {reason}".rstrip() + (f": {body[:200]}" if body else "")
        return lost_error(INTERNAL_ERROR, message, exc)
    text = str(exc).strip()
    return lost_error(CONNECTION_CLOSED, f"{type(exc).__name__}: {text}" if text else type(exc).__name__, exc)


def _lost(exc: BaseException | None) -> Any:
    return lost_error(CONNECTION_CLOSED, STREAM_ENDED) if exc is None else error_for(exc)


async def handle_post_request(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Wrapper of ``StreamableHTTPTransport._handle_post_request(ctx)``."""
    ctx = args[0] if args else kwargs.get("ctx")
    if not is_active() or settle.request_of(ctx) is None:
        return await wrapped(*args, **kwargs)  # a notification: nothing waits for an answer
    return await settle.run_watched(wrapped, ctx, _lost, settle_errors=True, client=_ReadErrorBodies(ctx.client))


# --- a session that closes ----------------------------------------------------------------------


async def session_aexit(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """Wrapper of ``BaseSession.__aexit__``."""
    if not is_active():
        return await wrapped(*args, **kwargs)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        failed = settle.fail_pending(instance, lambda: lost_error(CONNECTION_CLOSED, SESSION_CLOSED))
        if failed:
            log.info("mcp_hooks.hermes: %d request(s) outstanding on a closed session failed fast", failed)
