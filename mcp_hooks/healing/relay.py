"""The healing relay: stands between an SDK session and the SDK transport, and rebuilds the transport
beneath the session when the session is lost, so the session object never sees the loss.

The session reads and writes the relay's streams. One **owner task** opens the real transport (so a
transport that dies never cancels the host's task); the messages both ways, and what the relay remembers
of them (the handshake, the logging level, resource subscriptions, the tools' annotations from the
``tools/list`` answers it relays), are :mod:`.traffic`'s. This module is the owner task.

On session loss (seen structurally by :mod:`.watch`, by an error answer the hooks call session loss,
by the transport or a stdio child dying) there is ONE rebuild for every request waiting: a new
transport, the handshake replayed with the relay's own ids (their answers never reach the session),
the logging level and subscriptions restored, then the refused requests re-sent (they never ran) and
requests lost in flight re-sent only when ``is_replay_safe`` says so. Every other lost request is
answered with a JSON-RPC error saying the outcome is uncertain. Nothing waits forever: a rebuild is
bounded by :data:`HEAL_DEADLINE` (or ``instrument("mcp", deadline=...)``, :mod:`.settings`), and a stdio
child that keeps dying is given up with one error.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from typing import Any

import anyio

from .. import redact, telemetry
from ..calls import OutcomeUncertain
from ..classify import Loss
from ..manager import decide, notify
from . import messages
from .breaker import _Breaker
from .link import _close, _Link, _Pending, put_at_once
from .traffic import RESTORE_TIMEOUT, _Traffic
from .watch import current_link

__all__ = ["HEAL_DEADLINE", "Relay", "tools_digest"]

log = logging.getLogger("mcp_hooks.healing")

#: How long requests waiting on a lost session may wait for the rebuild before they are answered
#: with an error (a call lost in flight resolves within 20 s of the connection dying).
HEAL_DEADLINE = 15.0
#: How long requests still out on a link that is being given up may take to receive their answers.
DRAIN_GRACE = 1.0
#: How long a rebuilt link may stay unused before the relay lists the tools on it anyway (to compare).
COMPARE_AFTER = 5.0
#: How long closing a healed session may wait for its transport to close.
CLOSE_TIMEOUT = 5.0
#: Links that die this soon after opening count towards the crash loop ...
SHORT_LIFE = 10.0
#: ... and this many in a row give the server up for good.
CRASH_LOOP_LIMIT = 5
#: Most requests re-sent for one request (each rebuild that loses it again counts).
MAX_RESENDS = 3
BACKOFF_INITIAL = 0.05
BACKOFF_MAX = 2.0


def _backoff(failures: int) -> float:
    ceiling = min(BACKOFF_MAX, BACKOFF_INITIAL * (2 ** max(0, failures - 1)))
    return random.uniform(ceiling / 2, ceiling)


class Relay(_Traffic):
    """Heals one SDK session; see the module's docstring. Built by :func:`~.streams.healed_streams`: the
    messages both ways are :class:`~.traffic._Traffic`'s, the owner task that opens each generation of the
    transport and rebuilds it after a loss is this class's."""

    @property
    def deadline(self) -> float:
        """Seconds requests wait for a rebuild while the server cannot be reached."""
        return self.settings.deadline if self.settings.deadline is not None else HEAL_DEADLINE

    @property
    def max_resends(self) -> int:
        return self.settings.max_reconnects if self.settings.max_reconnects is not None else MAX_RESENDS

    @property
    def breaker_after(self) -> float | None:
        """The ``open_circuit`` hook's threshold (``None``: the breaker was turned off)."""
        if not self.settings.breaker:
            return None
        return self.settings.breaker_after if self.settings.breaker_after is not None else self.deadline

    # ------------------------------------------------------------------ the owner task
    async def own(self, *, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Open the transport, relay, and rebuild it after every loss until the session closes."""
        try:
            await self._own(task_status)
        finally:
            self._link = None
            self._rebuild_over(ConnectionError("the session was closed before it was rebuilt"))
            self.closed.set()

    async def _own(self, task_status: Any) -> None:
        generation = 0
        short_lives = 0
        failures = 0
        started = False
        while not self._closing:
            link = _Link(self, generation)
            generation += 1
            live = False
            token = current_link.set(link)
            try:
                async with contextlib.AsyncExitStack() as stack:
                    streams = await stack.enter_async_context(self._open_transport())
                    # let the transport's own tasks start (one that never ran would never close its streams)
                    await anyio.lowlevel.checkpoint()
                    link.read, link.write = streams[0], streams[1]
                    link.put = put_at_once(link, self._watched)
                    if len(streams) > 2:
                        link.get_session_id = streams[2]
                    self._read_from(link)  # the session's reader takes the link's messages (answers to ours too)
                    if started:
                        await self._restore(link)
                    link.opened_at = time.monotonic()
                    self._link = link
                    live = True
                    if not started:
                        started = True
                        task_status.started()
                    else:
                        await self._rebuilt(link)
                    await link.trouble.wait()
                    if not self._closing:
                        await self._drain(link)
                    self._read_from(None)
                    # Closed by leaving the stack: the transport's own cancel scopes must be exited
                    # innermost first, so no bounding scope can be put around them here; the SDK
                    # bounds its own closing (a gone session's DELETE is answered by the watcher).
            except Exception as exc:
                if not started:
                    raise
                link.died = True
                if not link.gone:
                    link.give_up(f"{type(exc).__name__}: {exc}"[:200], exc)
            finally:
                current_link.reset(token)
                if self._reading is link:
                    self._read_from(None)
                _close(link.read, link.write)
            self._link = None
            if self._closing:
                break
            now = time.monotonic()
            # A link the server answered on ended an outage: this loss starts a new one (announced
            # once); a link that died before any answer is one more failed attempt of the same one.
            new_outage = self._outage_since is None or link.answered
            if new_outage:
                self._outage_since = now
                failures = 0
            refused = link.refused_credentials
            # without background healing a loss no request saw waits, unannounced, for the next request
            lazy = live and new_outage and refused is None and not self.settings.background and not self._pending
            if live:  # (an auth failure is not a lost session: no rebuild is announced)
                await self._settle(link, announce=new_outage and refused is None and not lazy)
            short_lives = short_lives + 1 if now - link.opened_at < SHORT_LIFE else 0
            if self.kind == "stdio" and short_lives >= CRASH_LOOP_LIMIT:
                await self._give_up_for_good(short_lives)
                return
            if lazy:
                await self._until_wanted()
                if self._closing:
                    break
                now = self._outage_since = time.monotonic()  # the rebuild begins now
                self._announce(link, None, None)
            since = self._outage_since or now
            if refused is not None:
                # An auth failure, not an outage: the waiting requests (the refused one among them: it
                # did not run) are told at once, no breaker; the next request tries again (the
                # credentials may have been refreshed meanwhile).
                await self._fail_waiting(
                    f"the server refused the credentials (HTTP {refused}) when the session was "
                    + ("rebuilt" if link.generation else "opened"),
                    "credentials-refused",
                    unreachable=False,
                )
                self._outage_since = None
                failures = 0
                await self._until_wanted()
                continue
            breaker = self._breaker
            if breaker is not None and not live:  # the one probe failed: fail fast again until the next
                breaker.probe_failed()
                await self._fail_waiting(breaker.describe(self.server), "circuit-open", unreachable=False)
                await self._until_probe(breaker)
                continue
            if failures:
                await self._wait_before_retry(failures, since)
            failures += 1
            opened = self._ask_breaker(since) if self._breaker_due(since) == 0 else None
            if opened is not None:
                # unreachable for breaker_after, within a deadline: the waiting requests fail at once
                await self._fail_waiting(opened.describe(self.server), "circuit-open", unreachable=False)
                self._outage_since = None
                failures = 0
                await self._until_probe(opened)
                continue
            if time.monotonic() - since > self.deadline:
                await self._fail_waiting(f"could not rebuild the session within {self.deadline:g} s", "unreachable")
                opened = self._ask_breaker(since)
                self._outage_since = None
                failures = 0
                await (self._until_probe(opened) if opened is not None else self._until_wanted())

    def _breaker_due(self, since: float) -> float | None:
        """Seconds until the server has been unreachable for ``breaker_after``, when that is shorter than
        the deadline (``None``: no breaker, or one asked only once a deadline has passed)."""
        threshold = self.breaker_after
        if threshold is None or threshold >= self.deadline:
            return None
        return max(0.0, threshold - (time.monotonic() - (self._unreachable_since or since)))

    def _ask_breaker(self, since: float) -> _Breaker | None:
        """The server could not be reached for a whole deadline, or for ``breaker_after`` within one: ask
        ``open_circuit`` (the built-in plugin opens it once the server has been unreachable for
        ``breaker_after``; a plugin may veto it). The breaker, when it opened."""
        down_since = self._unreachable_since = self._unreachable_since or since
        threshold = self.breaker_after
        if threshold is None:
            return None
        down_for = time.monotonic() - down_since
        if decide(self.pm, "open_circuit", call=self._call(None), down_for=down_for, threshold=threshold) is True:
            self._breaker = _Breaker(time.time() - down_for)
            log.info("mcp_hooks: %s", self._breaker.describe(self.server))
            return self._breaker
        return None

    async def _until_probe(self, breaker: _Breaker) -> None:
        """While the breaker is open: wait until its next probe is due (or a request was let through as the
        probe), then probe. In the background, so a server that is back is found without a request paying
        for it (at most one attempt each ``BREAKER_PROBE_MAX`` s, for as long as the session is open)."""
        while not self._closing and not breaker.admit():
            self._wanted = anyio.Event()
            with anyio.move_on_after(max(0.0, breaker.probe_at - time.monotonic())):
                await self._wanted.wait()

    async def _until_wanted(self) -> None:
        """Wait (no link up) until a request of the session's is waiting for one."""
        self._wanted = anyio.Event()
        while not self._closing and not self._pending:
            with anyio.move_on_after(60):
                await self._wanted.wait()

    async def _drain(self, link: _Link) -> None:
        """Give requests still out on a link that is being given up a moment to receive their answers."""
        if link.died:
            return
        with anyio.move_on_after(DRAIN_GRACE):
            while not link.died and any(p.link is link and p.lost is None for p in self._pending.values()):
                await link.change.wait()

    async def _settle(self, link: _Link, *, announce: bool) -> None:
        """After ``link`` is gone: requests it refused are sent again; requests lost in flight only if safe."""
        first: _Pending | None = None
        error: BaseException | None = None
        for pending in list(self._pending.values()):
            if pending.link is not link:
                continue
            loss = pending.lost or Loss.IN_FLIGHT
            if pending.lost is None:
                pending.lost = loss
                self._tell("on_tool_error", pending, error=self._lost(loss, link.cause, pending.method))
            pending.link = None
            pending.may_have_run = pending.may_have_run or loss is Loss.IN_FLIGHT
            error = link.evidence if loss is Loss.REJECTED and link.evidence is not None else None
            error = error or self._lost(loss, link.cause or "the connection was lost", pending.method)
            call = self._call(pending, pending.resends + 1)
            first = first or pending
            if pending.resends >= self.max_resends:
                self._tell("on_giveup", pending, error=error)
                lost = pending.resends + 1
                times = f"{lost} time{'s' if lost > 1 else ''}"
                # a server that refused it each time before running it: its own words say why
                said = (
                    f"MCP server {self.server} refused this request {times} ({pending.refusal})"
                    if loss is Loss.REJECTED and pending.refusal is not None
                    else f"MCP session lost {times} during this request"
                )
                self._answer_error(
                    pending,
                    f"{said}; gave up (max_reconnects={self.max_resends})",
                    messages.outcome(pending.may_have_run, "max-reconnects"),
                )
                continue
            if loss is Loss.IN_FLIGHT and not self._replay_safe(call, error):
                uncertain = OutcomeUncertain(self.server, call.tool, link.cause)
                self._tell("on_giveup", pending, error=uncertain)
                self._answer_error(pending, str(uncertain), messages.outcome(True, "in-flight", loss="in-flight"))
                continue
            if not pending.unreachable:
                pending.resends += 1
            pending.unreachable = False
        if announce:
            self._announce(link, first, error)

    def _announce(self, link: _Link, first: _Pending | None, error: BaseException | None) -> None:
        """``on_reconnect``, once for the rebuild after ``link``: led by ``first``, the first request lost with
        it, or (``None``) by the relay on its own."""
        cause_call = self._call(first) if first is not None else self._call(None)
        self._rebuild_over(ConnectionError("lost again before the server answered"))  # never two open
        self._announced = (cause_call, time.monotonic(), first is None)
        lost = self._lost(Loss.REJECTED, link.cause or "the connection was lost", None)
        with telemetry.within(first.scope if first is not None else None):
            notify(self.pm, "on_reconnect", call=cause_call, error=error or link.evidence or lost)
        log.debug(
            "mcp_hooks: session of %s lost (%s); rebuilding", self.server, link.cause or "the connection was lost"
        )

    async def _restore(self, link: _Link) -> None:
        """Replay on a new transport what the session set up, with the relay's own ids (a handshake still
        waiting for its first answer is the session's own, sent by :meth:`_rebuilt`: not twice)."""
        handshake = self._handshake
        if handshake and messages.method_of(handshake[0]) == "initialize" and not self._opening():
            answer = await self._ask(
                link, messages.with_id(self._handshake[0], self._own_id(link)), within=RESTORE_TIMEOUT
            )
            if answer is None or getattr(answer, "error", None) is not None:
                raise ConnectionError(f"the handshake with {self.server} failed on rebuild")
            for notification in self._handshake[1:]:
                if not await self._send_raw(link, notification):
                    raise ConnectionError("the transport closed during the handshake")
        elif self._breaker is not None and not await self._answers_ping(link):
            raise ConnectionError(f"the probe of {self.server} went unanswered")
        for item in [self._level, *self._subscriptions.values()]:
            if item is not None:
                await self._ask(link, messages.with_id(item, self._own_id(link)), within=RESTORE_TIMEOUT)

    async def _answers_ping(self, link: _Link) -> bool:
        """A probe with no handshake to replay (a session-less protocol): does the server answer a ping (any
        answer will do; the transport alone sends nothing until asked)."""
        return await self._ask(link, self._own_request(link, "ping"), within=RESTORE_TIMEOUT) is not None

    def _opening(self) -> bool:
        """The session's ``initialize`` is still waiting for its answer."""
        pending = self._pending.get(getattr(messages.inner(self._handshake[0]), "id", None))
        return pending is not None and pending.method == "initialize"

    async def _rebuilt(self, link: _Link) -> None:
        """A new link is up: what was held back is sent on it."""
        later, self._later = self._later, []
        for item in later:
            await self._send_raw(link, item)
        for pending in list(self._pending.values()):
            if pending.link is None and self._pending.get(pending.request_id) is pending:
                await self._send(pending)
        if self._tools is not None and self._tg is not None:
            self._tg.start_soon(self._compare_tools, link, dict(self._tools))

    async def _quiet(self, link: _Link, within: float) -> None:
        """Wait (bounded) until no request of the session's is out on ``link``."""
        link.watched = True
        with anyio.move_on_after(within):
            while not link.gone and any(p.link is link and p.lost is None for p in self._pending.values()):
                await link.change.wait()

    async def _compare_tools(self, link: _Link, before: dict[str, Any]) -> None:
        """Tell the session when the rebuilt server lists other tools than before (every page, bounded),
        once a request of the session's was answered on it (or it stayed unused for ``COMPARE_AFTER`` s) and
        the requests out are answered: the listing must not slow them down (the first listing of a server
        process that just started took about 35 ms under mcp 2.3, and a call sent meanwhile waited for it)."""
        link.watched = True
        with anyio.move_on_after(COMPARE_AFTER):
            while not link.gone and not link.served:
                await link.change.wait()
        await self._quiet(link, RESTORE_TIMEOUT)
        if await self._list_tools(link) and tools_digest(self._tools or {}) != tools_digest(before):
            self._to_session(messages.notification("notifications/tools/list_changed"))

    async def _wait_before_retry(self, failures: int, loss_since: float) -> None:
        """Back off before the next attempt; a request of the session's arriving meanwhile cuts it short
        (after at least the first backoff step), so the first call after a restart does not wait it out."""
        left = self.deadline - (time.monotonic() - loss_since)
        breaker = self._breaker_due(loss_since)
        wait = max(0.0, min(_backoff(failures), left, left if breaker is None else breaker))
        self._wanted = anyio.Event()
        await anyio.sleep(min(wait, BACKOFF_INITIAL))
        with anyio.move_on_after(max(0.0, wait - BACKOFF_INITIAL)):
            await self._wanted.wait()

    async def _fail_waiting(self, why: str, reason: str, *, unreachable: bool = True) -> None:
        said = f"MCP server {self.server} unreachable: {why}" if unreachable else f"MCP server {self.server}: {why}"
        for pending in list(self._pending.values()):
            if pending.link is None:
                error = self._lost(pending.lost or Loss.REJECTED, why, pending.method)
                self._tell("on_giveup", pending, error=error)
                self._answer_error(pending, said, messages.outcome(pending.may_have_run, reason))
        self._rebuild_over(ConnectionError(said))
        log.debug("mcp_hooks: gave up rebuilding the session of %s: %s", self.server, why)

    async def _give_up_for_good(self, deaths: int) -> None:
        self._dead_for_good = (
            f"MCP server command {self.server.removeprefix('stdio:')!r} exited {deaths} times in a row within "
            f"{SHORT_LIFE:.0f} s of starting; it is not restarted again"
        )
        log.warning("mcp_hooks: %s", redact.text(self._dead_for_good))
        self._rebuild_over(ConnectionError(self._dead_for_good))
        for pending in list(self._pending.values()):
            self._tell("on_giveup", pending, error=ConnectionError(self._dead_for_good))
            may_have_run = pending.may_have_run or pending.link is not None
            self._answer_error(pending, self._dead_for_good, messages.outcome(may_have_run, "crash-loop"))


def tools_digest(tools: dict[str, Any]) -> str:
    """What a ``tools/list`` said, as one comparable string: each tool's name and annotations."""
    return json.dumps({name: _plain(value) for name, value in tools.items()}, sort_keys=True, default=str)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (dict, str, int, float, bool, list)):
        return value
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else repr(value)
