"""The session-less era re-negotiated when it later fails (mcp 2.x, the 2026-07-28 protocol).

An mcp 2.x session in ``mode="auto"`` picks its era once, at connect (``server/discover``, else the
``initialize`` handshake), and keeps it for its whole life. When the server is later replaced by one that
no longer speaks that version (a rolling upgrade, a rollback to a pre-2026 server), every request is
refused before it runs: ``-32022`` UnsupportedProtocolVersion, or a pre-2026 server's 400 asking for the
session a session-less request never has. The versioning rules say to probe again; the SDK never does, and
the healing relay beneath the session cannot, since the era lives in the session object.

So, for a session over a healed transport only (``connect()`` builds a new client instead), a request so
refused makes the session negotiate again in place, once for all the requests that failed together (the
SDK's own ``negotiate_auto`` and ``adopt()``, which resets the negotiated state cleanly), when the
``should_reconnect`` hook agrees; then the request, which never ran, is sent again, once. A session that
fell back to the handshake is from then on an ordinary session, healed by the relay like any other.
"""

from __future__ import annotations

import contextvars
import importlib
import logging
import time
import types
import weakref
from typing import Any

import anyio

from ..calls import ToolCall
from ..classify import Loss, classify
from ..manager import decide, notify
from .messages import MCP_MAJOR

__all__ = ["RENEGOTIATE_TIMEOUT", "install", "uninstall"]

log = logging.getLogger("mcp_hooks.healing")

#: Seconds one re-negotiation may take before the refusal is given back as it was.
RENEGOTIATE_TIMEOUT = 15.0
#: JSON-RPC UnsupportedProtocolVersion.
_UNSUPPORTED_VERSION = -32022

_renegotiating: contextvars.ContextVar[bool] = contextvars.ContextVar("mcp_hooks_renegotiating", default=False)
_locks: weakref.WeakKeyDictionary[Any, anyio.Lock] = weakref.WeakKeyDictionary()
#: [the SDK's own send_request, ours] while ours is in place; ours hands everything on while not active.
_wrapping: list[Any] = []
_active = [False]


def _modern(session: Any) -> bool:
    versions = getattr(importlib.import_module("mcp_types.version"), "MODERN_PROTOCOL_VERSIONS", ())
    return getattr(session, "_negotiated_version", None) in versions


def _refused_for_its_era(error: BaseException) -> bool:
    """A session-less request refused before it ran because of the era: ``-32022``, or a server that asks
    for a session (a pre-2026 server answering a 2026-07-28 request)."""
    inner = getattr(error, "error", None)
    code = getattr(inner, "code", getattr(error, "code", None))
    if code == _UNSUPPORTED_VERSION:
        return True
    verdict = classify(error)
    return verdict.loss is Loss.REJECTED and "session" in str(error).lower()


def _relay_of(session: Any) -> Any:
    """The healing relay beneath ``session``, or ``None`` when its transport is not healed."""
    from .relay import _SessionWriter

    writer = getattr(getattr(session, "_dispatcher", None), "_write_stream", None)
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


def _healing_send_request(original: Any) -> Any:
    # ``original`` is bound as a class attribute would be: it may be another wrapper (an observability
    # integration's), which needs to know its instance.
    plain = isinstance(original, types.FunctionType)

    async def send_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        stamp = getattr(self, "_stamp", None)
        try:
            if plain:
                return await original(self, *args, **kwargs)
            return await original.__get__(self, type(self))(*args, **kwargs)
        except Exception as exc:
            if (
                not _active[0]
                or not _refused_for_its_era(exc)
                or not _modern(self)
                or not await _renegotiate(self, stamp, exc)
            ):
                raise
        return await original.__get__(self, type(self))(*args, **kwargs)  # it never ran: sent again, once

    send_request.__wrapped__ = original  # type: ignore[attr-defined]
    send_request.__doc__ = original.__doc__
    return send_request


def install() -> None:
    """Heal the era of every mcp 2.x ``ClientSession`` over a healed transport (no-op under mcp 1.x)."""
    if MCP_MAJOR < 2:
        return
    _active[0] = True
    if _wrapping:
        return  # still in place (someone wrapped it after us): active again
    cls = importlib.import_module("mcp.client.session").ClientSession
    original = cls.__dict__["send_request"]
    ours = _healing_send_request(original)
    _wrapping[:] = [original, ours]
    cls.send_request = ours


def uninstall() -> None:
    """Give the SDK its own ``send_request`` back; if someone wrapped it after us, ours stays beneath
    theirs and hands everything on unchanged."""
    _active[0] = False
    if not _wrapping:
        return
    original, ours = _wrapping
    cls = importlib.import_module("mcp.client.session").ClientSession
    if cls.__dict__.get("send_request") is ours:
        cls.send_request = original
        _wrapping.clear()
