"""Rebuilding a ``connect()`` session: one rebuild shared by every call that needs it, retried with
backoff while the server is down, led by the session itself when no failed call leads it (background
healing) and then reported to the hooks like one a call leads; the circuit breaker; and what the HTTP
watcher reports (a link given up)."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import pluggy

from ..calls import ToolCall
from ..classify import Loss, SessionLostMark, mark_session_lost
from ..engine import (
    CircuitOpen,
    CredentialsRefused,
    RebuildGoesOn,
    RebuildTimeout,
    RecoveryPolicy,
    _Flight,
    _LeaderCancelled,
    gate_for,
)
from ..healing.streams import server_key
from ..manager import decide, notify
from .link import _Link

log = logging.getLogger("mcp_hooks.connect")

#: How long calls still waiting on a link that is being torn down may take to receive their answers.
DRAIN_GRACE = 1.0
#: How long one rebuild asked by a failing call keeps retrying a server that is down.
REBUILD_ATTEMPT = 10.0
#: Backoff of background healing while the server is down.
HEAL_BACKOFF_INITIAL = 0.1
HEAL_BACKOFF_MAX = 2.0
#: Circuit breaker (with ``heal``): once no session could be opened for this long, calls fail at once
#: with :class:`CircuitOpen` while the background heal keeps trying (every ``HEAL_BACKOFF_MAX`` s at most).
BREAKER_AFTER = 15.0
BREAKER_POLL = 0.5
BREAKER_SLICE = 2.0

# Set on the failure path of a call, read by the rebuild it asks for (same task).
_failed_generation: contextvars.ContextVar[int] = contextvars.ContextVar("mcp_hooks_failed_generation", default=0)
_call_deadline: contextvars.ContextVar[float] = contextvars.ContextVar("mcp_hooks_call_deadline", default=0.0)


@dataclasses.dataclass(frozen=True)
class _Options:
    headers: Mapping[str, str] | None
    auth: Any
    timeout: float
    sse_read_timeout: float
    read_timeout_seconds: float | None
    mode: str
    heal: bool
    keepalive: float | None
    breaker_after: float | None
    call_timeout: float | None
    client_info: Any
    session_kwargs: Mapping[str, Any]


class _Rebuilding:
    """The state of a ``connect()`` session and how it is rebuilt (the owner task opens each link)."""

    _tool_policy: RecoveryPolicy

    def __init__(self, target: Any, options: _Options, deadline: float) -> None:
        self._target = target
        self._options = options
        self._is_http = isinstance(target, str)
        self.server = server_key("http" if self._is_http else "stdio", target)
        #: how many sessions were rebuilt after the first
        self.reconnects = 0
        self._generation = 0
        self._link: _Link | None = None
        self._closing = False
        self._owner_task: asyncio.Task[None] | None = None
        self._wanted = asyncio.Event()
        self._build: asyncio.Future[BaseException | None] | None = None
        self._heal_task: asyncio.Task[None] | None = None
        #: (monotonic, wall-clock) time since when no session could be opened (None: one is open).
        self._unreachable_since: tuple[float, float] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        #: the HTTP connection pool every link's client sends through (made at the first open)
        self._pool: Any = None
        #: what the caller set up on the session, set up again on each rebuilt one: the last logging level
        #: and the resources still subscribed (``(args, kwargs)`` of the call that did it)
        self._level: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self._subscribed: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        self._notify_task: asyncio.Task[None] | None = None
        self._deadline = deadline
        # The engine's single-flight gate of this session: the rebuilds the connection leads itself hold it
        # too, so a call failing meanwhile waits for them instead of leading (and announcing) its own.
        self._gate = gate_for(self, self.server)

    # --- rebuilding --------------------------------------------------------------------------------------

    def _check_breaker(self) -> None:
        error = self._breaker_error()
        if error is not None:
            raise error

    def _breaker_error(self) -> CircuitOpen | None:
        """:class:`CircuitOpen` when no session could be opened for a while (``breaker_after`` seconds, as
        the ``open_circuit`` hook decides) while the background heal keeps trying: a call would only wait
        its deadline for nothing."""
        down = self._unreachable_since
        if down is None or not self._options.heal or self._closing:
            return None
        link = self._link
        if link is not None and link.usable:
            return None
        asked = decide(
            self._tool_policy.manager(),
            "open_circuit",
            call=ToolCall(server=self.server, owner=self, framework="mcp"),
            down_for=time.monotonic() - down[0],
            threshold=self._options.breaker_after,
        )
        if asked is not True:
            return None
        since = time.strftime("%H:%M:%S", time.localtime(down[1]))
        return CircuitOpen(
            f"MCP server {self.server} unreachable since {since} ({time.time() - down[1]:.0f} s); "
            f"still trying to reach it in the background (every {HEAL_BACKOFF_MAX:g} s at most)"
        )

    async def _reconnect_for_engine(self, call: ToolCall) -> None:
        deadline_at = _call_deadline.get() or (time.monotonic() + self._deadline)
        self._check_breaker()
        # One engine rebuild retries (with backoff) for a while, not for the whole deadline, so that a
        # call whose outcome is already decided (lost in flight, not safe to replay) settles in time.
        await self._heal(_failed_generation.get(), min(deadline_at, time.monotonic() + REBUILD_ATTEMPT))

    async def _heal(self, failed_generation: int, deadline_at: float, *, background: bool = False) -> None:
        """Make sure a link newer than ``failed_generation`` is usable, rebuilding (once, shared) as
        needed and retrying with backoff while the server is down, until ``deadline_at`` (a call's wait
        ends early with :class:`CircuitOpen`; the background heal's never does)."""
        failures = 0
        last: BaseException | None = None
        while True:
            link = self._link
            if link is not None and link.usable and link.generation > failed_generation:
                return
            if self._closing:
                raise RuntimeError(f"the MCP session to {self.server} is closed")
            if not background:
                self._check_breaker()
            if link is not None and link.usable and link.generation == failed_generation:
                self._give_up_link(link, SessionLostMark(Loss.REJECTED, detail="a call found the session gone"))
            build = self._build
            if build is None:
                build = self._request_build()
            remaining = deadline_at - time.monotonic()
            if remaining <= 0:
                if last is not None:
                    raise last
                raise RebuildTimeout(f"no session to {self.server} could be built before the deadline")
            try:
                error = await asyncio.wait_for(asyncio.shield(build), remaining)
            except asyncio.TimeoutError:
                raise RebuildTimeout(f"no session to {self.server} could be built before the deadline") from None
            if error is None:
                continue
            if isinstance(error, CredentialsRefused):
                raise error  # retrying cannot help until the credentials change: the next call tries again
            last = error
            failures += 1
            pause = min(HEAL_BACKOFF_MAX, HEAL_BACKOFF_INITIAL * 2 ** (failures - 1))
            pause = random.uniform(pause / 2, pause)
            if time.monotonic() + pause >= deadline_at:
                raise error
            await asyncio.sleep(pause)

    def _request_build(self) -> asyncio.Future[BaseException | None]:
        build: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._build = build
        link = self._link
        if link is not None:
            link.stop.set()
        self._wanted.set()
        return build

    def _give_up_link(self, link: _Link, why: SessionLostMark) -> None:
        if link.trouble is None:
            link.trouble = why
        link.usable = False
        # Lost while still opening (the old server answered the handshake as it shut down): the SDK
        # would wait for the initialize answer forever, so the opening fails now and is retried.
        link.abort_opening(f"the session was lost while it was being opened ({why.detail or why.loss.value})")
        if self._closing or not self._options.heal:
            return
        if self._heal_task is None or self._heal_task.done():
            self._heal_task = asyncio.get_running_loop().create_task(self._heal_in_background(link.generation))

    async def _heal_in_background(self, generation: int) -> None:
        try:
            await self._lead_rebuild(generation, float("inf"), background=True)
        except Exception as exc:  # only when closing
            log.debug("mcp_hooks: background healing of %s stopped: %r", self.server, exc)
            return

    # --- rebuilds the connection leads itself, reported to the hooks ------------------------------------------

    async def _lead_rebuild(self, generation: int, deadline_at: float, *, background: bool = False) -> None:
        """Make sure a link newer than ``generation`` is usable: a rebuild that no failed call leads
        (background healing, or a call that found the link already given up).

        Hooks see it once, like a rebuild a failed call leads (the engine reports those): ``on_reconnect``
        with a ``ToolCall`` whose ``tool`` is ``None``, then ``on_rebuilt``, then ``on_recovered`` or
        ``on_giveup``. It holds
        the engine's gate of this session, so calls failing meanwhile wait for it rather than lead (and
        report) one of their own; when a failed call already leads one, this waits for that one instead.
        It is led in slices of at most ``REBUILD_ATTEMPT`` seconds: each slice that fails is a failed
        rebuild for the calls waiting on it (so a call lost in flight is settled in time, as when it
        leads), and the next slice starts at once, still reported as the same rebuild.
        """
        call: ToolCall | None = None
        announced = 0.0
        pm = self._tool_policy.manager()
        try:
            while True:
                link = self._link
                if link is not None and link.usable and link.generation > generation:
                    break
                if self._closing:
                    raise RuntimeError(f"the MCP session to {self.server} is closed")
                remaining = deadline_at - time.monotonic()
                if remaining <= 0:
                    raise RebuildTimeout(f"no session to {self.server} could be built before the deadline")
                flight = self._claim_rebuild()
                if flight is None:  # a failed call leads a rebuild (reported by the engine): wait for it
                    led = self._gate.flight
                    if led is not None:
                        # a call looks at the circuit breaker again every BREAKER_POLL s while it waits
                        await led.wait_async(min(remaining, REBUILD_ATTEMPT if background else BREAKER_POLL))
                    if not background:
                        self._check_breaker()
                    continue
                if call is None:
                    call = self._report_rebuild(pm, link)
                    announced = time.monotonic()
                failure: BaseException | None = _LeaderCancelled(
                    f"the rebuild of the session to {self.server} was cancelled"
                )
                # With the breaker on, the background heal leads in short slices: calls waiting on it hear
                # at each slice's end, as CircuitOpen once the server has been down long enough.
                slice_s = REBUILD_ATTEMPT if not background or self._options.breaker_after is None else BREAKER_SLICE
                try:
                    await self._heal(generation, min(deadline_at, time.monotonic() + slice_s), background=background)
                    failure = None
                except Exception as exc:
                    failure = exc
                    if self._closing or time.monotonic() >= deadline_at or isinstance(exc, CredentialsRefused):
                        raise
                finally:
                    if failure is not None and background:
                        failure = self._breaker_error() or failure
                    if type(failure) is RebuildTimeout and time.monotonic() < deadline_at:
                        # only this slice ended, with the session still being opened: the rebuild goes on
                        failure = RebuildGoesOn(f"the session to {self.server} is still being rebuilt")
                    self._end_rebuild(flight, failure)
        except BaseException as exc:
            if call is not None:
                gave_up = (
                    exc
                    if isinstance(exc, Exception)
                    else RuntimeError(
                        f"the rebuild of the session to {self.server} was cancelled"
                        + (" (the session is closed)" if self._closing else "")
                    )
                )
                notify(pm, "on_rebuilt", call=call, error=gave_up, seconds=time.monotonic() - announced)
                notify(pm, "on_giveup", call=call, error=gave_up)
            raise
        if call is not None:
            notify(pm, "on_rebuilt", call=call, error=None, seconds=time.monotonic() - announced)
            notify(pm, "on_recovered", call=call)
            log.debug("mcp_hooks: session to %s rebuilt", self.server)

    def _claim_rebuild(self) -> _Flight | None:
        """Lead the next rebuild in the gate, or ``None`` when one is already led."""
        gate = self._gate
        with gate.lock:
            if gate.flight is not None:
                return None
            flight = gate.flight = _Flight()
        return flight

    def _end_rebuild(self, flight: _Flight, failure: BaseException | None) -> None:
        """Release the gate, as the engine does after a rebuild, and tell the calls waiting on it."""
        gate = self._gate
        with gate.lock:
            if gate.flight is flight:
                gate.flight = None
            if failure is None:
                gate.healed_at = time.monotonic()  # a call sent before it and failing after just replays
                gate.rebuilds += 1
        flight.finish(failure)

    def _report_rebuild(self, pm: pluggy.PluginManager, link: _Link | None) -> ToolCall:
        """``on_reconnect`` for a rebuild the connection leads: what was lost, marked as session loss."""
        call = ToolCall(server=self.server, tool=None, owner=self, framework="mcp")
        mark = link.trouble if link is not None else None
        if mark is None:
            mark = SessionLostMark(Loss.IN_FLIGHT, detail="the transport died")
        error = ConnectionError(f"MCP session to {self.server} lost ({mark.detail or mark.loss.value})")
        if link is not None and link.death is not None:
            error.__cause__ = link.death
        mark_session_lost(error, mark)
        notify(pm, "on_reconnect", call=call, error=error)
        log.debug("mcp_hooks: session to %s lost (%s); rebuilding it", self.server, mark.detail or mark.loss.value)
        return call

    # --- what the HTTP layer reports about a link (from the tasks of its SDK transport) ------------------------

    def _session_rejected(self, link: _Link, status: int) -> None:
        if link.trouble is None:
            log.debug("mcp_hooks: %s answered HTTP %d to a request with our session id", self.server, status)
        self._give_up_link(link, SessionLostMark(Loss.REJECTED, status=status, detail=f"HTTP {status}"))

    def _answer_lost(self, link: _Link, loss: Loss, cause: str) -> None:
        self._give_up_link(link, SessionLostMark(loss, detail=cause))

    def _standing_stream_ended(self, link: _Link) -> None:
        if link.usable and not self._closing:
            self._give_up_link(link, SessionLostMark(Loss.IN_FLIGHT, detail="the server closed the GET stream"))
