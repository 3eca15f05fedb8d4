"""One long-lived owner task per openai-agents MCP server: every ``connect()`` and ``cleanup()`` runs there.

Under mcp 1.x, ``connect()`` enters the transport (an anyio context manager with a task group) in the
task that calls it, and only that task may exit it. openai-agents runs each tool call in a fresh
``asyncio.create_task``, so a reconnect made from a call would enter the new transport in a task that
ends a moment later, and the cleanup after that fails with "Attempted to exit cancel scope in a
different task" (which openai-agents logs and swallows, leaving the old transport running). So the shim
moves connect and cleanup, the user's and its own, into one task per server that outlives the calls.

That task is also the transport's *host*: when an mcp 1.x transport's task group fails (an HTTP request
raised inside it), anyio cancels the host task over and over until the transport is exited. Without
the shim the host is the user's own task, which is then cancelled at every ``await``. With it, the
owner absorbs the cancellation, closes the broken transport in its own task, and ends; the next call
finds the server closed and the engine reconnects it.

The owner holds no task while the server is closed: it starts with the first job and ends when the
server's session is gone and no job waits.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["OwnerState", "in_owner", "run_in_owner", "state_of", "peek"]

log = logging.getLogger("mcp_hooks")

Job = Callable[[], Awaitable[Any]]


class TransportCrashed(ConnectionError):
    """The owner task was cancelled (its transport failed, or the event loop is closing) during a job."""


class OwnerState:
    """What the shim knows about one server object."""

    __slots__ = (
        "__weakref__",
        "connected_by_owner",
        "current",
        "jobs",
        "loop",
        "rebuilding",
        "reconnects",
        "task",
        "wake",
        "wanted",
        "warned_elsewhere",
        "warned_retries",
    )

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: asyncio.Event | None = None
        self.jobs: collections.deque[tuple[Job, asyncio.Future[Any]]] = collections.deque()
        #: the future of the job the owner is running
        self.current: asyncio.Future[Any] | None = None
        #: ``True`` after the user connected, ``False`` after the user cleaned up, ``None``: not seen.
        self.wanted: bool | None = None
        #: the current transport was entered by the owner task (not by the user's task before instrument)
        self.connected_by_owner = False
        #: a rebuild is running: its cleanup/connect do not change ``wanted``
        self.rebuilding = False
        #: sessions rebuilt by the shim (successful rebuilds only)
        self.reconnects = 0
        self.warned_elsewhere = False
        self.warned_retries = False

    def owner_alive(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self.task is not None and not self.task.done() and self.loop is loop


_states: weakref.WeakKeyDictionary[Any, OwnerState] = weakref.WeakKeyDictionary()
_ATTRIBUTE = "_mcp_hooks_owner_state"


def state_of(server: Any) -> OwnerState:
    """The state of ``server``, created on first use."""
    try:
        state = _states.get(server)
        if state is None:
            state = _states[server] = OwnerState()
        return state
    except TypeError:  # not weak-referenceable or not hashable: keep it on the object
        state = vars(server).get(_ATTRIBUTE)
        if state is None:
            state = OwnerState()
            vars(server)[_ATTRIBUTE] = state
        return state


def peek(server: Any) -> OwnerState | None:
    """The state of ``server`` if the shim has seen it, without creating one."""
    try:
        return _states.get(server)
    except TypeError:
        state = vars(server).get(_ATTRIBUTE) if hasattr(server, "__dict__") else None
        return state if isinstance(state, OwnerState) else None


def in_owner(state: OwnerState) -> bool:
    """Whether the running task is the owner task of ``state``."""
    try:
        current = asyncio.current_task()
    except RuntimeError:
        return False
    return current is not None and current is state.task


async def run_in_owner(server: Any, state: OwnerState, job: Job) -> Any:
    """Run ``job`` in the owner task of ``server`` (started if needed) and return its result.

    Cancelling the caller cancels the job as if it ran in the caller: dropped if not started yet;
    otherwise the owner is cancelled, closes the connection in its own task, and ends (as
    openai-agents' ``connect()`` cleans up when it is cancelled).
    """
    loop = asyncio.get_running_loop()
    if not state.owner_alive(loop):
        state.loop = loop
        state.wake = asyncio.Event()
        state.jobs.clear()
        state.task = loop.create_task(_owner_main(server, state), name=f"mcp-hooks owner of {_name(server)}")
    future: asyncio.Future[Any] = loop.create_future()
    state.jobs.append((job, future))
    assert state.wake is not None
    state.wake.set()
    try:
        return await future
    except asyncio.CancelledError:
        owner = state.task
        if state.current is future and owner is not None and not owner.done():
            owner.cancel(_CALLER_CANCELLED)
        raise


_CALLER_CANCELLED = "mcp-hooks: the caller of this job was cancelled"


def _name(server: Any) -> str:
    try:
        return str(server.name)
    except Exception:  # a half-built server
        return type(server).__name__


def _is_open(server: Any) -> bool:
    return getattr(server, "session", None) is not None


async def _owner_main(server: Any, state: OwnerState) -> None:
    me = asyncio.current_task()
    assert me is not None
    wake = state.wake
    assert wake is not None
    try:
        while True:
            try:
                while state.jobs:
                    job, future = state.jobs.popleft()
                    if future.done():  # its caller gave up before it started
                        continue
                    state.current = future
                    try:
                        result = await job()
                    except asyncio.CancelledError:
                        if not future.done():
                            future.set_exception(
                                TransportCrashed(
                                    f"the connection to MCP server {_name(server)!r} failed while it was being "
                                    "opened or closed (its owner task was cancelled)"
                                )
                            )
                        raise
                    except BaseException as exc:
                        if not future.done():
                            future.set_exception(exc)
                        if not isinstance(exc, Exception):
                            raise
                    else:
                        if not future.done():
                            future.set_result(result)
                    finally:
                        state.current = None
                if not _is_open(server):
                    return  # nothing left to own: the next connect starts a new owner
                wake.clear()
                await wake.wait()
            except asyncio.CancelledError as exc:
                # Either the transport's task group failed and anyio cancels its host (this task) until
                # the transport is exited, or the owner is cancelled for good (the event loop is
                # closing). Either way: exit the transport here, in the task that entered it.
                crashed = _by_failed_transport(exc)
                log.info(
                    "mcp_hooks: %s; closing the connection to MCP server %r in its owner task",
                    "the transport failed" if crashed else "the owner task was cancelled",
                    _name(server),
                )
                await _close_after_cancel(server, state)
                if not crashed:
                    return
                _uncancel(me)
    finally:
        ended = TransportCrashed(f"the owner task of MCP server {_name(server)!r} has ended")
        while state.jobs:
            _, future = state.jobs.popleft()
            if not future.done():
                future.set_exception(ended)
        if state.task is me:
            state.task = None
            state.connected_by_owner = False


def _uncancel(task: asyncio.Task[Any]) -> None:
    """anyio is done with this task: a clean slate for the next jobs (Python 3.11+ counts cancels)."""
    cancelling = getattr(task, "cancelling", None)
    uncancel = getattr(task, "uncancel", None)
    if cancelling is None or uncancel is None:
        return
    while cancelling():
        uncancel()


def _by_failed_transport(exc: asyncio.CancelledError) -> bool:
    """anyio's cancellation of a scope's host task (a transport's task group failed), not a real cancel."""
    return bool(exc.args) and isinstance(exc.args[0], str) and exc.args[0].startswith("Cancelled via cancel scope")


async def _close_after_cancel(server: Any, state: OwnerState) -> None:
    rebuilding = state.rebuilding
    state.rebuilding = True  # this close is not the user's: keep ``wanted`` as it is
    try:
        for _ in range(3):  # anyio re-delivers cancellation until the failed scope is exited
            try:
                await server.cleanup()
                return
            except asyncio.CancelledError:
                continue
            except Exception as exc:
                log.debug("mcp_hooks: closing the failed transport of %r: %r", _name(server), exc)
                return
    finally:
        state.rebuilding = rebuilding
