"""mcp 1.x streamable HTTP: turn a lost request into an answer instead of a hang or a crash.

The mcp 1.x client handles two transport failures of a POSTed request badly:

- the server dies while its SSE answer is streaming: the client logs the broken stream at debug level
  and the call waits forever (or for openai-agents' 5 s ``client_session_timeout_seconds``, which then
  reads as an ordinary timeout);
- the server cannot be reached (``ConnectError``): the exception fails the transport's task group,
  which cancels the task that opened the connection, at every ``await``, until it is closed.

This module wraps the HTTP client's transport (through the ``httpx_client_factory`` that
``MCPServerStreamableHttp`` already takes) and answers such a request itself with a JSON-RPC error, as
mcp 2.x does: ``-32000 "Connection closed: ..."`` when the request may have run (the classifier reads
it as lost in flight), and ``-32000`` with :data:`REFUSED_MARK` when it was never sent (the shim's
plugin reads that as safe to replay). The ``initialize`` request and notifications are left alone, so
``connect()`` fails exactly as before, and so is a stream whose events carry ids: the SDK resumes
those itself.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx  # type: ignore[import-not-found,unused-ignore]  # mcp 1.x only

from . import IN_FLIGHT_MESSAGE, REFUSED_MARK

__all__ = ["REFUSED_MARK", "IN_FLIGHT_MESSAGE", "watch_factory", "WatchingTransport"]

#: JSON-RPC code of the answers made here (the SDK's own CONNECTION_CLOSED).
CONNECTION_CLOSED = -32000

_IN_FLIGHT_ERRORS = (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)
_REFUSED_ERRORS = (httpx.ConnectError,)
_EVENT_BREAKS = (b"\r\n\r\n", b"\n\n", b"\r\r")


def _rpc_request(request: httpx.Request) -> tuple[Any, str] | None:
    """``(id, method)`` of a POSTed JSON-RPC request other than ``initialize``; ``None`` otherwise."""
    if request.method != "POST":
        return None
    try:
        message = json.loads(request.content)
    except (ValueError, httpx.RequestNotRead, TypeError):
        return None
    if not isinstance(message, dict) or "id" not in message or not isinstance(message.get("method"), str):
        return None
    if message["method"] == "initialize":
        return None
    return message["id"], message["method"]


def _error_payload(rpc_id: Any, message: str) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": CONNECTION_CLOSED, "message": message}}
    ).encode()


def _error_response(request: httpx.Request, rpc_id: Any, message: str) -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": "application/json"},
        content=_error_payload(rpc_id, message),
        request=request,
    )


def _why(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _last_break(buffer: bytes) -> int:
    """The end of the last complete SSE event in ``buffer`` (0 if none)."""
    end = 0
    for sep in _EVENT_BREAKS:
        at = buffer.rfind(sep)
        if at >= 0:
            end = max(end, at + len(sep))
    return end


class _WatchedEvents(httpx.AsyncByteStream):  # type: ignore[misc,unused-ignore]
    """An SSE answer passed on event by event; a break before the answer becomes an error event."""

    def __init__(self, inner: Any, rpc_id: Any) -> None:
        self._inner = inner
        self._rpc_id = rpc_id

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
                raise  # the SDK resumes an SSE stream with event ids by itself
            # The half-received event (if any) is dropped; the answer is an error event.
            payload = _error_payload(self._rpc_id, f"{IN_FLIGHT_MESSAGE} ({_why(exc)})")
            yield b"event: message\ndata: " + payload + b"\n\n"
            return
        if held:
            yield held

    async def aclose(self) -> None:
        await self._inner.aclose()


class WatchingTransport(httpx.AsyncBaseTransport):  # type: ignore[misc,unused-ignore]
    """Wraps the HTTP transport of one MCP connection (see the module's docstring)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        rpc = _rpc_request(request)
        if rpc is None:
            return await self._inner.handle_async_request(request)
        rpc_id = rpc[0]
        try:
            response = await self._inner.handle_async_request(request)
        except _REFUSED_ERRORS as exc:
            return _error_response(request, rpc_id, f"{REFUSED_MARK} ({_why(exc)})")
        except _IN_FLIGHT_ERRORS as exc:
            return _error_response(request, rpc_id, f"{IN_FLIGHT_MESSAGE} ({_why(exc)})")
        if response.status_code != 200:
            return response
        content_type = response.headers.get("content-type", "").lower()
        if content_type.startswith("text/event-stream"):
            response.stream = _WatchedEvents(response.stream, rpc_id)
        elif content_type.startswith("application/json"):
            body = b""
            try:
                async for chunk in response.stream:  # type: ignore[union-attr,unused-ignore]
                    body += chunk
            except _IN_FLIGHT_ERRORS as exc:
                return _error_response(request, rpc_id, f"{IN_FLIGHT_MESSAGE} ({_why(exc)})")
            finally:
                await response.aclose()
            headers = [
                (k, v)
                for k, v in response.headers.multi_items()
                if k.lower() not in ("content-length", "transfer-encoding")
            ]
            return httpx.Response(200, headers=headers, content=body, request=request, extensions=response.extensions)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def watch_factory(inner: Callable[..., Any]) -> Callable[..., Any]:
    """An ``httpx_client_factory`` that builds clients with ``inner`` and watches their transport."""

    def factory(*args: Any, **kwargs: Any) -> Any:
        client = inner(*args, **kwargs)
        transport = getattr(client, "_transport", None)
        if isinstance(transport, httpx.AsyncBaseTransport) and not isinstance(transport, WatchingTransport):
            client._transport = WatchingTransport(transport)
        mounts = getattr(client, "_mounts", None)
        if isinstance(mounts, dict):  # proxies from the environment: each has its own transport
            for pattern, mounted in list(mounts.items()):
                if isinstance(mounted, httpx.AsyncBaseTransport) and not isinstance(mounted, WatchingTransport):
                    mounts[pattern] = WatchingTransport(mounted)
        return client

    factory.__mcp_hooks_watching__ = True  # type: ignore[attr-defined]
    return factory
