"""Rebuilding a fastmcp ``Client``'s session in place, the way the client itself opens one.

A fastmcp ``Client`` runs its MCP session in a background task (``Client._session_runner``) that
enters the transport, sets ``ready_event``, and waits for ``stop_event``; contexts (``async with
client``) are reference counted in ``_session_state.nesting_counter``. ``client.close()`` followed by
a new ``async with`` rebuilds the session, but zeroes the count: on fastmcp 3.x the first outer exit
afterwards stops the *new* session under the other holders, and on fastmcp 4 the outer contexts' exits
no longer release anything (their holds name the old session task), so the new session leaks.

So the rebuild here does what ``close()`` and ``_connect()`` do, under the client's own session lock
(no context can enter or exit half way): let requests still in flight on the old session receive
their answers (up to 1 s: after a restart their 404s are on their way, and a refused request is safe
to send again), stop the old runner (bounded, as ``_stop_session`` does), close the transport (as
``close()`` does: resets an HTTP session id, respawns a stdio subprocess), start a new
``_session_runner`` task and wait for it to be ready. The reference count is kept, and on fastmcp 4
the holds of the contexts entered before are moved to the new session task, so the last outer exit
closes the rebuilt session exactly as it would have closed the original one.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import weakref
from collections.abc import Mapping
from typing import Any

import anyio

from mcp_hooks.classify import Loss, classify

log = logging.getLogger("mcp_hooks.fastmcp")

#: How long the rebuild waits for the old session task to unwind when the client has no
#: ``_disconnect_timeout`` of its own.
DEFAULT_STOP_TIMEOUT = 5.0
#: How long one rebuild keeps trying a server that refuses connections (restarting), and its backoff.
REBUILD_ATTEMPT = 10.0
RETRY_PAUSE_INITIAL = 0.1
RETRY_PAUSE_MAX = 1.0
#: How long requests still pending on the old session may take to receive their answers (a restart's
#: 404s are usually on their way) before the old session is stopped under them.
DRAIN_GRACE = 1.0
#: How long listing the tools on the rebuilt session (for their annotations) may take.
LIST_TOOLS_TIMEOUT = 2.0

#: What fastmcp raises for a request made while the client holds no session.
NOT_CONNECTED_TEXT = "Client is not connected"
#: What fastmcp raises for a request in flight when the session task ended without an error.
RUNNER_ENDED_TEXT = "Session task completed unexpectedly"
#: The SDK's own code for a connection that closed with requests outstanding (both majors).
CONNECTION_CLOSED = -32000

_annotations: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def client_class() -> type[Any] | None:
    """``fastmcp.client.client.Client`` if fastmcp is imported, else ``None`` (never imports it)."""
    module = sys.modules.get("fastmcp.client.client")
    cls = getattr(module, "Client", None) if module is not None else None
    return cls if isinstance(cls, type) else None


def is_client(owner: Any) -> bool:
    cls = client_class()
    return cls is not None and isinstance(owner, cls)


def is_held(client: Any) -> bool:
    """Whether some context still holds the client (``async with client`` not yet exited)."""
    state = getattr(client, "_session_state", None)
    counter = getattr(state, "nesting_counter", 0)
    return isinstance(counter, int) and counter > 0


def known_annotations(client: Any, tool: str) -> Any:
    """The annotations of ``tool`` as last listed by a rebuild of ``client``'s session, or ``None``."""
    try:
        return _annotations.get(client, {}).get(tool)
    except TypeError:  # not weak-referenceable
        return None


def plain_annotations(annotations: Any) -> Any:
    """Annotations as a plain mapping. fastmcp 4 makes the SDK 1.x camelCase attributes of
    ``ToolAnnotations`` (``readOnlyHint``, ...) emit a ``FastMCPDeprecationWarning`` when read, which a
    warnings-as-errors test run turns into an exception; reading the model's own fields avoids that."""
    if annotations is None or isinstance(annotations, Mapping):
        return annotations
    dump = getattr(annotations, "model_dump", None)
    if callable(dump):
        try:
            return dump(exclude_none=True)
        except Exception:
            return None
    return annotations


def _record_annotations(client: Any, listing: Any) -> None:
    tools = getattr(listing, "tools", listing)
    if not isinstance(tools, (list, tuple)):
        return
    found: dict[str, Any] = {}
    for tool in tools:
        name = getattr(tool, "name", None)
        if isinstance(name, str):
            found[name] = plain_annotations(getattr(tool, "annotations", None))
    try:
        _annotations[client] = found
    except TypeError:
        pass


async def _settle(task: asyncio.Task[Any], limit: float) -> None:
    """Wait (bounded) for an old session task to end, cancel it if it overruns, and retrieve its
    outcome so nothing is reported as "never retrieved". Never raises the task's own error."""
    if not task.done():
        await asyncio.wait({task}, timeout=limit)
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=limit)
    if task.done() and not task.cancelled():
        task.exception()


def _pending_requests(session: Any) -> Mapping[Any, Any]:
    """The requests of an SDK session still waiting for an answer (mcp 1.x and 2.x)."""
    streams = getattr(session, "_response_streams", None)  # mcp 1.x BaseSession
    if isinstance(streams, Mapping):
        return streams
    pending = getattr(getattr(session, "_dispatcher", None), "_pending", None)  # mcp 2.x dispatcher
    if isinstance(pending, Mapping):
        return pending
    return {}


async def _drain(session: Any) -> None:
    """Give requests in flight on the old session a moment to receive their answers (bounded)."""
    for _ in range(int(DRAIN_GRACE / 0.01)):
        if not _pending_requests(session):
            return
        await asyncio.sleep(0.01)


def _fail_leftovers(session: Any) -> None:
    """mcp 1.x: answer the requests still pending on the old session with the SDK's own "Connection
    closed" (-32000), as its receive loop does when its stream closes (it cannot when it is cancelled,
    which is how a session is stopped). fastmcp's session monitoring would otherwise report them as
    "Session task completed unexpectedly"; an mcp 2.x session settles them itself."""
    streams = getattr(session, "_response_streams", None)
    if not isinstance(streams, Mapping) or not streams:
        return
    try:
        types = sys.modules["mcp.types"]
        make = types.JSONRPCError
        error_data = types.ErrorData
    except (KeyError, AttributeError):
        return
    for request_id, stream in list(streams.items()):
        try:
            error = error_data(code=CONNECTION_CLOSED, message="Connection closed")
            stream.send_nowait(make(jsonrpc="2.0", id=request_id, error=error))
        except Exception as exc:  # already answered or closed
            log.debug("mcp_hooks: could not settle request %r: %r", request_id, exc)


def _move_holds(client: Any, old: asyncio.Task[Any] | None, new: asyncio.Task[Any]) -> None:
    """fastmcp 4 records, per entering task, the session task each context holds; an exit releases the
    count only if its hold names the current session task. Point the holds of the old one at the new."""
    holds = getattr(client, "_context_session_tasks", None)
    if old is None or not isinstance(holds, Mapping):
        return
    for held in holds.values():
        if isinstance(held, list):
            for index, task in enumerate(held):
                if task is old:
                    held[index] = new


async def rebuild(client: Any, tool: str | None) -> bool:
    """Replace ``client``'s session by a new one, in place, keeping every context that holds it.

    While the server refuses connections (restarting), tries again with backoff for up to
    :data:`REBUILD_ATTEMPT` seconds (the engine's deadline bounds it too); any other failure to start
    is raised at once, and the engine decides what next. Returns ``True`` (handled), also when the
    client turned out not to be held any more (closed meanwhile): the replay then fails as fastmcp says.
    """
    give_up_at = time.monotonic() + REBUILD_ATTEMPT
    pause = RETRY_PAUSE_INITIAL
    while True:
        try:
            rebuilt = await _rebuild_once(client)
        except Exception as exc:
            if classify(exc).loss is not Loss.REJECTED or time.monotonic() + pause >= give_up_at:
                raise
            log.debug("mcp_hooks: %r: the server refuses connections (%r); trying again", client, exc)
            await asyncio.sleep(pause)
            pause = min(RETRY_PAUSE_MAX, pause * 2)
            continue
        break
    if rebuilt and tool is not None:
        await _learn_annotations(client)
    log.debug("mcp_hooks: rebuilt the session of %r", client)
    return True


async def _rebuild_once(client: Any) -> bool:
    """One rebuild under the client's session lock; ``False`` when nobody holds the client any more."""
    state = client._session_state
    async with state.lock:
        if not is_held(client):
            return False
        old: asyncio.Task[Any] | None = state.session_task
        old_session = getattr(state, "session", None)
        if old_session is not None:
            await _drain(old_session)
            _fail_leftovers(old_session)
        stop_timeout = float(getattr(client, "_disconnect_timeout", DEFAULT_STOP_TIMEOUT) or DEFAULT_STOP_TIMEOUT)
        # Stop the old session task, as Client._disconnect / _stop_session do.
        state.stop_event.set()
        if old is not None:
            await _settle(old, stop_timeout)
        # Then what Client.close() does after the disconnect.
        try:
            await client.transport.close()
        except Exception as exc:
            log.debug("mcp_hooks: closing the transport of %r failed: %r", client, exc)
        # And start a session as Client._connect does, keeping the count of its holders.
        state.stop_event = anyio.Event()
        state.ready_event = anyio.Event()
        new: asyncio.Task[Any] = asyncio.create_task(client._session_runner())
        state.session_task = new
        _move_holds(client, old, new)
        try:
            await state.ready_event.wait()
        except BaseException:  # cancelled (the call's deadline): leave no half-open session behind
            state.stop_event.set()
            new.cancel()
            with anyio.CancelScope(shield=True):
                await _settle(new, 3.0)
            raise
        if not new.done() and getattr(state, "session", None) is None:
            # _session_runner sets ready_event in its `finally`: a failed start wakes the wait above
            # just before the task is done.
            await asyncio.wait({new}, timeout=3.0)
        if new.done():
            error = None if new.cancelled() else new.exception()
            if error is not None:
                raise error
            raise RuntimeError("fastmcp session task ended while starting")
    return True


async def _learn_annotations(client: Any) -> None:
    """List the tools on the rebuilt session, so that a replay decision knows which are read-only or
    idempotent. Bounded and best effort: one request on the recovery path only."""
    try:
        with anyio.fail_after(LIST_TOOLS_TIMEOUT):
            listing = await client.session.list_tools()
    except Exception as exc:
        log.debug("mcp_hooks: listing the tools of %r after a rebuild failed: %r", client, exc)
        return
    _record_annotations(client, listing)
