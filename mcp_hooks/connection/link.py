"""One generation of a ``connect()`` session (:class:`_Link`): its transport, its SDK session, and what
the HTTP watcher (:class:`_WatchingTransport`) saw of it.

Every request of a link goes through the watcher, which sees

- a 404 or 410 to a request that carried ``Mcp-Session-Id`` (or a 400 whose body names the session):
  the server forgot the session; errors of calls on that link are marked :data:`Loss.REJECTED`
  whatever their wording, and the link is rebuilt in the background at once;
- a response stream that breaks (the server died mid-answer) or a standing GET stream that ends: the
  link is rebuilt in the background; calls still waiting on it are given a moment to receive their
  answers and are then settled as lost in flight, instead of hanging (mcp 1.x never fails them).

What it sees it reports to a :class:`LinkWatcher` (the session), which decides nothing here either: the
session gives the link up and the hooks decide what the calls on it do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from ..classify import SessionLostMark
from ..engine import RecoveryPolicy
from ..healing.watch import WatchedBody, event_stream, read_400, send_refusable, session_gone
from ..sdk import HTTPX as _httpx


class LinkWatcher(Protocol):
    """What the watcher of a link reports to (the session that owns the link)."""

    server: str
    _deadline: float
    _tool_policy: RecoveryPolicy

    def _session_rejected(self, link: _Link, status: int, method: str) -> None: ...
    def _stream_broke(self, link: _Link, error: Exception, standing: bool) -> None: ...
    def _standing_stream_ended(self, link: _Link) -> None: ...
    def _request_failed(self, link: _Link, request: Any, error: Exception, with_session: bool) -> None: ...


def _uncancel(task: asyncio.Task[Any]) -> None:
    """Take back one cancellation of ``task`` that was turned into an error (Python 3.11+; a no-op before)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


class _Link:
    """One generation: a transport, its SDK session, and what the watcher saw of it."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.api: Any = None
        self.sdk_session: Any = None  # the SDK's ClientSession (under mcp 2.x, inside api)
        self.session_id: str | None = None
        self.stop = asyncio.Event()
        self.usable = False
        self.trouble: SessionLostMark | None = None  # why it is being given up
        self.rejected_status: int | None = None
        self.lost_in_flight = False
        self.callers: set[asyncio.Task[Any]] = set()
        self.cut: set[asyncio.Task[Any]] = set()
        self.death: BaseException | None = None
        self.drained = asyncio.Event()
        self.annotations: dict[str, Any] | None = None
        self.opening: asyncio.Task[Any] | None = None  # the owner task, while it opens this link
        self.aborted: str | None = None  # why its opening was cut short
        self.refused_credentials: int | None = None  # 401/403 to this link's handshake

    def abort_opening(self, why: str) -> None:
        """Cut short an opening that can no longer succeed (its handshake was lost, or it took too long)."""
        if self.opening is not None and self.aborted is None:
            self.aborted = why
            self.opening.cancel()

    def leave(self, task: asyncio.Task[Any]) -> None:
        self.callers.discard(task)
        if not self.callers:
            self.drained.set()


class _WatchingTransport(_httpx.AsyncBaseTransport):  # type: ignore[misc]
    """One link's view of the session's HTTP connection pool: it reports what it sees about the session."""

    def __init__(self, inner: Any, owner: LinkWatcher, link: _Link) -> None:
        self._inner = inner
        self._owner = owner
        self._link = link

    async def handle_async_request(self, request: Any) -> Any:
        link = self._link
        sent_session = request.headers.get("mcp-session-id")
        if request.method == "DELETE" and link.trouble is not None:
            # The session is already gone: closing it would only earn a 404 and a warning.
            return _httpx.Response(204, request=request)
        try:
            owner = self._owner
            response = await send_refusable(
                self._inner.handle_async_request,
                request,
                owner.server,
                owner._tool_policy.manager(),
                deadline=owner._deadline,
            )
        except Exception as exc:
            self._owner._request_failed(link, request, exc, sent_session is not None)
            raise
        status = response.status_code
        if sent_session is None:
            issued = response.headers.get("mcp-session-id")
            if issued:
                link.session_id = issued
            if status in (401, 403) and request.method == "POST":
                link.refused_credentials = status  # a new session's handshake: the credentials are refused
        elif status in (404, 410, 401) or status == 400:
            if status == 401:  # taken as the session dropped (a gateway's GC): the SDK is shown a 404
                gone = await session_gone(response, request, owner.server, owner._tool_policy.manager())
                if gone is None:  # a plugin said it is not: the SDK and its auth see the 401
                    return response
                response = gone
            if status == 400:
                response, named = await read_400(response, request)
            else:
                named = True
            if named:
                self._owner._session_rejected(link, status, request.method)
            return response
        if status < 300 and request.method in ("GET", "POST"):
            standing = request.method == "GET"
            events = not standing and event_stream(response)
            response.stream = WatchedBody(response.stream, request, events, self._report(link, standing))
        return response

    def _report(self, link: _Link, standing: bool) -> Callable[[Exception | None], None]:
        owner = self._owner

        def report(error: Exception | None) -> None:
            if error is not None:  # broken (or, e.g., the handshake's answer lost by a server shutting down)
                owner._stream_broke(link, error, standing)
            elif standing:
                owner._standing_stream_ended(link)

        return report

    async def aclose(self) -> None:
        """Nothing to close: the pool beneath is the session's, shared by its links, closed with it."""
