"""The healing relay: stands between an SDK session and the SDK transport, and rebuilds the transport
beneath the session when the session is lost, so the session object never sees the loss.

The session reads and writes the relay's streams. One **owner task** opens the real transport (so a
transport that dies never cancels the host's task) and relays messages both ways. The relay remembers
what the session set up (the handshake, the logging level, resource subscriptions) and the tools'
annotations from the ``tools/list`` answers it relays.

On session loss (seen structurally by :mod:`.watch`, by an error answer the hooks call session loss,
by the transport or a stdio child dying) there is ONE rebuild for every request waiting: a new
transport, the handshake replayed with the relay's own ids (their answers never reach the session),
the logging level and subscriptions restored, then the refused requests re-sent (they never ran) and
requests lost in flight re-sent only when ``is_replay_safe`` says so. Every other lost request is
answered with a JSON-RPC error saying the outcome is uncertain. Nothing waits forever: a rebuild is
bounded by :data:`HEAL_DEADLINE`, and a stdio child that keeps dying is given up with one error.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import anyio
import pluggy
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import redact, telemetry
from ..calls import OutcomeUncertain, ToolCall
from ..classify import Loss, SessionLostMark, classify, flow_expired, mark_session_lost
from ..manager import decide, notify, plugin_manager
from . import messages
from .breaker import _Breaker
from .link import _close, _Link, _Pending
from .watch import current_link

__all__ = ["HEAL_DEADLINE", "Relay"]

log = logging.getLogger("mcp_hooks.healing")

#: How long requests waiting on a lost session may wait for the rebuild before they are answered
#: with an error (a call lost in flight resolves within 20 s of the connection dying).
HEAL_DEADLINE = 15.0
#: How long requests still out on a link that is being given up may take to receive their answers.
DRAIN_GRACE = 1.0
#: How long one handshake replay may take.
RESTORE_TIMEOUT = 10.0
#: How long closing a healed session may wait for its transport to close.
CLOSE_TIMEOUT = 5.0
#: Links that die this soon after opening count towards the crash loop ...
SHORT_LIFE = 10.0
#: ... and this many in a row give the server up for good.
CRASH_LOOP_LIMIT = 5
#: Most pages of ``tools/list`` read to tell whether the tools changed across a rebuild.
MAX_TOOL_PAGES = 20
#: Most requests re-sent for one request (each rebuild that loses it again counts).
MAX_RESENDS = 3
BACKOFF_INITIAL = 0.05
BACKOFF_MAX = 2.0
#: How often one multi-round-trip flow (2026-07-28) is started again after its ``requestState`` expired.
FLOW_RESTARTS = 2
#: Requests that may answer ``input_required`` and go on in rounds carrying its ``requestState``.
_FLOW_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
#: The most ``requestState`` values of flows in progress remembered (the oldest is forgotten first).
_FLOWS_LIMIT = 256
#: A ``subscriptions/listen`` stream (2026-07-28) is acknowledged by this notification; every frame of the
#: stream names its listen request's id in ``_meta`` under :data:`_SUBSCRIPTION_ID`.
_ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
_SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
#: What a listen stream acknowledged that was resent may have missed: the filter's key -> the event's method.
_MISSED_EVENTS = (
    ("toolsListChanged", "notifications/tools/list_changed"),
    ("promptsListChanged", "notifications/prompts/list_changed"),
    ("resourcesListChanged", "notifications/resources/list_changed"),
)

_OWN = "mcp-hooks:"
#: Protocol requests that read only: safe to send again whatever the tools' annotations say.
_READ_ONLY_METHODS = frozenset(
    {
        "ping",
        "tools/list",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "server/discover",
        "subscriptions/listen",  # opens a stream of change events: nothing runs on the server
    }
)
_READ_ONLY = {"readOnlyHint": True}
_UNCERTAIN_DATA = {"mcp-hooks": {"loss": "in-flight", "outcome": "uncertain"}}


#: The tools' annotations last listed per server, for sessions that never list them themselves (a
#: framework that opens a session per call lists the tools once, through another session). Bounded.
_KNOWN_TOOLS: dict[str, dict[str, Any]] = {}
_KNOWN_TOOLS_LIMIT = 256


def _remember_tools(server: str, tools: dict[str, Any]) -> None:
    if server not in _KNOWN_TOOLS and len(_KNOWN_TOOLS) >= _KNOWN_TOOLS_LIMIT:
        _KNOWN_TOOLS.pop(next(iter(_KNOWN_TOOLS)))
    _KNOWN_TOOLS[server] = tools


def _annotations_of(server: str, tools: dict[str, Any] | None, tool: str) -> Any:
    """A tool's annotations as this session listed them, else as the server last listed them to any session."""
    if tools is not None and tool in tools:
        return tools[tool]
    return _KNOWN_TOOLS.get(server, {}).get(tool)


def _backoff(failures: int) -> float:
    ceiling = min(BACKOFF_MAX, BACKOFF_INITIAL * (2 ** max(0, failures - 1)))
    return random.uniform(ceiling / 2, ceiling)


def _lost_error(loss: Loss, cause: str, method: str | None) -> ConnectionError:
    error = ConnectionError(f"MCP session lost ({cause})")
    mark_session_lost(error, SessionLostMark(loss, method=method, detail=cause))
    return error


class Relay:
    """Heals one SDK session; see the module's docstring. Built by :func:`healed_streams`."""

    def __init__(
        self,
        open_transport: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
        *,
        kind: str,
        server: str,
        pm: pluggy.PluginManager | None = None,
    ) -> None:
        self._open_transport = open_transport
        self.kind = kind
        self.server = server
        self._pm = pm
        self.rebuilds = 0
        self._pending: dict[Any, _Pending] = {}
        self._link: _Link | None = None
        self._closing = False
        self._wanted = anyio.Event()  # a request arrived while no link is up
        self._ids = itertools.count(1)
        self._handshake: list[Any] = []
        self._level: Any = None
        self._subscriptions: dict[str, Any] = {}
        self._later: list[Any] = []  # notifications of the session's held during a rebuild
        self._tools: dict[str, Any] | None = None
        self._dead_for_good: str | None = None
        self._session_send: MemoryObjectSendStream[Any] | None = None
        self.closed = anyio.Event()
        self._tg: Any = None
        self._outage_since: float | None = None  # when the current loss was seen (None: healthy)
        self._breaker: _Breaker | None = None  # open while the server cannot be rebuilt
        self._announced: tuple[ToolCall, float] | None = None  # the rebuild on_reconnect announced
        self._scopes: dict[Any, Any] = {}  # request id -> the tracer's scope it was sent in (telemetry)
        self._flows: dict[str, int] = {}  # requestState relayed to the session -> restarts of its flow

    # ------------------------------------------------------------------ plumbing
    @property
    def pm(self) -> pluggy.PluginManager:
        return self._pm if self._pm is not None else plugin_manager()

    def session_id(self) -> str | None:
        link = self._link
        if link is None:
            return None
        return link.get_session_id() if link.get_session_id is not None else link.session_id_seen

    def _call(self, pending: _Pending | None, attempt: int = 1) -> ToolCall:
        if pending is None:
            return ToolCall(server=self.server, owner=self, framework="mcp")
        params = getattr(messages.inner(pending.message), "params", None) or {}
        if pending.method == "tools/call":
            tool = params.get("name")
            annotations = _annotations_of(self.server, self._tools, tool) if isinstance(tool, str) else None
            return ToolCall(
                server=self.server,
                tool=tool if isinstance(tool, str) else None,
                arguments=params.get("arguments"),
                annotations=annotations,
                attempt=attempt,
                owner=self,
                framework="mcp",
            )
        annotations = _READ_ONLY if pending.method in _READ_ONLY_METHODS else None
        return ToolCall(server=self.server, annotations=annotations, attempt=attempt, owner=self, framework="mcp")

    def _tell(self, hook: str, pending: _Pending, **kwargs: Any) -> None:
        """Call an observer hook about ``pending`` (a tracer sees it as that request's)."""
        with telemetry.within(pending.scope):
            notify(self.pm, hook, call=self._call(pending, pending.resends + 1), **kwargs)

    def _rebuild_over(self, error: BaseException | None) -> None:
        """The rebuild announced by ``on_reconnect`` ended (``error``: given up)."""
        announced, self._announced = self._announced, None
        if announced is not None:
            call, since = announced
            notify(self.pm, "on_rebuilt", call=call, error=error, seconds=time.monotonic() - since)

    async def _to_session(self, item: Any) -> None:
        if self._session_send is None:
            return
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await self._session_send.send(item)

    def abandon(self, request_id: Any, reason: str) -> None:
        """The session's caller gave the request up (mcp 1.x says so to nobody): it is never sent again,
        and a server that has it is told (``notifications/cancelled``), as mcp 2.x does itself."""
        self._scopes.pop(request_id, None)
        pending = self._pending.pop(request_id, None)
        link = pending.link if pending is not None else None
        if link is None or link.gone or self._tg is None:
            return
        note = messages.notification("notifications/cancelled", {"requestId": request_id, "reason": reason})
        self._tg.start_soon(self._send_raw, link, note)

    async def _answer_error(self, pending: _Pending, message: str, data: Any = None) -> None:
        self._pending.pop(pending.request_id, None)
        await self._to_session(messages.error_answer(pending.request_id, messages.UNCERTAIN_CODE, message, data))

    # ------------------------------------------------------------------ the session's side
    async def _up(self, from_session: MemoryObjectReceiveStream[Any]) -> None:
        """Every message the session writes: remembered as needed, sent on the live link or held."""
        try:
            async with from_session:
                async for item in from_session:
                    await self._from_session(item)
        finally:
            self._closing = True
            self._wanted.set()
            link = self._link
            if link is not None:
                link.trouble.set()

    async def _from_session(self, item: Any) -> None:
        message = messages.inner(item)
        method = getattr(message, "method", None)
        request_id = getattr(message, "id", None)
        if method is not None and request_id is not None:
            scope = self._scopes.pop(request_id, None) if self._scopes else None
            if self._dead_for_good is not None:
                await self._to_session(messages.error_answer(request_id, messages.UNCERTAIN_CODE, self._dead_for_good))
                return
            breaker = self._breaker
            if breaker is not None and not breaker.admit():
                await self._to_session(
                    messages.error_answer(request_id, messages.UNCERTAIN_CODE, breaker.describe(self.server))
                )
                return
            if method == "initialize":
                self._handshake = [item]
            elif method == "logging/setLevel":
                self._level = item
            elif method == "resources/subscribe":
                uri = (getattr(message, "params", None) or {}).get("uri")
                if isinstance(uri, str):
                    self._subscriptions[uri] = item
            elif method == "resources/unsubscribe":
                uri = (getattr(message, "params", None) or {}).get("uri")
                if isinstance(uri, str):
                    self._subscriptions.pop(uri, None)
            pending = _Pending(item, request_id, method, scope)
            if method in _FLOW_METHODS:
                state = (getattr(message, "params", None) or {}).get("requestState")
                pending.flow = 0 if state is None else self._flows.pop(state, None)
            self._pending[request_id] = pending
            await self._send(pending)
            return
        if method == "notifications/initialized":
            self._handshake = [*self._handshake[:1], item]
        elif method == "notifications/cancelled":
            cancelled = (getattr(message, "params", None) or {}).get("requestId")
            self._pending.pop(cancelled, None)
        link = self._link
        if link is not None and not link.gone:
            await self._send_raw(link, item)
        elif method is not None and len(self._later) < 100:
            self._later.append(item)  # sent once the session is rebuilt; answers to a lost server are dropped

    async def _send(self, pending: _Pending) -> None:
        link = self._link
        if link is None or link.gone:
            pending.link = None
            self._wanted.set()
            return
        pending.link = link
        pending.lost = None
        if pending.scope is not None:
            telemetry.note(pending.scope, self.server, self.session_id())
        if not await self._send_raw(link, pending.message):
            self._lost_on(link, pending.request_id, Loss.REJECTED, "the transport refused the message")

    async def _send_raw(self, link: _Link, item: Any) -> bool:
        # mcp 2.x runs each request in the context its message was sent from: the link must be in it.
        token = current_link.set(link)
        try:
            await link.write.send(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            link.died = True
            link.give_up(f"the transport is closed ({type(exc).__name__})")
            return False
        finally:
            current_link.reset(token)
        return True

    # ------------------------------------------------------------------ the transport's side
    async def _down(self, link: _Link) -> None:
        """Every message of one link's transport: answers matched, losses noticed, the rest passed on."""
        try:
            async for item in link.read:
                if not link.answered:
                    link.answered = True
                    if link.generation:
                        self._confirmed(link)
                if isinstance(item, BaseException):
                    await self._to_session(item)
                    continue
                message = messages.inner(item)
                request_id = getattr(message, "id", None)
                if isinstance(request_id, str) and request_id.startswith(_OWN):
                    waiter = link.waiters.get(request_id)
                    if waiter is not None:
                        waiter[1] = message
                        waiter[0].set()
                    continue
                if request_id is None and getattr(message, "method", None) == _ACKNOWLEDGED:
                    await self._to_session(item)
                    await self._listening_again(message)
                    continue
                pending = self._pending.get(request_id) if request_id is not None else None
                if pending is not None and getattr(message, "method", None) is None:
                    error = getattr(message, "error", None)
                    if error is not None and (
                        self._is_loss(link, pending, error) or self._restart_flow(pending, error)
                    ):
                        continue
                    if pending.flow is not None:
                        self._flow_goes_on(pending, getattr(message, "result", None))
                    self._pending.pop(request_id, None)
                    if link.gone or link.watched:  # someone waits for this link to settle
                        link.changed()
                    if pending.method == "tools/list":
                        params = getattr(messages.inner(pending.message), "params", None) or {}
                        self._learn_tools(getattr(message, "result", None), first_page=not params.get("cursor"))
                    if pending.resends:
                        self._tell("on_recovered", pending)
                await self._to_session(item)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            pass
        link.died = True
        for waiter in link.waiters.values():
            waiter[0].set()
        if not self._closing:
            link.give_up("the transport closed" if not link.gone else link.cause)

    def _is_loss(self, link: _Link, pending: _Pending, error: Any) -> bool:
        """An error answer: session loss when the HTTP layer saw it (the request is already marked) or
        when the hooks say so. Returns whether the answer is held back from the session."""
        if pending.link is link and pending.lost is not None:
            return True
        if not self._handshake:
            return False  # no session yet (or a session-less protocol): nothing to lose
        exc = messages.sdk_error(error)
        call = self._call(pending, pending.resends + 1)
        if decide(self.pm, "should_reconnect", call=call, error=exc) is not True:
            return False
        verdict = classify(exc)
        loss = Loss.REJECTED if verdict.loss is Loss.REJECTED else Loss.IN_FLIGHT
        self._lost_on(link, pending.request_id, loss, f"{error.code}: {error.message}"[:200], evidence=exc)
        return True

    async def _listening_again(self, ack: Any) -> None:
        """A ``subscriptions/listen`` the relay sent again (its stream was lost with the server) is
        acknowledged by the new server: the session's subscription goes on, under its own id. The protocol
        replays nothing, so the session is then told one event per kind the stream honours (a list changed,
        each subscribed resource updated): a consumer that refetches on events refetches what it missed."""
        params = getattr(ack, "params", None) or {}
        listen_id = (params.get("_meta") or {}).get(_SUBSCRIPTION_ID)
        pending = self._pending.get(listen_id) if isinstance(listen_id, (str, int)) else None
        if pending is None or pending.method != "subscriptions/listen" or not pending.resends:
            return
        self._tell("on_recovered", pending)
        pending.resends = 0  # it lives on: the next loss of the stream is a first loss again
        honored = params.get("notifications") or {}
        meta = {_SUBSCRIPTION_ID: listen_id}
        missed = [messages.notification(method, {"_meta": meta}) for key, method in _MISSED_EVENTS if honored.get(key)]
        missed += [
            messages.notification("notifications/resources/updated", {"uri": uri, "_meta": meta})
            for uri in honored.get("resourceSubscriptions") or ()
            if isinstance(uri, str)
        ]
        for notification in missed:
            await self._to_session(notification)
        log.info("mcp_hooks: %s: a subscriptions/listen stream was opened again after a loss", self.server)

    def _restart_flow(self, pending: _Pending, error: Any) -> bool:
        """A round of a flow this relay saw start was refused for its ``requestState`` (the server restarted
        between the rounds): the round never ran, so the flow's first request is sent again in its place,
        when the tool is safe to repeat (the ``is_replay_safe`` hook), at most :data:`FLOW_RESTARTS` times.
        The session then sees the new process's ``input_required`` answer and goes on from there."""
        if pending.flow is None or pending.flow >= FLOW_RESTARTS or self._tg is None:
            return False
        exc = messages.sdk_error(error)
        if not flow_expired(exc):
            return False
        if decide(self.pm, "is_replay_safe", call=self._call(pending, pending.resends + 1), error=exc) is not True:
            log.info("mcp_hooks: %s: a flow's requestState expired; not started again (not known safe)", self.server)
            return False
        log.info("mcp_hooks: %s: a flow's requestState expired (the server restarted); started again", self.server)
        pending.flow += 1
        pending.message = messages.first_round(pending.message)
        self._tg.start_soon(self._send, pending)
        return True

    def _flow_goes_on(self, pending: _Pending, result: Any) -> None:
        """Remember the ``requestState`` of an ``input_required`` answer: the session's next round carries it."""
        state = result.get("requestState") if isinstance(result, dict) else None
        if isinstance(state, str) and result.get("resultType") == "input_required" and pending.flow is not None:
            if len(self._flows) >= _FLOWS_LIMIT:
                self._flows.pop(next(iter(self._flows)))
            self._flows[state] = pending.flow

    def _lost_on(
        self,
        link: _Link,
        request_id: Any,
        loss: Loss,
        cause: str,
        evidence: BaseException | None = None,
        *,
        unreachable: bool = False,
    ) -> None:
        """The session of ``link`` is lost; ``request_id`` (if known and waiting) did not run (REJECTED) or
        may have (IN_FLIGHT)."""
        cause = redact.text(cause)
        pending = self._pending.get(request_id) if request_id is not None else None
        if pending is not None and pending.link is link and pending.lost is None:
            pending.lost = loss
            pending.unreachable = unreachable
            self._tell("on_tool_error", pending, error=evidence or _lost_error(loss, cause, pending.method))
        link.give_up(cause, evidence)
        link.changed()

    def _suspect(self, link: _Link) -> None:
        """The standing GET stream ended: ask the server with a ping whether the session is still there."""
        if self._closing or link.gone or self._tg is None or not self._handshake:
            return
        self._tg.start_soon(self._probe, link)

    async def _probe(self, link: _Link) -> None:
        answer = await self._ask(link, messages.request(self._own_id(link), "ping"), within=RESTORE_TIMEOUT)
        if link.gone or self._closing:
            return
        error = getattr(answer, "error", None) if answer is not None else None
        if answer is None:
            link.give_up("the standing stream ended and a ping went unanswered")
        elif error is not None:
            exc = messages.sdk_error(error)
            if decide(self.pm, "should_reconnect", call=self._call(None), error=exc) is True:
                link.give_up(f"the standing stream ended; ping: {error.code}: {error.message}"[:200], exc)

    def _own_id(self, link: _Link) -> str:
        return f"{_OWN}{link.generation}:{next(self._ids)}"

    async def _ask(self, link: _Link, message: Any, *, within: float) -> Any:
        """Send a request of the relay's own on ``link``; its answer (never shown to the session), or ``None``."""
        request_id = messages.inner(message).id
        waiter: list[Any] = [anyio.Event(), None]
        link.waiters[request_id] = waiter
        try:
            if not await self._send_raw(link, message):
                return None
            with anyio.move_on_after(within):
                await waiter[0].wait()
            return waiter[1]
        finally:
            link.waiters.pop(request_id, None)

    def _learn_tools(self, result: Any, *, first_page: bool) -> None:
        """Remember the tools' annotations from a ``tools/list`` answer (a first page starts afresh)."""
        tools = result.get("tools") if isinstance(result, dict) else getattr(result, "tools", None)
        if not isinstance(tools, list):
            return
        known = {} if first_page else dict(self._tools or {})
        for tool in tools:
            name = tool.get("name") if isinstance(tool, dict) else getattr(tool, "name", None)
            if isinstance(name, str):
                known[name] = tool.get("annotations") if isinstance(tool, dict) else getattr(tool, "annotations", None)
        self._tools = known
        _remember_tools(self.server, known)

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
                    if len(streams) > 2:
                        link.get_session_id = streams[2]
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(self._down, link)
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
                        tg.cancel_scope.cancel()
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
            if live:
                await self._settle(link, announce=new_outage)
            short_lives = short_lives + 1 if now - link.opened_at < SHORT_LIFE else 0
            if self.kind == "stdio" and short_lives >= CRASH_LOOP_LIMIT:
                await self._give_up_for_good(short_lives)
                return
            since = self._outage_since or now
            if link.refused_credentials is not None and not live:
                # An auth failure, not an outage: the waiting requests are told at once, no breaker; the
                # next request tries again (the credentials may have been refreshed meanwhile).
                await self._fail_waiting(
                    f"the server refused the credentials (HTTP {link.refused_credentials}) when the session "
                    "was rebuilt",
                    unreachable=False,
                )
                self._outage_since = None
                failures = 0
                await self._until_wanted()
                continue
            breaker = self._breaker
            if breaker is not None and not live:  # the one probe failed: fail fast again until the next
                breaker.probe_failed()
                await self._fail_waiting(breaker.describe(self.server), unreachable=False)
                await self._until_wanted()
                continue
            if failures:
                await self._wait_before_retry(failures, since)
            failures += 1
            down_for = time.monotonic() - since
            if down_for > HEAL_DEADLINE:
                await self._fail_waiting(f"could not rebuild the session within {HEAL_DEADLINE:.0f} s")
                asked = decide(
                    self.pm, "open_circuit", call=self._call(None), down_for=down_for, threshold=HEAL_DEADLINE
                )
                if asked is True:  # the built-in circuit-breaker plugin; a plugin may veto it
                    self._breaker = _Breaker(time.time() - down_for)
                    log.info("mcp_hooks: %s", self._breaker.describe(self.server))
                self._outage_since = None
                failures = 0
                await self._until_wanted()

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
                self._tell("on_tool_error", pending, error=_lost_error(loss, link.cause, pending.method))
            pending.link = None
            error = link.evidence if loss is Loss.REJECTED and link.evidence is not None else None
            error = error or _lost_error(loss, link.cause or "the connection was lost", pending.method)
            call = self._call(pending, pending.resends + 1)
            first = first or pending
            if pending.resends >= MAX_RESENDS:
                self._tell("on_giveup", pending, error=error)
                await self._answer_error(
                    pending, f"MCP session lost {pending.resends + 1} times during this request; gave up"
                )
                continue
            if loss is Loss.IN_FLIGHT and decide(self.pm, "is_replay_safe", call=call, error=error) is not True:
                uncertain = OutcomeUncertain(self.server, call.tool, link.cause)
                self._tell("on_giveup", pending, error=uncertain)
                await self._answer_error(
                    pending, str(uncertain), {"mcp-hooks": {"loss": "in-flight", "outcome": "uncertain"}}
                )
                continue
            if not pending.unreachable:
                pending.resends += 1
            pending.unreachable = False
        if not announce:
            return
        cause_call = self._call(first) if first is not None else self._call(None)
        self._rebuild_over(ConnectionError("lost again before the server answered"))  # never two open
        self._announced = (cause_call, time.monotonic())
        cause = error or link.evidence or _lost_error(Loss.REJECTED, link.cause or "the connection was lost", None)
        with telemetry.within(first.scope if first is not None else None):
            notify(self.pm, "on_reconnect", call=cause_call, error=cause)
        log.debug(
            "mcp_hooks: session of %s lost (%s); rebuilding", self.server, link.cause or "the connection was lost"
        )

    async def _restore(self, link: _Link) -> None:
        """Replay on a new transport what the session set up, with the relay's own ids."""
        if self._handshake and messages.method_of(self._handshake[0]) == "initialize":
            answer = await self._ask(
                link, messages.with_id(self._handshake[0], self._own_id(link)), within=RESTORE_TIMEOUT
            )
            if answer is None or getattr(answer, "error", None) is not None:
                raise ConnectionError(f"the handshake with {self.server} failed on rebuild")
            for notification in self._handshake[1:]:
                if not await self._send_raw(link, notification):
                    raise ConnectionError("the transport closed during the handshake")
        for item in [self._level, *self._subscriptions.values()]:
            if item is not None:
                await self._ask(link, messages.with_id(item, self._own_id(link)), within=RESTORE_TIMEOUT)

    def _confirmed(self, link: _Link) -> None:
        """The server answered on a rebuilt link: the outage is over."""
        self.rebuilds += 1
        since, self._outage_since = self._outage_since, None
        if self._breaker is not None:
            log.info("mcp_hooks: MCP server %s answers again; circuit breaker closed", self.server)
            self._breaker = None
        self._rebuild_over(None)
        if since is not None:
            log.debug(
                "mcp_hooks: session of %s rebuilt (generation %d) in %.2f s",
                self.server,
                link.generation,
                time.monotonic() - since,
            )

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
        once the requests re-sent on it are answered (the listing must not slow them down)."""
        await self._quiet(link, RESTORE_TIMEOUT)
        cursor: Any = None
        for page in range(MAX_TOOL_PAGES):
            params = {"cursor": cursor} if cursor else None
            answer = await self._ask(
                link, messages.request(self._own_id(link), "tools/list", params), within=RESTORE_TIMEOUT
            )
            result = getattr(answer, "result", None) if answer is not None else None
            if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                return
            self._learn_tools(result, first_page=page == 0)
            cursor = result.get("nextCursor")
            if not cursor:
                break
        else:
            return  # too many pages to tell

        def digest(tools: dict[str, Any]) -> str:
            return json.dumps({k: _plain(v) for k, v in tools.items()}, sort_keys=True, default=str)

        if digest(self._tools or {}) != digest(before):
            await self._to_session(messages.notification("notifications/tools/list_changed"))

    async def _wait_before_retry(self, failures: int, loss_since: float) -> None:
        """Back off before the next attempt; a request of the session's arriving meanwhile cuts it short
        (after at least the first backoff step), so the first call after a restart does not wait it out."""
        left = HEAL_DEADLINE - (time.monotonic() - loss_since)
        wait = max(0.0, min(_backoff(failures), left))
        self._wanted = anyio.Event()
        await anyio.sleep(min(wait, BACKOFF_INITIAL))
        with anyio.move_on_after(max(0.0, wait - BACKOFF_INITIAL)):
            await self._wanted.wait()

    async def _fail_waiting(self, why: str, *, unreachable: bool = True) -> None:
        said = f"MCP server {self.server} unreachable: {why}" if unreachable else f"MCP server {self.server}: {why}"
        for pending in list(self._pending.values()):
            if pending.link is None:
                error = _lost_error(pending.lost or Loss.REJECTED, why, pending.method)
                self._tell("on_giveup", pending, error=error)
                await self._answer_error(pending, said)
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
            await self._answer_error(pending, self._dead_for_good)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, (dict, str, int, float, bool, list)):
        return value
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else repr(value)
