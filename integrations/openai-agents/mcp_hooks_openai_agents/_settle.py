"""A session being replaced is settled, never waited for: the requests still pending on it get their own
answers for a moment, then (mcp 1.x) "Connection closed"; and it is sealed, so a request that reaches it
late is refused at once as never sent (:data:`~mcp_hooks_openai_agents.REFUSED_MARK`) and replayed on the
new session."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mcp_hooks.healing import settle

log = logging.getLogger("mcp_hooks.openai_agents")


#: How long requests still pending on a session being replaced may take to get their own answers.
SETTLE_GRACE = 0.5

#: Ends the message of the shim's refusal of a request made on an mcp 1.x session it already settled.
SEALED_DETAIL = "(the session was being closed)"


async def _settle_pending(server: Any, grace: float = SETTLE_GRACE) -> None:
    """Let the requests on ``server``'s old session finish before it is closed, then settle the rest.

    Calls queued on openai-agents' request lock (it sends one request at a time over streamable HTTP)
    go out on the old session and get their own answers, typically the 404 of a restarted server,
    which proves the request did not run. Whatever is still pending after ``grace`` seconds is
    answered "Connection closed" (lost in flight, replayed only if safe) by :func:`_settle_now`, which
    also seals the session: a queued call that gets the lock after that point (the lock is free for a
    moment between two queued calls, so "not busy" can be seen while calls still wait) is refused at
    once as never sent, instead of going out on a connection being closed.
    """
    session = getattr(server, "session", None)
    streams = getattr(session, "_response_streams", None)
    lock = getattr(server, "_request_lock", None) if getattr(server, "_serialize_session_requests", False) else None

    def busy() -> bool:
        return bool(streams) or (lock is not None and lock.locked())

    if grace > 0 and busy():
        loop = asyncio.get_running_loop()
        until = loop.time() + grace
        while busy() and loop.time() < until:  # noqa: ASYNC110 - the SDK's tables have no event to wait on
            await asyncio.sleep(0.01)
    _settle_now(session)


def _settle_now(session: Any) -> None:
    """Seal a ``session`` that is about to be closed, and (mcp 1.x) answer every request still pending
    on it with "Connection closed" (no await).

    openai-agents' calls take ``server.session`` before they queue on its request lock, so one can reach
    the old session while it is being closed. The seal refuses such a request at once as never sent, so
    it is replayed on the new session even when it is a write: under mcp 1.x it would otherwise be
    handed to a transport that is shutting down and never be answered; under mcp 2.x the closed session
    refuses it with the same "Connection closed" as a request lost in flight, so a write that never left
    would end as ``OutcomeUncertain``.

    mcp 1.x means to answer pending requests itself when a session closes, but with ``await`` inside
    the scope being cancelled, so the answers never go out and the callers wait for their read timeout
    (forever without one): they are answered here. mcp 2.x answers pending requests itself,
    synchronously (and has no ``_response_streams``).
    """
    _seal(session)
    settle.fail_pending(session)


def _seal(session: Any) -> None:
    """From now on ``session`` sends no request: each is refused as never sent.

    mcp 1.x: its write stream is replaced by :class:`_Sealed`. mcp 2.x: its dispatcher's
    ``send_raw_request`` (the one way a request leaves) is shadowed on the instance."""
    write_stream = getattr(session, "_write_stream", None)
    if write_stream is not None:
        if isinstance(write_stream, _Sealed):
            return
        try:
            session._write_stream = _Sealed(write_stream)
        except (AttributeError, TypeError) as exc:  # not the 1.x shape after all
            log.debug("mcp_hooks: sealing the session %r: %r", session, exc)
        return
    dispatcher = getattr(session, "_dispatcher", None)
    if dispatcher is None or "send_raw_request" in getattr(dispatcher, "__dict__", {}):
        return
    try:
        from mcp.shared.exceptions import MCPError  # type: ignore[attr-defined,unused-ignore]  # mcp 2.x only
        from mcp.types import CONNECTION_CLOSED
    except ImportError:  # not the 2.x shape after all
        return

    from . import REFUSED_MARK

    async def refused(method: str, params: Any = None, opts: Any = None, **_: Any) -> Any:
        log.debug("mcp_hooks: %s refused: the session was settled and is being closed", method)
        raise MCPError(code=CONNECTION_CLOSED, message=f"{REFUSED_MARK} {SEALED_DETAIL}")

    try:
        dispatcher.send_raw_request = refused
    except (AttributeError, TypeError) as exc:
        log.debug("mcp_hooks: sealing the session %r: %r", session, exc)


class _Sealed:
    """The write stream of an mcp 1.x session the shim settled: it sends nothing more.

    A request is refused with the SDK's own ``McpError`` (``-32000``, :data:`REFUSED_MARK`): it never
    left, so the shim's plugin has it replayed (once the session is rebuilt) even for a write. Anything
    else (a notification, an answer to the server) is dropped: the session is being closed. Only this
    name is rebound on the session; the transport and the session's own receive loop keep the real
    stream, and close it as usual.
    """

    __slots__ = ("_inner",)

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def send(self, item: Any) -> None:
        message = getattr(getattr(item, "message", None), "root", None)
        method = getattr(message, "method", None)
        if getattr(message, "id", None) is not None and isinstance(method, str):
            from mcp.shared.exceptions import McpError  # type: ignore[attr-defined,unused-ignore]  # mcp 1.x only
            from mcp.types import CONNECTION_CLOSED, ErrorData

            from . import REFUSED_MARK

            log.debug("mcp_hooks: %s refused: the session was settled and is being closed", method)
            raise McpError(ErrorData(code=CONNECTION_CLOSED, message=f"{REFUSED_MARK} {SEALED_DETAIL}"))
        log.debug("mcp_hooks: %r dropped: the session was settled and is being closed", method)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
