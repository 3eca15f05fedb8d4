"""What the HTTP layer sees of a healed session: the structural signs of session loss.

:class:`WatchingTransport` wraps the transport of the HTTP client the SDK is handed. It reports to the
link (generation) whose SDK transport sent the request: the one link its client was made for
(``connect()`` makes a client per link), or the link a context variable names, which the relay sets
before it opens that transport (every task the SDK transport spawns inherits it):

- a 404 or 410 to a request that carried ``Mcp-Session-Id`` (or a 400 whose body names the session):
  the server forgot the session, the request did not run;
- a request that failed before any answer: refused (connection refused, so never sent) or lost in flight;
- a response stream that broke before its answer (the server died mid-call: mcp 1.x would wait forever);
- an event stream answering a request that ended cleanly without a single event (a server shutting down
  gracefully closes it: mcp 1.x would wait forever for the answer, even for the handshake's);
- the standing GET stream ending.

It also sends again, in place, a request the server refused with 429 or 503 (it never ran), when and
as often as the ``retry_refused`` hook says (:func:`send_refusable`).

Nothing is parsed on the happy path; the request body is read only when something went wrong.
"""

from __future__ import annotations

import contextvars
import email.utils
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import anyio
import pluggy

from ..calls import ToolCall
from ..manager import decide
from ..sdk import HTTPX

__all__ = ["EventStreamEnd", "LinkEvents", "current_link", "retry_after_seconds", "send_refusable", "watch_client"]

log = logging.getLogger("mcp_hooks.healing")

#: Statuses that refuse a request without running it, to be sent again later.
REFUSED_STATUSES = frozenset({429, 503})
#: However the hooks answer, one request is sent at most this many times.
MAX_SENDS = 10

_httpx: Any = HTTPX


class LinkEvents(Protocol):
    """What a link is told by the HTTP layer (a generation of the healing relay's, or of ``connect()``'s)."""

    session_id_seen: str | None

    @property
    def gone(self) -> bool: ...

    @property
    def server(self) -> str: ...

    @property
    def deadline(self) -> float | None:
        """Seconds a request may take, refusals sent again included (``None``: unknown)."""

    @property
    def pm(self) -> pluggy.PluginManager: ...

    def session_rejected(self, request_id: Any, status: int) -> None: ...

    def request_lost(self, request_id: Any, error: BaseException, *, refused: bool) -> None: ...

    def standing_stream_ended(self) -> None: ...

    def credentials_refused(self, status: int, request_id: Any = None) -> None:
        """The server refused the credentials of a new session's request ``request_id`` (it did not run)."""


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


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds: delay-seconds or an HTTP date (``None`` when absent or unreadable)."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _refused_call(request: Any, server: str, attempt: int) -> ToolCall:
    try:
        body = json.loads(request.content)
    except Exception:
        body = None
    params = body.get("params") if isinstance(body, dict) else None
    tool = params.get("name") if isinstance(params, dict) and body.get("method") == "tools/call" else None
    arguments = params.get("arguments") if tool is not None and isinstance(params, dict) else None
    return ToolCall(
        server=server,
        tool=tool if isinstance(tool, str) else None,
        arguments=arguments if isinstance(arguments, dict) else None,
        attempt=attempt,
        framework="mcp",
    )


#: JSON-RPC error code of a request the server refused (429/503) and that was not sent again.
REFUSED_CODE = -32029


def refused(response: Any, request: Any) -> bool:
    """The server refused a POST for now (429/503): :func:`send_refusable` decides whether to send it again."""
    return response.status_code in REFUSED_STATUSES and request.method == "POST"  # type: ignore[no-any-return]


async def send_refusable(
    send: Callable[[Any], Awaitable[Any]],
    request: Any,
    server: str,
    pm: pluggy.PluginManager,
    deadline: float | None = None,
    *,
    on_refusal: Callable[[int, str | None, float | None], None] | None = None,
    first: Any = None,
) -> Any:
    """``send(request)``; while the server refuses a POST with 429 or 503 and the ``retry_refused`` hook
    gives a wait, wait and send it again (at most :data:`MAX_SENDS` sends). ``first``: the answer to a first
    send the caller made itself (a caller whose happy path should not pass through here).

    A refusal that is not sent again is answered to the SDK as the request's JSON-RPC error (it names
    the status and ``Retry-After``, and says the request did not run): handed the HTTP error itself,
    mcp 1.x would tear the whole transport down and the request would look lost in flight.
    ``on_refusal(status, retry_after_header, wait)`` hears each refusal and the wait decided (``None``: not
    sent again). ``deadline``: seconds the request may take from now, refusals included (``None``:
    unknown); the hook is told what is left of it.
    """
    deadline_at = None if deadline is None else time.monotonic() + deadline
    for attempt in range(1, MAX_SENDS + 1):
        response = first if attempt == 1 and first is not None else await send(request)
        status = response.status_code
        if not refused(response, request):
            return response
        retry_after = retry_after_seconds(response.headers.get("retry-after"))
        call = _refused_call(request, server, attempt)
        remaining = None if deadline_at is None else max(0.0, deadline_at - time.monotonic())
        wait = decide(pm, "retry_refused", call=call, status=status, retry_after=retry_after, remaining=remaining)
        await response.aclose()
        again = attempt < MAX_SENDS and isinstance(wait, (int, float)) and not isinstance(wait, bool)
        wait = max(0.0, float(wait)) if again else None
        if on_refusal is not None:
            on_refusal(status, response.headers.get("retry-after"), wait)
        if wait is None:
            log.info("mcp_hooks: %s refused a request with HTTP %d; not sent again", server, status)
            return _refusal_answer(request, server, status, retry_after, response)
        log.info("mcp_hooks: %s refused a request with HTTP %d; sending it again in %.2f s", server, status, wait)
        await anyio.sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns


def _refusal_answer(request: Any, server: str, status: int, retry_after: float | None, response: Any) -> Any:
    try:
        body = json.loads(request.content)
    except Exception:
        body = None
    if not isinstance(body, dict) or "method" not in body or body.get("id") is None:
        return _httpx.Response(202, request=request)  # a notification: nothing waits for an answer
    later = f"; it asked to wait {retry_after:.0f} s" if retry_after is not None else ""
    message = f"MCP server {server} refused the request with HTTP {status}{later}. It did not run: try it again later."
    error = {
        "code": REFUSED_CODE,
        "message": message,
        "data": {
            "mcp-hooks": {"outcome": "not-run", "reason": "refused", "status": status, "retry_after": retry_after}
        },
    }
    headers = {"content-type": "application/json"}
    issued = response.headers.get("mcp-session-id")
    if issued:
        headers["mcp-session-id"] = issued
    payload = json.dumps({"jsonrpc": "2.0", "id": body["id"], "error": error}).encode()
    return _httpx.Response(200, headers=headers, content=payload, request=request)


def _refused(error: BaseException) -> bool:
    """The request surely never reached the server (no connection could be made)."""
    return isinstance(error, (_httpx.ConnectError, _httpx.ConnectTimeout, _httpx.PoolTimeout))


class EventStreamEnd(ConnectionError):
    """An event stream answering a request ended cleanly before any event: its answer is lost."""


class EventSeen:
    """Whether an event stream has carried an event yet (a ``data:`` or ``id:`` field), fed chunk by chunk.

    Only the bytes up to the first event are looked at (a field name split across two chunks is found
    too). A stream that ends with none answered nothing and cannot be resumed (no event id): the SDK
    would wait for its answer forever. Comments (``: ping``) are not events.
    """

    __slots__ = ("_tail", "seen")

    def __init__(self) -> None:
        self.seen = False
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        if self.seen:
            return
        window = self._tail + chunk
        if b"data:" in window or b"id:" in window:
            self.seen = True
        else:
            self._tail = window[-4:]

    def lost_answer(self, request: Any) -> EventStreamEnd | None:
        """At the stream's clean end: the error to report when it answered a request with nothing."""
        if self.seen or _request_id(request) is None:
            return None
        return EventStreamEnd("the server closed the response stream before it answered")


async def session_gone(response: Any, request: Any, server: str, pm: pluggy.PluginManager) -> Any | None:
    """A 401 to a request that carried the session id: when the ``should_reconnect`` hook takes it as the
    session dropped (the built-in plugin does, from :func:`~mcp_hooks.classify`: a gateway that dropped an
    idle session blames the token), the 404 the SDK understands as session loss, to hand on instead (it
    would tear its whole transport down on the 401: mcp 1.x raises it in its writer); ``None`` when a
    plugin vetoed it, and the 401 goes on to the SDK and its auth as it is."""
    error = _httpx.HTTPStatusError(
        "HTTP 401 to a request that carried Mcp-Session-Id",
        request=request,
        response=_httpx.Response(401, request=request),
    )
    if decide(pm, "should_reconnect", call=_refused_call(request, server, 1), error=error) is not True:
        return None
    await response.aclose()
    return _httpx.Response(404, request=request)


async def read_body(response: Any, limit: int = 65536) -> bytes:
    """The body of an HTTP response, read and closed (at most about ``limit`` bytes are kept)."""
    body = b""
    async for chunk in response.stream:
        body += chunk
        if len(body) > limit:
            break
    await response.stream.aclose()
    return body


def as_404(response: Any, request: Any, body: bytes) -> Any:
    """A session-loss answer other than 404 (410, a 400 naming the session), handed on as the 404 it means:
    mcp 1.x answers the request "Session terminated" on a 404, where any other such status tears its whole
    transport down, and with it the answers of the other requests still out."""
    return _httpx.Response(404, headers=response.headers, content=body, request=request, extensions=response.extensions)


async def read_400(response: Any, request: Any) -> tuple[Any, bool]:
    """A 400 to a session-bearing request, read whole: the response to hand on, and whether its body names
    the session (session loss: handed on as a 404). A JSON-RPC error answering this very request (the
    2026-07-28 protocol's ``-32020``/``-32022``: refused before it ran) is handed on as a 200 JSON answer,
    so the SDK gives the caller that error (mcp 1.x would tear its whole transport down on the 400) and the
    hooks judge it."""
    body = await read_body(response)
    extensions = response.extensions
    if b"session" in body.lower():
        return as_404(response, request, body), True
    try:
        answer = json.loads(body)
        asked = json.loads(request.content)
    except Exception:
        answer = asked = None
    if (
        isinstance(answer, dict)
        and isinstance(answer.get("error"), dict)
        and isinstance(asked, dict)
        and asked.get("id") is not None
        and answer.get("id") == asked.get("id")
    ):
        headers = {"content-type": "application/json"}
        return _httpx.Response(200, headers=headers, content=body, request=request, extensions=extensions), False
    return _httpx.Response(400, headers=response.headers, content=body, request=request, extensions=extensions), False


def event_stream(response: Any) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")


class WatchedBody(_httpx.AsyncByteStream):  # type: ignore[misc]
    """A response body passed through chunk by chunk that calls ``report`` once with how it ended: the
    error that broke it (or the answer its event stream lost), or ``None`` when it ended whole. A body
    the SDK stops reading early (it has its answer) reports nothing.

    Iterated by an async generator that closes the iterator beneath when it is closed itself: HTTPX closes
    the body's iterator once a response is done with (``httpx2``; ``httpx`` leaves it to be finalized, as
    it does its own), and an iterator beneath left open is finalized later by the event loop, in a task of
    its own: one more task on every call. Closing the body closes only the body beneath: the SDK's own
    generators left behind are finalized later, while the session waits for the server, as the SDK's own
    are. (Closing them in place, in the SDK's task, put that work between the answer and the next request:
    +90 us per call under mcp 1.30, measured.)"""

    __slots__ = ("_events", "_inner", "_report", "_request")

    def __init__(self, inner: Any, request: Any, events: bool, report: Callable[[Exception | None], None]) -> None:
        self._inner = inner
        self._request = request
        self._events = EventSeen() if events else None
        self._report = report

    async def __aiter__(self) -> AsyncIterator[bytes]:
        events = self._events
        chunks = self._inner.__aiter__()
        try:
            async for chunk in chunks:
                if events is not None:
                    events.feed(chunk)
                yield chunk
        except Exception as exc:
            self._report(exc)
            raise
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()
        self._report(None if events is None else events.lost_answer(self._request))

    async def aclose(self) -> None:
        await self._inner.aclose()


def _healing_report(link: LinkEvents, request: Any, standing: bool) -> Callable[[Exception | None], None]:
    if standing:
        return lambda error: link.standing_stream_ended()

    def report(error: Exception | None) -> None:
        if error is not None:
            link.request_lost(_request_id(request), error, refused=False)

    return report


class WatchingTransport(_httpx.AsyncBaseTransport):  # type: ignore[misc]
    """Passes every request through; tells the link it belongs to what it saw: ``link`` when given (a
    client made for one link, as ``connect()`` makes), else the current link (:data:`current_link`).
    ``owns_inner``: closing it closes the transport beneath (not when that pool is shared by links)."""

    def __init__(self, inner: Any, link: LinkEvents | None = None, *, owns_inner: bool = True) -> None:
        self._inner = inner
        self._link = link
        self._owns_inner = owns_inner

    async def handle_async_request(self, request: Any) -> Any:
        link = self._link if self._link is not None else current_link.get()
        if link is None:
            return await self._inner.handle_async_request(request)
        if request.method == "DELETE" and link.gone:
            # The session is already gone: closing it would only earn a 404 and a warning.
            return _httpx.Response(204, request=request)
        try:
            response = await self._inner.handle_async_request(request)
            if refused(response, request):
                response = await send_refusable(
                    self._inner.handle_async_request, request, link.server, link.pm, link.deadline, first=response
                )
        except Exception as exc:
            if request.method == "POST":
                link.request_lost(_request_id(request), exc, refused=_refused(exc))
            raise
        status = response.status_code
        if status < 300:
            if link.session_id_seen is None:  # (issued once per session: a header look-up is ~1 us a call)
                link.session_id_seen = response.headers.get("mcp-session-id")
            if request.method in ("GET", "POST"):
                standing = request.method == "GET"
                events = not standing and event_stream(response)
                response.stream = WatchedBody(
                    response.stream, request, events, _healing_report(link, request, standing)
                )
            return response
        carried_session = request.headers.get("mcp-session-id") is not None
        if status in (401, 403) and not carried_session and request.method == "POST":
            return response  # a new session's handshake: the client's auth may retry (see _FinalAnswer)
        if status in (400, 401, 404, 410) and carried_session:
            named = True
            if status == 401:
                gone = await session_gone(response, request, link.server, link.pm)
                if gone is None:
                    return response
                response = gone
            if status == 400:
                response, named = await read_400(response, request)
            elif status == 410:
                response = as_404(response, request, await read_body(response))
            if named and request.method != "DELETE":
                link.session_rejected(_request_id(request) if request.method == "POST" else None, status)
        return response

    async def aclose(self) -> None:
        if self._owns_inner:
            await self._inner.aclose()


def watch_client(client: Any, link: LinkEvents | None = None, *, owns_transport: bool = True) -> bool:
    """Wrap ``client``'s transports in place (idempotent); ``False`` when this httpx has no such attribute.

    The wrapper is a pass-through for requests made outside a healed session, so it is never removed.
    ``link``: the one link every request of this client belongs to (else the current link, request by
    request); ``owns_transport=False``: the client's transport is a pool shared with other clients, left
    open when this client closes.
    """
    transport = getattr(client, "_transport", None)
    mounts = getattr(client, "_mounts", None)
    if transport is None:
        return False
    if not isinstance(transport, WatchingTransport):
        client._transport = WatchingTransport(transport, link, owns_inner=owns_transport)
    if isinstance(mounts, dict):
        for pattern, mounted in list(mounts.items()):
            if mounted is not None and not isinstance(mounted, WatchingTransport):
                mounts[pattern] = WatchingTransport(mounted, link)
    if "send" not in vars(client):
        client.send = _FinalAnswer(client.send, link)
    return True


async def drop_idle_connections(client: Any) -> None:
    """Close the kept-alive connections ``client`` is not using, before a rebuilt session's first request.

    A new session's ``initialize`` sent on a connection kept alive from the session before was answered
    about 40 ms late, against 2 ms on a new connection (mcp 1.30 and 2.3, the SDK alone sharing one
    client too); a new client would cost its TLS context instead (about 18 ms). Best effort: a client
    whose pool cannot be reached is left as it is."""
    transports = [getattr(client, "_transport", None), *(getattr(client, "_mounts", None) or {}).values()]
    for transport in transports:
        await close_idle(transport._inner if isinstance(transport, WatchingTransport) else transport)


async def close_idle(transport: Any) -> None:
    """Close the idle connections of one HTTP transport's pool (see :func:`drop_idle_connections`)."""
    pool = getattr(transport, "_pool", None)
    for connection in list(getattr(pool, "connections", None) or ()):
        try:
            if connection.is_idle():
                await connection.aclose()
        except Exception:  # a connection's own trouble: it is not ours to report
            log.debug("mcp_hooks: could not close an idle connection", exc_info=True)


class _FinalAnswer:
    """The client's ``send`` (above its auth, below the SDK): a 401 or 403 to a new session's handshake is
    an auth failure only once the client's ``httpx.Auth`` (an OAuth provider, a refreshing token) has had
    its turn, so it is judged here, on the answer the SDK receives, not in the transport beneath."""

    __slots__ = ("_link", "_send")

    def __init__(self, send: Callable[..., Awaitable[Any]], link: LinkEvents | None = None) -> None:
        self._send = send
        self._link = link

    async def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        response = await self._send(request, *args, **kwargs)
        if response.status_code not in (401, 403):
            return response
        link = self._link if self._link is not None else current_link.get()
        if link is not None and request.method == "POST" and request.headers.get("mcp-session-id") is None:
            link.credentials_refused(response.status_code, _request_id(request))
        return response
