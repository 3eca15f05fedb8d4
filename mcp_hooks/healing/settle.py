"""Settle, in place, a request the SDK session would otherwise wait for forever: for the framework shims
that keep the framework's own SDK session and rebuild it by the framework's own means.

The healing relay (:mod:`.relay`) answers a request lost in flight itself, beneath the session. A shim
that leaves the session to its framework cannot stand there; it patches the SDK where an answer is
lost instead, and answers the request with a JSON-RPC error the session hands its caller, as mcp 2.x
would (``-32000``, "Connection closed"), so the framework's own error path and the recovery engine see
an error, never a hang:

- :func:`run_watched`: around the SDK transport's handler of one request's answer (mcp 1.x
  ``StreamableHTTPTransport._handle_post_request(ctx)`` or ``_handle_sse_response(response, ctx, ...)``),
  the request is answered with an error when the handler ends without its answer reaching the session;
- :func:`fail_pending`: every request still waiting on an mcp 1.x session that is being closed is
  answered (mcp 1.x means to, but with an ``await`` inside the scope being cancelled, so it never does);
- :func:`answering_factory`: where a framework takes an ``httpx_client_factory``, the HTTP transport
  beneath the SDK answers such a request itself (:class:`AnsweringTransport`): a request never sent
  (connection refused) or lost in flight (the connection or its event stream broke before the answer)
  gets an HTTP 200 carrying the JSON-RPC error, which the SDK hands the session as the answer.

What the error says (and what it carries for the shim's classifier) is the shim's to choose.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ..sdk import HTTPX
from . import messages

__all__ = [
    "CONNECTION_CLOSED",
    "AnswerWatch",
    "AnsweringTransport",
    "answer",
    "answering_factory",
    "fail_pending",
    "request_of",
    "run_watched",
]

log = logging.getLogger("mcp_hooks.healing")

#: ``mcp.types.CONNECTION_CLOSED``: the code of every answer made here (both majors use this number).
CONNECTION_CLOSED = -32000

#: What an ``ErrorData`` of the installed SDK is made from: ``lost(transport_error)`` (``None``: the
#: stream ended without an answer, no error raised).
Lost = Callable[[BaseException | None], Any]


class AnswerWatch:
    """Stands in for the SDK transport's read-stream writer and notes whether the answer to ``request_id``
    went through it (an id sent back as a string counts too)."""

    __slots__ = ("_request_id", "_writer", "answered")

    def __init__(self, writer: Any, request_id: Any) -> None:
        self._writer = writer
        self._request_id = request_id
        self.answered = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)

    async def send(self, item: Any) -> None:
        if not self.answered and getattr(item, "message", None) is not None:
            root = messages.inner(item)
            answered = getattr(root, "id", None) if not hasattr(root, "method") else None
            if answered is not None and (answered == self._request_id or str(answered) == str(self._request_id)):
                self.answered = True
        await self._writer.send(item)


def request_of(ctx: Any) -> Any:
    """The JSON-RPC request a transport ``ctx`` carries (``ctx.session_message.message.root``), or ``None``
    for a notification, an answer to the server or a ``ctx`` of another shape."""
    session_message = getattr(ctx, "session_message", None)
    root = messages.inner(session_message) if getattr(session_message, "message", None) is not None else None
    if root is None or not isinstance(getattr(root, "method", None), str) or getattr(root, "id", None) is None:
        return None
    return root


async def answer(writer: Any, request_id: Any, error: Any) -> bool:
    """Hand the session ``error`` (an ``ErrorData``) as the answer to ``request_id``; ``False`` when the
    session is already closing and nobody waits for it any more."""
    try:
        await writer.send(messages.answer_with(request_id, error))
    except Exception as exc:
        log.debug("mcp_hooks: could not hand over the answer to request %r: %r", request_id, exc)
        return False
    return True


async def run_watched(
    handler: Callable[[Any], Awaitable[Any]],
    ctx: Any,
    lost: Lost,
    *,
    settle_errors: bool = False,
    **replace: Any,
) -> Any:
    """``handler(ctx)``, with ``ctx.read_stream_writer`` watched (and ``replace``'s other fields of the
    dataclass ``ctx`` replaced); when it ends without the answer to ``ctx``'s request reaching the session,
    the request is answered ``lost(None)``. ``settle_errors``: an exception it raises before the answer is
    answered ``lost(exc)`` instead of raised (mcp 1.x would tear the whole transport down on it).

    A notification, or a ``ctx`` of a shape this was not written for, is handed to ``handler`` as it is.
    """
    request = request_of(ctx)
    writer = getattr(ctx, "read_stream_writer", None)
    if request is None or writer is None or not dataclasses.is_dataclass(ctx) or isinstance(ctx, type):
        return await handler(ctx)
    watch = AnswerWatch(writer, request.id)
    try:
        watched = dataclasses.replace(ctx, read_stream_writer=watch, **replace)
    except (TypeError, ValueError):  # fields this was not written against: the SDK is left alone
        return await handler(ctx)
    try:
        result = await handler(watched)
    except Exception as exc:
        if not settle_errors or watch.answered:
            raise
        log.debug("mcp_hooks: request %r lost by the transport: %r", request.id, exc)
        await answer(writer, request.id, lost(exc))
        return None
    if not watch.answered:
        log.debug("mcp_hooks: request %r: its answer stream ended without the answer", request.id)
        await answer(writer, request.id, lost(None))
    return result


def fail_pending(session: Any, error: Callable[[], Any] | None = None) -> int:
    """Answer every request still waiting on the mcp 1.x ``session`` with ``error()`` (default: the SDK's
    own "Connection closed"), without an ``await``; how many were answered. mcp 2.x answers its pending
    requests itself when a session closes (and has no ``_response_streams``): nothing is done there."""
    streams = getattr(session, "_response_streams", None)
    if not isinstance(streams, dict) or not streams:
        return 0
    from mcp.types import ErrorData, JSONRPCError

    make = error if error is not None else lambda: ErrorData(code=CONNECTION_CLOSED, message="Connection closed")
    failed = 0
    for request_id, stream in list(streams.items()):
        try:
            stream.send_nowait(JSONRPCError(jsonrpc="2.0", id=request_id, error=make()))
            failed += 1
        except Exception:  # already answered, or closed: nobody waits on it
            log.debug("mcp_hooks: request %r was answered or abandoned already", request_id)
    streams.clear()
    return failed


# --- in place, beneath the SDK: the HTTP transport ----------------------------------------------

_httpx: Any = HTTPX
_IN_FLIGHT_ERRORS = (_httpx.ReadError, _httpx.RemoteProtocolError, _httpx.WriteError)
_REFUSED_ERRORS = (_httpx.ConnectError,)
_EVENT_BREAKS = (b"\r\n\r\n", b"\n\n", b"\r\r")


def _posted_request(request: Any) -> Any:
    """The id of a POSTed JSON-RPC request other than ``initialize`` (whose failure is the connect's own
    to report), or ``None``."""
    if request.method != "POST":
        return None
    try:
        message = json.loads(request.content)
    except (ValueError, TypeError, _httpx.RequestNotRead):
        return None
    if not isinstance(message, dict) or not isinstance(message.get("method"), str):
        return None
    return None if message["method"] == "initialize" else message.get("id")


def _error_payload(request_id: Any, message: str) -> bytes:
    error = {"code": CONNECTION_CLOSED, "message": message}
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "error": error}).encode()


def _error_response(request: Any, request_id: Any, message: str) -> Any:
    payload = _error_payload(request_id, message)
    return _httpx.Response(200, headers={"content-type": "application/json"}, content=payload, request=request)


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _last_break(buffer: bytes) -> int:
    """The end of the last complete SSE event in ``buffer`` (0 if none)."""
    return max((at + len(sep) for sep in _EVENT_BREAKS if (at := buffer.rfind(sep)) >= 0), default=0)


class _AnsweredEvents(_httpx.AsyncByteStream):  # type: ignore[misc]
    """An SSE answer passed on event by event; a break before the answer becomes an error event, unless
    its events carry ids (the SDK resumes such a stream itself)."""

    def __init__(self, inner: Any, request_id: Any, in_flight: str) -> None:
        self._inner = inner
        self._request_id = request_id
        self._in_flight = in_flight

    async def __aiter__(self) -> AsyncIterator[bytes]:
        held = b""
        resumable = False
        try:
            async for chunk in self._inner:
                held += chunk
                if not resumable and (held.startswith(b"id:") or b"\nid:" in held or b"\rid:" in held):
                    resumable = True
                end = _last_break(held)
                if end:
                    ready, held = held[:end], held[end:]
                    yield ready
        except _IN_FLIGHT_ERRORS as exc:
            if resumable:
                raise
            # A half-received event is dropped; the answer is an error event.
            payload = _error_payload(self._request_id, f"{self._in_flight} ({_why(exc)})")
            yield b"event: message\ndata: " + payload + b"\n\n"
            return
        if held:
            yield held

    async def aclose(self) -> None:
        await self._inner.aclose()


class AnsweringTransport(_httpx.AsyncBaseTransport):  # type: ignore[misc]
    """Wraps the HTTP transport of one MCP connection: a POSTed request (not ``initialize``, not a
    notification) that was never sent is answered ``refused``, one lost in flight ``in_flight``; each
    message is followed by the transport error in parentheses. Everything else passes through."""

    def __init__(self, inner: Any, *, refused: str, in_flight: str) -> None:
        self._inner = inner
        self._refused = refused
        self._in_flight = in_flight

    async def handle_async_request(self, request: Any) -> Any:
        request_id = _posted_request(request)
        if request_id is None:
            return await self._inner.handle_async_request(request)
        try:
            response = await self._inner.handle_async_request(request)
        except _REFUSED_ERRORS as exc:
            return _error_response(request, request_id, f"{self._refused} ({_why(exc)})")
        except _IN_FLIGHT_ERRORS as exc:
            return _error_response(request, request_id, f"{self._in_flight} ({_why(exc)})")
        if response.status_code != 200:
            return response
        content_type = response.headers.get("content-type", "").lower()
        if content_type.startswith("text/event-stream"):
            response.stream = _AnsweredEvents(response.stream, request_id, self._in_flight)
            return response
        if not content_type.startswith("application/json"):
            return response
        body = b""
        try:
            async for chunk in response.stream:
                body += chunk
        except _IN_FLIGHT_ERRORS as exc:
            return _error_response(request, request_id, f"{self._in_flight} ({_why(exc)})")
        finally:
            await response.aclose()
        kept = ("content-length", "transfer-encoding")
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in kept]
        return _httpx.Response(200, headers=headers, content=body, request=request, extensions=response.extensions)

    async def aclose(self) -> None:
        await self._inner.aclose()


def answering_factory(inner: Callable[..., Any], *, refused: str, in_flight: str) -> Callable[..., Any]:
    """An ``httpx_client_factory`` that builds clients with ``inner`` and answers in place (see
    :class:`AnsweringTransport`) on their transport and on each proxy's; marked
    ``__mcp_hooks_answering__``, so a factory is never wrapped twice."""

    def wrap(transport: Any) -> Any:
        if isinstance(transport, _httpx.AsyncBaseTransport) and not isinstance(transport, AnsweringTransport):
            return AnsweringTransport(transport, refused=refused, in_flight=in_flight)
        return transport

    def factory(*args: Any, **kwargs: Any) -> Any:
        client = inner(*args, **kwargs)
        if hasattr(client, "_transport"):
            client._transport = wrap(client._transport)
        mounts = getattr(client, "_mounts", None)
        if isinstance(mounts, dict):  # proxies from the environment: each has its own transport
            for pattern, mounted in list(mounts.items()):
                mounts[pattern] = wrap(mounted)
        return client

    factory.__mcp_hooks_answering__ = True  # type: ignore[attr-defined]
    return factory
