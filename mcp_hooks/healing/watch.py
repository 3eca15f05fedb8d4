"""What the HTTP layer sees of a healed session: the structural signs of session loss.

:class:`WatchingTransport` wraps the transport of the HTTP client the SDK is handed. It reports to the
link (generation) whose SDK transport sent the request, found through a context variable the relay
sets before it opens that transport (every task the SDK transport spawns inherits it):

- a 404 or 410 to a request that carried ``Mcp-Session-Id`` (or a 400 whose body names the session):
  the server forgot the session, the request did not run;
- a request that failed before any answer: refused (connection refused, so never sent) or lost in flight;
- a response stream that broke before its answer (the server died mid-call: mcp 1.x would wait forever);
- the standing GET stream ending.

Nothing is parsed on the happy path; the request body is read only when something went wrong.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import AsyncIterator
from typing import Any, Protocol

from .messages import MCP_MAJOR

__all__ = ["LinkEvents", "current_link", "watch_client"]

import importlib

_httpx: Any = importlib.import_module("httpx2" if MCP_MAJOR >= 2 else "httpx")


class LinkEvents(Protocol):
    """What a link is told by the HTTP layer."""

    gone: bool
    session_id_seen: str | None

    def session_rejected(self, request_id: Any, status: int) -> None: ...

    def request_lost(self, request_id: Any, error: BaseException, *, refused: bool) -> None: ...

    def standing_stream_ended(self) -> None: ...


#: The link whose SDK transport is making the current request (unset outside healed sessions).
current_link: contextvars.ContextVar[LinkEvents | None] = contextvars.ContextVar("mcp_hooks_link", default=None)


def _request_id(request: Any) -> Any:
    """The JSON-RPC id of a POSTed request, or ``None`` (notification, response, batch, unreadable)."""
    try:
        body = json.loads(request.content)
    except Exception:
        return None
    if isinstance(body, dict) and "method" in body:
        return body.get("id")
    return None


def _refused(error: BaseException) -> bool:
    """The request surely never reached the server (no connection could be made)."""
    return isinstance(error, (_httpx.ConnectError, _httpx.ConnectTimeout, _httpx.PoolTimeout))


class _WatchedBody(_httpx.AsyncByteStream):  # type: ignore[misc]
    def __init__(self, inner: Any, link: LinkEvents, request: Any, standing: bool) -> None:
        self._inner = inner
        self._link = link
        self._request = request
        self._standing = standing

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as exc:
            if self._standing:
                self._link.standing_stream_ended()
            else:
                self._link.request_lost(_request_id(self._request), exc, refused=False)
            raise
        if self._standing:
            self._link.standing_stream_ended()

    async def aclose(self) -> None:
        await self._inner.aclose()


class WatchingTransport(_httpx.AsyncBaseTransport):  # type: ignore[misc]
    """Passes every request through; tells the current link what it saw."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def handle_async_request(self, request: Any) -> Any:
        link = current_link.get()
        if link is None:
            return await self._inner.handle_async_request(request)
        if request.method == "DELETE" and link.gone:
            # The session is already gone: closing it would only earn a 404 and a warning.
            return _httpx.Response(204, request=request)
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as exc:
            if request.method == "POST":
                link.request_lost(_request_id(request), exc, refused=_refused(exc))
            raise
        status = response.status_code
        issued = response.headers.get("mcp-session-id")
        if issued is not None and status < 300:
            link.session_id_seen = issued
        if status in (400, 404, 410) and request.headers.get("mcp-session-id") is not None:
            named = True
            if status == 400:
                body = b""
                async for chunk in response.stream:
                    body += chunk
                    if len(body) > 65536:
                        break
                await response.stream.aclose()
                response = _httpx.Response(
                    status, headers=response.headers, content=body, request=request, extensions=response.extensions
                )
                named = b"session" in body.lower()
            if named and request.method != "DELETE":
                link.session_rejected(_request_id(request) if request.method == "POST" else None, status)
            return response
        if status < 300 and request.method in ("GET", "POST"):
            response.stream = _WatchedBody(response.stream, link, request, standing=request.method == "GET")
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def watch_client(client: Any) -> bool:
    """Wrap ``client``'s transports in place (idempotent); ``False`` when this httpx has no such attribute.

    The wrapper is a pass-through for requests made outside a healed session, so it is never removed.
    """
    transport = getattr(client, "_transport", None)
    mounts = getattr(client, "_mounts", None)
    if transport is None:
        return False
    if not isinstance(transport, WatchingTransport):
        client._transport = WatchingTransport(transport)
    if isinstance(mounts, dict):
        for pattern, mounted in list(mounts.items()):
            if mounted is not None and not isinstance(mounted, WatchingTransport):
                mounts[pattern] = WatchingTransport(mounted)
    return True
