"""What healing needs from the SDK session object itself: ``ClientSession.send_request`` is wrapped, for
sessions over a healed transport only (``connect()`` heals by its own means), for two things the relay
beneath the session cannot do alone.

**A request its caller abandoned is never sent later** (mcp 1.x). A caller that gives up on a call (a
cancelled task, ``asyncio.wait_for``, the SDK's read timeout) leaves the relay holding the request, since
mcp 1.x tells nobody (mcp 2.x sends ``notifications/cancelled`` itself). During an outage the relay would
then send it once the server is back, and a write the caller saw fail would run after all. So the relay is
told at once: it forgets the request and, if the server has it, tells the server
(``notifications/cancelled``), as mcp 2.x does.

**The session-less era negotiated again when it later fails** (mcp 2.x, the 2026-07-28 protocol). An mcp
2.x session in ``mode="auto"`` picks its era once, at connect (``server/discover``, else the ``initialize``
handshake), and keeps it. When the server is later replaced by one that no longer speaks that version (a
rolling upgrade, a rollback to a pre-2026 server), every request is refused before it runs: ``-32022``
UnsupportedProtocolVersion, or a pre-2026 server's 400 asking for the session a session-less request never
has. The versioning rules say to probe again; the SDK never does, and the relay cannot, since the era lives
in the session object. So a request so refused makes the session negotiate again in place, once for all
the requests that failed together (the SDK's own ``negotiate_auto`` and ``adopt()``, which resets the
negotiated state cleanly), when the ``should_reconnect`` hook agrees; then the request, which never ran, is
sent again, once. A session that fell back to the handshake is from then on an ordinary session, healed by
the relay like any other.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import time
import weakref
from typing import Any

import anyio

from ..calls import ToolCall
from ..classify import era_refused
from ..manager import decide, notify
from ..patch import Patch
from ..sdk import MCP_MAJOR

__all__ = ["RENEGOTIATE_TIMEOUT", "SEND_REQUEST"]

log = logging.getLogger("mcp_hooks.healing")

#: Seconds one re-negotiation may take before the refusal is given back as it was.
RENEGOTIATE_TIMEOUT = 15.0
#: The code of mcp 1.x's own read timeout (``McpError``: HTTP 408's number).
_REQUEST_TIMEOUT = 408

_renegotiating: contextvars.ContextVar[bool] = contextvars.ContextVar("mcp_hooks_renegotiating", default=False)
_locks: weakref.WeakKeyDictionary[Any, anyio.Lock] = weakref.WeakKeyDictionary()


def _modern(session: Any) -> bool:
    versions = getattr(importlib.import_module("mcp_types.version"), "MODERN_PROTOCOL_VERSIONS", ())
    return getattr(session, "_negotiated_version", None) in versions


def _relay_of(session: Any) -> Any:
    """The healing relay beneath ``session``, or ``None`` when its transport is not healed."""
    from .streams import _SessionWriter

    writer = getattr(session, "_write_stream", None)  # mcp 1.x
    if writer is None:
        writer = getattr(getattr(session, "_dispatcher", None), "_write_stream", None)  # mcp 2.x
    return writer._relay if isinstance(writer, _SessionWriter) else None


async def _renegotiate(session: Any, stamp_at_send: Any, error: BaseException) -> bool:
    """Make ``session`` negotiate its era again (once for every request refused together); whether the
    refused request should be sent again."""
    relay = _relay_of(session)
    if relay is None or _renegotiating.get():
        return False
    lock = _locks.setdefault(session, anyio.Lock())
    async with lock:
        if getattr(session, "_stamp", None) is not stamp_at_send:
            return True  # negotiated again meanwhile, for another request refused together
        stamp_version = getattr(session, "_negotiated_version", None)
        call = ToolCall(server=relay.server, owner=relay, framework="mcp")
        if decide(relay.pm, "should_reconnect", call=call, error=error) is not True:
            return False
        notify(relay.pm, "on_reconnect", call=call, error=error)
        started = time.monotonic()
        token = _renegotiating.set(True)
        stamp = session._stamp
        try:
            negotiate = importlib.import_module("mcp.client._probe").negotiate_auto
            # what the session stamps on requests before any negotiation (else the fallback ``initialize``
            # would carry the session-less version, and a pre-2026 server would refuse it for that)
            session._stamp = getattr(importlib.import_module("mcp.client.session"), "_preconnect_stamp", stamp)
            with anyio.fail_after(RENEGOTIATE_TIMEOUT):
                await negotiate(session)
        except Exception as exc:
            if session._stamp is not stamp and getattr(session, "_negotiated_version", None) == stamp_version:
                session._stamp = stamp  # nothing adopted: the session stays as it was
            log.info("mcp_hooks: %s: negotiating the protocol again failed: %r", relay.server, exc)
            notify(relay.pm, "on_rebuilt", call=call, error=exc, seconds=time.monotonic() - started)
            return False
        finally:
            _renegotiating.reset(token)
        log.info(
            "mcp_hooks: %s: the server refused the session-less protocol version; negotiated again: %s",
            relay.server,
            getattr(session, "_negotiated_version", None),
        )
        notify(relay.pm, "on_rebuilt", call=call, error=None, seconds=time.monotonic() - started)
        return True


def _abandoned(error: BaseException) -> bool:
    """The caller no longer waits for the request: its task was cancelled, or the SDK's read timeout
    (mcp 1.x: ``McpError`` 408) gave it up."""
    if isinstance(error, (anyio.get_cancelled_exc_class(), TimeoutError)):
        return True
    code = getattr(getattr(error, "error", None), "code", None)
    return code == _REQUEST_TIMEOUT


async def _send_request(wrapped: Any, session: Any, args: Any, kwargs: Any) -> Any:
    """``ClientSession.send_request``, for the two things above (sessions over a healed transport only)."""
    stamp = getattr(session, "_stamp", None)  # mcp 2.x: the era the request is sent in
    request_id = getattr(session, "_request_id", None)  # mcp 1.x: the id the request gets
    try:
        return await wrapped(*args, **kwargs)
    except BaseException as exc:
        if MCP_MAJOR < 2:
            if isinstance(request_id, int) and _abandoned(exc):
                relay = _relay_of(session)
                if relay is not None:
                    relay.abandon(request_id, "the caller gave the request up")
            raise
        if (
            not isinstance(exc, Exception)
            or not era_refused(exc)
            or not _modern(session)
            or not await _renegotiate(session, stamp, exc)
        ):
            raise
    return await wrapped(*args, **kwargs)  # it never ran: sent again, once


#: ``ClientSession.send_request`` wrapped in place while ``instrument("mcp")`` is on (inherited from
#: ``BaseSession`` under mcp 1.x: put back by removing it again).
SEND_REQUEST = Patch("mcp.client.session", "ClientSession.send_request", _send_request, owner="mcp_hooks.healing")
