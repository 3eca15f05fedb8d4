"""The recovery engine: after a call failed, decide, rebuild once, replay only what is safe.

The whole procedure is one generator (:func:`_recovery`) that yields small instructions (call again,
sleep, run a rebuild, wait for another caller's rebuild) and receives their outcomes. Two drivers run
it: :func:`recover_async` for coroutines and :func:`recover_sync` for plain functions. So sync and async
callers share one code path, and the engine itself does no I/O.

The happy path never enters this module: a wrapper calls the function, and only when it raises does
it hand the error here, with the time the call started.

Single flight: every session owner (the object whose session is rebuilt, or the server key when there
is none) has a :class:`Gate`. The first failing call leads a rebuild; calls that fail meanwhile wait
for it, across asyncio tasks and threads. A call that started before the last rebuild finished failed
on the old session and just replays; it does not rebuild again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import logging
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

import pluggy

from .calls import OutcomeUncertain, ToolCall
from .classify import Loss, classify, is_interrupted, server_unreachable
from .manager import decide, implementations, notify, plugin_manager

__all__ = ["Gate", "RecoveryPolicy", "gate_for", "recover_async", "recover_sync"]

log = logging.getLogger("mcp_hooks.engine")

T = TypeVar("T")

DEFAULT_MAX_RECONNECTS = 3
DEFAULT_DEADLINE = 30.0
#: backoff between repeated failures: the k-th wait is drawn from [d/2, d], d = min(MAX, INITIAL * 2**(k-1))
BACKOFF_INITIAL = 0.1
BACKOFF_MAX = 2.0
#: attempts to reach a server that refuses connections (down or restarting), per call; the deadline
#: normally ends them first
UNREACHABLE_LIMIT = 60

_monotonic = time.monotonic
#: ``asyncio.timeout`` (Python 3.11+): bounds an await inside the current task
_in_task_timeout: Any = getattr(asyncio, "timeout", None)


@dataclasses.dataclass(frozen=True)
class RecoveryPolicy:
    """How one wrapped function recovers. Built (and validated) once, when decorating.

    :param reconnect: rebuilds the session: a callable receiving the :class:`ToolCall`, sync or async.
        ``None``: ask the ``reconnect`` hook; when no plugin handles it, replay as is.
    :param annotate: learns a tool's annotations when a replay decision needs them (``connect()``).
    :param always_replay_safe: requests that change nothing (``list_tools``, ``read_resource``, ...).
    """

    server: str | None = None
    framework: str = "mcp"
    max_reconnects: int = DEFAULT_MAX_RECONNECTS
    deadline: float = DEFAULT_DEADLINE
    replay_safe_tools: frozenset[str] = frozenset()
    reconnect: Callable[[ToolCall], Any] | None = None
    plugin_manager: pluggy.PluginManager | None = None
    annotate: Callable[[ToolCall], Any] | None = None
    always_replay_safe: bool = False

    def manager(self) -> pluggy.PluginManager:
        return self.plugin_manager if self.plugin_manager is not None else plugin_manager()


class _Flight:
    """One rebuild in progress, awaitable from any thread or event loop."""

    __slots__ = ("_done", "_lock", "_waiters", "error", "finished")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.error: BaseException | None = None
        self.finished = False

    def finish(self, error: BaseException | None) -> None:
        with self._lock:
            if self.finished:
                return
            self.error = error
            self.finished = True
            waiters, self._waiters = self._waiters, []
        self._done.set()
        for loop, future in waiters:
            try:
                loop.call_soon_threadsafe(_resolve, future)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                pass

    def wait_blocking(self, timeout: float) -> bool:
        return self._done.wait(max(0.0, timeout))

    async def wait_async(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.finished:
                return True
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, max(0.0, timeout))
        except asyncio.TimeoutError:
            return False
        return True


class RebuildTimeout(Exception):
    """A rebuild (or the wait for another caller's) ran into the call's deadline."""


class RebuildRefused(RebuildTimeout):
    """No rebuild is worth attempting for this call now: recovery gives up at once, with this error itself."""


class CircuitOpen(RebuildRefused, ConnectionError):
    """The server has been unreachable for a while: no rebuild is attempted for this call (a circuit
    breaker); the message names the server and since when."""


class CredentialsRefused(RebuildRefused, PermissionError):
    """The server refused the credentials (HTTP 401 or 403) to a new session's handshake: an auth
    failure, not session loss (a 401 to a request of an old session is taken as the session dropped,
    once). The message names the server and the status, never a credential."""


class _LeaderCancelled(RuntimeError):
    """What followers learn when the call leading their rebuild was cancelled: not a real error."""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Gate:
    """The rebuild state of one session owner: when it was last healed, and the rebuild in flight."""

    __slots__ = ("__weakref__", "flight", "healed_at", "lock", "rebuilds")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.flight: _Flight | None = None
        self.healed_at = float("-inf")
        self.rebuilds = 0


_gates_by_owner: weakref.WeakKeyDictionary[Any, Gate] = weakref.WeakKeyDictionary()
_gates_by_key: dict[Any, Gate] = {}
_gates_lock = threading.Lock()


def gate_for(owner: Any, server: str) -> Gate:
    """The gate of ``owner`` (or of ``server`` when the owner is ``None`` or cannot be weakly referenced)."""
    with _gates_lock:
        if owner is not None:
            try:
                gate = _gates_by_owner.get(owner)
                if gate is None:
                    gate = _gates_by_owner[owner] = Gate()
                return gate
            except TypeError:  # not weak-referenceable or not hashable
                key: Any = ("id", id(owner))
        else:
            key = server
        gate = _gates_by_key.get(key)
        if gate is None:
            gate = _gates_by_key[key] = Gate()
        return gate


# Instructions the recovery generator yields to its driver.
_CALL = "call"  # run the attempt again -> (ok, value or error)
_SLEEP = "sleep"  # (seconds,) -> None
_RUN = "run"  # (thunk, timeout): call thunk, await what it returns -> (ok, value or error)
_WAIT = "wait"  # (flight, timeout) -> bool: finished in time


def add_note(error: BaseException, note: str) -> None:
    """PEP 678 ``add_note``, also on Python 3.10."""
    add_note = getattr(error, "add_note", None)
    if add_note is not None:
        add_note(note)
        return
    notes = getattr(error, "__notes__", None)  # Python 3.10
    try:
        if notes is None:
            error.__notes__ = [note]  # type: ignore[attr-defined]
        else:
            notes.append(note)
    except (AttributeError, TypeError):
        pass


def _backoff(rebuilds: int) -> float:
    ceiling = min(BACKOFF_MAX, BACKOFF_INITIAL * (2 ** max(0, rebuilds - 1)))
    return random.uniform(ceiling / 2, ceiling)


def _first_reconnect_result(pm: pluggy.PluginManager, call: ToolCall) -> Any:
    """The ``reconnect`` hook, firstresult. Unlike decision hooks, a raising implementation means the
    rebuild failed: that is an outcome the engine must see, not a plugin bug to hide."""
    for impl in implementations(pm, "reconnect"):
        result = impl.function(*[{"call": call}[arg] for arg in impl.argnames])
        if result is not None:
            return result
    return None


def _recovery(
    policy: RecoveryPolicy, call: ToolCall, error: BaseException, started: float
) -> Generator[tuple[Any, ...], Any, Any]:
    pm = policy.manager()
    deadline_at = started + policy.deadline
    attempt_started = started
    rebuilds = 0  # counted against max_reconnects
    unreachable = 0  # rebuilds that found the server unreachable: not counted, bounded by the deadline
    gate = gate_for(call.owner, call.server)
    while True:
        # `error` is the failure of attempt number `call.attempt`.
        notify(pm, "on_tool_error", call=call, error=error)
        if is_interrupted(error):
            raise error
        if decide(pm, "should_reconnect", call=call, error=error) is not True:
            raise error
        # `lost` showed the session gone and decides the replay; `error` becomes the last real error
        # (a failed rebuild's), raised when recovery gives up.
        lost = error
        # The session is gone: rebuild it (once, shared), within the budget.
        while True:
            now = _monotonic()
            if rebuilds >= policy.max_reconnects or now >= deadline_at or unreachable >= UNREACHABLE_LIMIT:
                _give_up(pm, policy, call, error, rebuilds, unreachable, now - started)
                raise error
            if rebuilds + unreachable:
                pause = _backoff(rebuilds + unreachable)
                if now + pause >= deadline_at:
                    _give_up(pm, policy, call, error, rebuilds, unreachable, now - started)
                    raise error
                yield (_SLEEP, pause)
            rebuilds += 1
            failure = yield from _rebuild_once(policy, pm, gate, call, error, attempt_started, deadline_at)
            if failure is None:
                break
            if classify(lost).loss is Loss.IN_FLIGHT and not (
                yield from _replay_allowed(policy, pm, call, lost, may_learn=False)
            ):
                # The request may have run and may not be repeated: whether the session comes back or
                # not, the answer is the same, so give it now rather than after the server returns.
                raise _uncertain(pm, call, lost, "and the session could not be rebuilt yet")
            if isinstance(failure, RebuildTimeout):
                if isinstance(failure, RebuildRefused):
                    error = failure  # says what the caller can act on (the server is down, or refuses us)
                _give_up(pm, policy, call, error, rebuilds, unreachable, _monotonic() - started)
                raise error
            if server_unreachable(failure):
                # The server is down or restarting (connection refused): waiting for it to come back is
                # one rebuild, retried with backoff until the deadline, not one per refused attempt.
                rebuilds -= 1
                unreachable += 1
            log.debug(
                "mcp_hooks: rebuilding the session to %s failed (%s: %s)",
                call.server,
                type(failure).__name__,
                failure,
            )
            if not isinstance(failure, _LeaderCancelled):
                error = failure
        # Healed. May the call be sent again?
        if not (yield from _replay_allowed(policy, pm, call, lost)):
            raise _uncertain(pm, call, lost)
        call = call.replace(attempt=call.attempt + 1)
        attempt_started = _monotonic()
        ok, outcome = yield (_CALL,)
        if ok:
            notify(pm, "on_recovered", call=call)
            log.debug("mcp_hooks: %s on %s recovered on attempt %d", call.tool or "request", call.server, call.attempt)
            return outcome
        error = outcome


def _rebuild_once(
    policy: RecoveryPolicy,
    pm: pluggy.PluginManager,
    gate: Gate,
    call: ToolCall,
    error: BaseException,
    attempt_started: float,
    deadline_at: float,
) -> Generator[tuple[Any, ...], Any, BaseException | None]:
    """Lead a rebuild, or share the one in flight, or none if one finished since this attempt began."""
    with gate.lock:
        flight = gate.flight
        if flight is None:
            if gate.healed_at > attempt_started:
                return None  # another call rebuilt the session after this attempt was sent
            flight = gate.flight = _Flight()
            leader = True
        else:
            leader = False
    if not leader:
        finished = yield (_WAIT, flight, deadline_at - _monotonic())
        if not finished:
            return RebuildTimeout(f"the rebuild of the session to {call.server} outlasted the deadline")
        return flight.error
    failure: BaseException | None = None
    announced = _monotonic()
    try:
        notify(pm, "on_reconnect", call=call, error=error)
        verdict = classify(error)
        log.debug(
            "mcp_hooks: session to %s lost (%s); rebuilding (tool %s, attempt %d)",
            call.server,
            verdict.reason if verdict.is_session_loss else f"a plugin said so: {type(error).__name__}",
            call.tool,
            call.attempt,
        )
        if policy.reconnect is not None:
            action = policy.reconnect
            ok, outcome = yield (_RUN, lambda: action(call), deadline_at - _monotonic())
        else:
            ok, outcome = yield (_RUN, lambda: _first_reconnect_result(pm, call), deadline_at - _monotonic())
        if not ok:
            failure = outcome
    except BaseException:  # the leader was cancelled or closed: release the followers
        failure = _LeaderCancelled(f"the call leading the rebuild of the session to {call.server} was cancelled")
        raise
    finally:
        with gate.lock:
            gate.flight = None
            if failure is None:
                gate.healed_at = _monotonic()
                gate.rebuilds += 1
        flight.finish(failure)
        notify(pm, "on_rebuilt", call=call, error=failure, seconds=_monotonic() - announced)
    return failure


def _uncertain(pm: pluggy.PluginManager, call: ToolCall, error: BaseException, extra: str = "") -> OutcomeUncertain:
    reason = classify(error).reason
    uncertain = OutcomeUncertain(call.server, call.tool, f"{reason} {extra}".strip())
    uncertain.__cause__ = error
    notify(pm, "on_giveup", call=call, error=uncertain)
    log.debug(
        "mcp_hooks: %s on %s lost in flight; not replayed (not known to be safe)", call.tool or "request", call.server
    )
    return uncertain


def _replay_allowed(
    policy: RecoveryPolicy,
    pm: pluggy.PluginManager,
    call: ToolCall,
    error: BaseException,
    *,
    may_learn: bool = True,
) -> Generator[tuple[Any, ...], Any, bool]:
    if policy.always_replay_safe or (call.tool is not None and call.tool in policy.replay_safe_tools):
        return True
    if (
        may_learn
        and call.annotations is None
        and policy.annotate is not None
        and classify(error).loss is not Loss.REJECTED
    ):
        annotate = policy.annotate
        ok, annotations = yield (_RUN, lambda: annotate(call), None)
        if ok and annotations is not None:
            call = call.replace(annotations=annotations)
    return decide(pm, "is_replay_safe", call=call, error=error) is True


def _give_up(
    pm: pluggy.PluginManager,
    policy: RecoveryPolicy,
    call: ToolCall,
    error: BaseException,
    rebuilds: int,
    unreachable: int,
    elapsed: float,
) -> None:
    down = (
        f"; {unreachable} of them found the server unreachable (those count only against the deadline)"
        if unreachable
        else ""
    )
    add_note(
        error,
        f"mcp-hooks: the session to {call.server} was lost; {rebuilds + unreachable} rebuild(s) tried in "
        f"{elapsed:.2f} s (at most {policy.max_reconnects} within a {policy.deadline:g} s deadline){down}; giving up.",
    )
    notify(pm, "on_giveup", call=call, error=error)
    log.debug(
        "mcp_hooks: giving up on %s for %s after %d rebuild(s) in %.2f s: %s",
        call.tool or "request",
        call.server,
        rebuilds + unreachable,
        elapsed,
        error,
    )


# --- drivers -----------------------------------------------------------------------------------------


async def recover_async(
    policy: RecoveryPolicy,
    attempt: Callable[[], Awaitable[T]],
    call: ToolCall,
    error: Exception,
    started: float,
) -> T:
    """Drive recovery for a coroutine function whose first attempt raised ``error``."""
    steps = _recovery(policy, call, error, started)
    try:
        instruction = next(steps)
        while True:
            kind = instruction[0]
            if kind == _CALL:
                try:
                    outcome: Any = (True, await attempt())
                except Exception as exc:
                    outcome = (False, exc)
            elif kind == _SLEEP:
                await asyncio.sleep(instruction[1])
                outcome = None
            elif kind == _RUN:
                outcome = await _run_async(instruction[1], instruction[2])
            else:
                outcome = await instruction[1].wait_async(instruction[2])
            instruction = steps.send(outcome)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        steps.close()


async def _run_async(thunk: Callable[[], Any], timeout: float | None) -> tuple[bool, Any]:
    try:
        result = thunk()
        if isinstance(result, concurrent.futures.Future):
            result = asyncio.wrap_future(result)
        if not inspect.isawaitable(result):
            return True, result
        if timeout is None:
            return True, await result
        if _in_task_timeout is not None:
            # In the caller's own task: a rebuild that closes and reopens anyio contexts (an SDK
            # session the caller's task opened) must not run in a task of its own.
            scope = _in_task_timeout(max(0.001, timeout))
            try:
                async with scope:
                    return True, await result
            except TimeoutError:
                if scope.expired():  # the deadline, not a TimeoutError raised by the rebuild itself
                    return False, RebuildTimeout("the rebuild outlasted the call's deadline")
                raise
        task = asyncio.ensure_future(result)  # Python 3.10: no asyncio.timeout
        try:
            done, _ = await asyncio.wait({task}, timeout=max(0.001, timeout))
        except asyncio.CancelledError:
            # The leader was cancelled: the rebuild goes with it (bounded wait for it to unwind), so
            # the follower that leads the next one never runs beside it.
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
            raise
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
            return False, RebuildTimeout("the rebuild outlasted the call's deadline")
        return True, task.result()
    except Exception as exc:
        return False, exc


async def _as_coroutine(awaitable: Awaitable[T]) -> T:
    return await awaitable


def recover_sync(
    policy: RecoveryPolicy,
    attempt: Callable[[], T],
    call: ToolCall,
    error: Exception,
    started: float,
) -> T:
    """Drive recovery for a plain function whose first attempt raised ``error``."""
    steps = _recovery(policy, call, error, started)
    try:
        instruction = next(steps)
        while True:
            kind = instruction[0]
            if kind == _CALL:
                try:
                    outcome: Any = (True, attempt())
                except Exception as exc:
                    outcome = (False, exc)
            elif kind == _SLEEP:
                time.sleep(instruction[1])
                outcome = None
            elif kind == _RUN:
                outcome = _run_sync(instruction[1], instruction[2])
            else:
                outcome = instruction[1].wait_blocking(instruction[2])
            instruction = steps.send(outcome)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        steps.close()


def _run_sync(thunk: Callable[[], Any], timeout: float | None) -> tuple[bool, Any]:
    try:
        result = thunk()
        if isinstance(result, concurrent.futures.Future):
            try:
                return True, result.result(timeout=None if timeout is None else max(0.001, timeout))
            except concurrent.futures.TimeoutError:
                if result.done():
                    raise  # the rebuild itself failed with a TimeoutError: a real failure, not the deadline
                result.cancel()
                return False, RebuildTimeout("the rebuild outlasted the call's deadline")
        if inspect.isawaitable(result):
            return True, _await_blocking(result, timeout)
        return True, result
    except Exception as exc:
        return False, exc


def _await_blocking(awaitable: Awaitable[Any], timeout: float | None) -> Any:
    """Run an awaitable handed back to a sync caller, on a private event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        if inspect.iscoroutine(awaitable):
            awaitable.close()
        raise RuntimeError(
            "mcp_hooks: a sync function cannot wait for an async reconnect inside a running event loop; "
            "decorate an async function, or give a sync reconnect (or one returning a "
            "concurrent.futures.Future, e.g. from asyncio.run_coroutine_threadsafe)"
        )

    async def bounded() -> Any:
        if timeout is None:
            return await awaitable
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task}, timeout=max(0.001, timeout))
        if not done:  # only the deadline, never a TimeoutError raised by the rebuild itself
            task.cancel()
            await asyncio.wait({task}, timeout=1.0)
            raise RebuildTimeout("the rebuild outlasted the call's deadline")
        return task.result()

    return asyncio.run(bounded())
