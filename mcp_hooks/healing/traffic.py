"""What passes through the healing relay (:class:`_Traffic`, the relay's base): the session's messages on
their way to the live transport, and the transport's on their way back, matched to the requests waiting
for them and watched for session loss.

It remembers what the session set up (the handshake, the logging level, resource subscriptions, the
tools' annotations from the ``tools/list`` answers it relays), sends requests of its own (a ping when the
standing stream ends; their answers never reach the session), starts a multi-round-trip flow again when
its ``requestState`` expired with the server, and picks a lost ``subscriptions/listen`` up again. What to
do after a loss (settle, restore, rebuild) is the owner task's: :mod:`.relay`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import pluggy
from anyio.streams.memory import MemoryObjectReceiveStream

from .. import redact, telemetry
from ..calls import ToolCall
from ..classify import Loss, SessionLostMark, classify, flow_expired, mark_session_lost
from ..manager import decide, notify, plugin_manager
from . import messages
from .breaker import _Breaker
from .link import _Link, _Pending
from .settings import HealSettings, current
from .watch import current_link

if TYPE_CHECKING:
    from .streams import _SessionReader

log = logging.getLogger("mcp_hooks.healing")

#: How long one request of the relay's own (a handshake replay, a ping, a listing) may take.
RESTORE_TIMEOUT = 10.0
#: The per-request ``_meta`` of the session-less protocol (2026-07-28): its keys' prefix, and the one each has.
_META_PREFIX = "io.modelcontextprotocol/"
_PROTOCOL_META = _META_PREFIX + "protocolVersion"
#: Most pages of ``tools/list`` the relay reads itself (to learn the tools, or whether they changed).
MAX_TOOL_PAGES = 20
#: How often one multi-round-trip flow (2026-07-28) is started again after its ``requestState`` expired.
FLOW_RESTARTS = 2
#: Requests that may answer ``input_required`` and go on in rounds carrying its ``requestState``.
_FLOW_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
#: The most ``requestState`` values of flows in progress remembered (the oldest is forgotten first), and
#: the most listen streams whose reopenings are counted.
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
#: Requests whose effect the relay restores after a rebuild (it remembers them as they pass).
_SETTING_UP = frozenset({"initialize", "logging/setLevel", "resources/subscribe", "resources/unsubscribe"})


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


class _Traffic:
    """The relay's state and its messages both ways; :class:`~.relay.Relay` adds the owner task."""

    def __init__(
        self,
        open_transport: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
        *,
        kind: str,
        server: str,
        pm: pluggy.PluginManager | None = None,
        settings: HealSettings | None = None,
        owner: Any = None,
    ) -> None:
        self._open_transport = open_transport
        self.kind = kind
        self._watched = kind == "http"  # the HTTP watcher (watch.py) reports this relay's losses too
        self.server = server
        self._pm = pm
        self.rebuilds = 0
        #: listen request id -> how often its subscriptions/listen stream was sent again and acknowledged
        #: after a loss (the latest :data:`_FLOWS_LIMIT` streams)
        self.listens_reopened: dict[Any, int] = {}
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
        self._reader: _SessionReader | None = None  # the stream the session reads (relay_streams)
        self._reading: _Link | None = None  # the link whose messages the session's reader takes
        self.closed = anyio.Event()
        self._tg: Any = None
        self._outage_since: float | None = None  # when the current loss was seen (None: healthy)
        self._breaker: _Breaker | None = None  # open while the server cannot be rebuilt
        self._announced: tuple[ToolCall, float, bool] | None = None  # on_reconnect's rebuild (own?)
        self._request_meta: dict[str, Any] = {}  # what a session-less session's requests carry each time
        self._learning = False  # the relay asked for the tools itself (the session called one unlisted)
        self._flows: dict[str, int] = {}  # requestState relayed to the session -> restarts of its flow
        #: the bounds: given, or instrument("mcp", ...)'s options when the session opened
        self.settings = settings if settings is not None else current()
        #: what the hooks see as each call's ``owner``: the object healed by this relay (itself by default)
        self.owner = self if owner is None else owner
        self._unreachable_since: float | None = None  # when the server stopped answering (breaker)

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
            return ToolCall(server=self.server, owner=self.owner, framework="mcp")
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
                owner=self.owner,
                framework="mcp",
            )
        annotations = _READ_ONLY if pending.method in _READ_ONLY_METHODS else None
        return ToolCall(server=self.server, annotations=annotations, attempt=attempt, owner=self.owner, framework="mcp")

    def annotations_of(self, tool: str) -> Any:
        """A tool's annotations as this session's server listed them (``None``: not known)."""
        return _annotations_of(self.server, self._tools, tool)

    def _lost(self, loss: Loss, cause: str, method: str | None) -> ConnectionError:
        """The error the hooks hear for a lost session (it names the server, as ``connect()``'s always has)."""
        error = ConnectionError(f"MCP session to {self.server} lost ({cause})")
        mark_session_lost(error, SessionLostMark(loss, method=method, detail=cause))
        return error

    def _replay_safe(self, call: ToolCall, error: BaseException) -> bool:
        """May a request lost in flight run again: a tool named in ``replay_safe_tools``, or the hooks say so."""
        if call.tool is not None and call.tool in self.settings.replay_safe_tools:
            return True
        return decide(self.pm, "is_replay_safe", call=call, error=error) is True

    def _tell(self, hook: str, pending: _Pending, **kwargs: Any) -> None:
        """Call an observer hook about ``pending`` (a tracer sees it as that request's)."""
        with telemetry.within(pending.scope):
            notify(self.pm, hook, call=self._call(pending, pending.resends + 1), **kwargs)

    def _rebuild_over(self, error: BaseException | None) -> None:
        """The rebuild announced by ``on_reconnect`` ended (``error``: given up). A rebuild the relay began on
        its own (no request was lost with the link) has its own outcome too, as a request's would be:
        ``on_recovered``, or ``on_giveup`` with why."""
        announced, self._announced = self._announced, None
        if announced is not None:
            call, since, own = announced
            notify(self.pm, "on_rebuilt", call=call, error=error, seconds=time.monotonic() - since)
            if own and error is None:
                notify(self.pm, "on_recovered", call=call)
            elif own and error is not None:
                notify(self.pm, "on_giveup", call=call, error=error)

    def _to_session(self, item: Any) -> None:
        """A message of the relay's own for the session (dropped once the session closed its end)."""
        if self._reader is not None:
            self._reader.put(item)

    def _read_from(self, link: _Link | None) -> None:
        """From now on the session's reader takes ``link``'s messages (``None``: no link's)."""
        self._reading = link
        if self._reader is not None:
            self._reader.wake()

    def abandon(self, request_id: Any, reason: str) -> None:
        """The session's caller gave the request up (mcp 1.x says so to nobody): it is never sent again,
        and a server that has it is told (``notifications/cancelled``), as mcp 2.x does itself."""
        pending = self._pending.pop(request_id, None)
        link = pending.link if pending is not None else None
        if link is None or link.gone or self._tg is None:
            return
        note = messages.notification("notifications/cancelled", {"requestId": request_id, "reason": reason})
        self._tg.start_soon(self._send_raw, link, note)

    def _answer_error(self, pending: _Pending, message: str, data: Any = None) -> None:
        self._pending.pop(pending.request_id, None)
        self._to_session(messages.error_answer(pending.request_id, messages.UNCERTAIN_CODE, message, data))

    # ------------------------------------------------------------------ the session's side
    async def _up(self, from_session: MemoryObjectReceiveStream[Any]) -> None:
        """Every message the session writes: remembered as needed, sent on the live link or held."""
        try:
            async with from_session:
                async for item in from_session:
                    await self._from_session(item, None)
        finally:
            self._closing = True
            self._wanted.set()
            link = self._link
            if link is not None:
                link.trouble.set()

    async def _from_session(self, item: Any, scope: Any) -> None:
        """One message the session wrote (``scope``: the tracer's, in the writer's task). A request's way
        is kept short (the relay's cost is paid on every call): what is rare is in the helpers."""
        found = messages.fields(messages.inner(item))
        method = found.get("method")
        request_id = found.get("id")
        if method is None or request_id is None:
            await self._note_from_session(item, method, found.get("params") or {})
            return
        if (self._dead_for_good is not None or self._breaker is not None) and self._refused_now(request_id):
            return
        params = found.get("params") or {}
        if method in _SETTING_UP or "_meta" in params:
            self._note(item, method, params)
        pending = _Pending(item, request_id, method, scope)
        if method in _FLOW_METHODS:
            state = params.get("requestState")
            pending.flow = 0 if state is None else self._flows.pop(state, None)
        self._pending[request_id] = pending
        if method == "tools/call" and self._tools is None and not self._learning:
            self._learn_tools_soon()
        try:
            link = self._sending(pending)  # (not through _send: a frame less on every request)
            if link is not None and not await self._send_raw(link, item):
                self._lost_on(link, request_id, Loss.REJECTED, "the transport refused the message")
        except BaseException:
            if pending.link is not None and self._pending.get(request_id) is pending:
                del self._pending[request_id]  # the writer was cancelled while handing it on: not waited for
            raise

    def _note(self, item: Any, method: str, params: Any) -> None:
        """Remember what a request of the session's sets up (the handshake, the logging level, a
        subscription, the session-less protocol's per-request ``_meta``)."""
        if method == "initialize":
            self._handshake = [item]
        elif method == "logging/setLevel":
            self._level = item
        elif method == "resources/subscribe":
            uri = params.get("uri")
            if isinstance(uri, str):
                self._subscriptions[uri] = item
        elif method == "resources/unsubscribe":
            uri = params.get("uri")
            if isinstance(uri, str):
                self._subscriptions.pop(uri, None)
        meta = params.get("_meta")
        if isinstance(meta, dict) and meta.get(_PROTOCOL_META, self._meta_version) != self._meta_version:
            # copied once per version, not per request (the session sends the same each time)
            self._request_meta = {k: v for k, v in meta.items() if k.startswith(_META_PREFIX)}

    def _refused_now(self, request_id: Any) -> bool:
        """A server given up for good, or behind an open breaker: the request is answered at once (it never
        ran). Whether it was."""
        if self._dead_for_good is not None:
            why, reason = self._dead_for_good, "crash-loop"
        else:
            breaker = self._breaker
            if breaker is None or breaker.admit():
                return False
            why, reason = breaker.describe(self.server), "circuit-open"
        self._to_session(
            messages.error_answer(request_id, messages.UNCERTAIN_CODE, why, messages.outcome(False, reason))
        )
        return True

    async def _note_from_session(self, item: Any, method: str | None, params: Any) -> None:
        """A notification (or an answer to the server) of the session's: sent on the live link, or held."""
        if method == "notifications/initialized":
            self._handshake = [*self._handshake[:1], item]
        elif method == "notifications/cancelled":
            cancelled = params.get("requestId")
            self._pending.pop(cancelled, None)
        link = self._link
        if link is not None and not link.gone:
            await self._send_raw(link, item)
        elif method is not None and len(self._later) < 100:
            self._later.append(item)  # sent once the session is rebuilt; answers to a lost server are dropped

    async def _send(self, pending: _Pending) -> None:
        """Send a request of the session's on the live link, or hold it for the rebuild."""
        link = self._sending(pending)
        if link is not None and not await self._send_raw(link, pending.message):
            self._lost_on(link, pending.request_id, Loss.REJECTED, "the transport refused the message")

    def _sending(self, pending: _Pending) -> _Link | None:
        """The live link ``pending`` goes out on, marked so; ``None``: none is up, it waits for the rebuild."""
        link = self._link
        if link is None or link.gone:
            pending.link = None
            self._wanted.set()
            return None
        pending.link = link
        pending.lost = None
        pending.refusal = None
        if pending.scope is not None:
            telemetry.note(pending.scope, self.server, self.session_id())
        return link

    async def _send_raw(self, link: _Link, item: Any) -> bool:
        write = link.write
        try:
            if link.put is not None:  # a transport's writer already waiting takes it at once
                try:
                    link.put(item)
                    return True
                except anyio.WouldBlock:
                    pass
            if not self._watched:
                await write.send(item)
                return True
            # mcp 2.x's streams carry the sender's context to the transport, which runs the request in
            # it: the link must be in it, for the HTTP watcher. Only there: a context changed per message
            # cost the other transports about 4 us a call (every context variable read after it misses)
            token = current_link.set(link)
            try:
                await write.send(item)
            finally:
                current_link.reset(token)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            link.died = True
            link.give_up(f"the transport is closed ({type(exc).__name__})")
            return False
        return True

    # ------------------------------------------------------------------ the transport's side
    def _from_link(self, link: _Link, item: Any) -> Any:
        """One message of ``link``'s transport, taken by the session's reader (in its own task): answers
        matched, losses noticed. What the session is to see, or ``None`` (the relay keeps it)."""
        if not link.answered:
            link.answered = True
            if link.generation:
                self._confirmed(link)
        if isinstance(item, BaseException):
            return item
        message = messages.inner(item)
        found = messages.fields(message)
        request_id = found.get("id")
        if isinstance(request_id, str) and request_id.startswith(_OWN):
            waiter = link.waiters.get(request_id)
            if waiter is not None:
                waiter[1] = message
                waiter[0].set()
            return None
        if request_id is None and found.get("method") == _ACKNOWLEDGED:
            self._listening_again(message)  # (what it tells the session comes after the acknowledgement)
            return item
        pending = self._pending.get(request_id) if request_id is not None else None
        if pending is not None and found.get("method") is None:
            error = found.get("error")
            if error is not None and (self._is_loss(link, pending, error) or self._restart_flow(pending, error)):
                return None
            result = found.get("result")
            if pending.flow is not None and isinstance(result, dict) and "requestState" in result:
                self._flow_goes_on(pending, result)
            self._pending.pop(request_id, None)
            link.served = True
            if link.gone or link.watched:  # someone waits for this link to settle
                link.changed()
            if pending.method == "tools/list":
                params = getattr(messages.inner(pending.message), "params", None) or {}
                self._learn_tools(result, first_page=not params.get("cursor"))
            if pending.resends:
                self._tell("on_recovered", pending)
        return item

    def _link_ended(self, link: _Link) -> None:
        """``link``'s transport closed its stream (the session's reader saw it end)."""
        if self._reading is link:
            self._reading = None
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
        pending.refusal = redact.text(f"{error.code}: {error.message}")[:200]
        return True

    def _listening_again(self, ack: Any) -> None:
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
        reopened = self.listens_reopened
        if listen_id not in reopened and len(reopened) >= _FLOWS_LIMIT:
            reopened.pop(next(iter(reopened)))
        reopened[listen_id] = reopened.get(listen_id, 0) + 1
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
            self._to_session(notification)
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
        if not self._replay_safe(self._call(pending, pending.resends + 1), exc):
            log.info("mcp_hooks: %s: a flow's requestState expired; not started again (not known safe)", self.server)
            return False
        log.info("mcp_hooks: %s: a flow's requestState expired (the server restarted); started again", self.server)
        pending.flow += 1
        pending.message = messages.first_round(pending.message)
        self._tg.start_soon(self._send, pending)
        return True

    def _flow_goes_on(self, pending: _Pending, result: dict[str, Any]) -> None:
        """Remember the ``requestState`` of an ``input_required`` answer: the session's next round carries it."""
        state = result.get("requestState")
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
            self._tell("on_tool_error", pending, error=evidence or self._lost(loss, cause, pending.method))
        link.give_up(cause, evidence)
        link.changed()

    def _suspect(self, link: _Link) -> None:
        """The standing GET stream ended: ask the server with a ping whether the session is still there."""
        if self._closing or link.gone or self._tg is None or not self._handshake:
            return
        self._tg.start_soon(self._probe, link)

    async def _probe(self, link: _Link) -> None:
        answer = await self._ask(link, self._own_request(link, "ping"), within=RESTORE_TIMEOUT)
        if link.gone or self._closing:
            return
        error = getattr(answer, "error", None) if answer is not None else None
        if answer is None:
            link.give_up("the standing stream ended and a ping went unanswered")
        elif error is not None:
            exc = messages.sdk_error(error)
            if decide(self.pm, "should_reconnect", call=self._call(None), error=exc) is True:
                link.give_up(f"the standing stream ended; ping: {error.code}: {error.message}"[:200], exc)

    def _poke(self, link: _Link) -> None:
        """The session's reader waits on ``link`` while the relay has a message for the session: a ping of the
        relay's own on it, whose answer ends that wait (the reader then takes the relay's message first).
        One at a time per link; a link given up ends the wait by closing."""
        if link.poked or link.gone or self._closing or self._tg is None:
            return
        link.poked = True
        self._tg.start_soon(self._ping, link)

    async def _ping(self, link: _Link) -> None:
        try:
            await self._ask(link, self._own_request(link, "ping"), within=RESTORE_TIMEOUT)
        finally:
            link.poked = False

    def _own_id(self, link: _Link) -> str:
        return f"{_OWN}{link.generation}:{next(self._ids)}"

    @property
    def _meta_version(self) -> Any:
        return self._request_meta.get(_PROTOCOL_META)

    def _own_request(self, link: _Link, method: str, params: dict[str, Any] | None = None) -> Any:
        """A request of the relay's own, carrying what the session's requests carry each time under the
        session-less protocol (their ``io.modelcontextprotocol/`` ``_meta``: version, client, capabilities; and
        the routing headers that must match the body: ``Mcp-Protocol-Version``, ``Mcp-Method``)."""
        if not self._request_meta:
            return messages.request(self._own_id(link), method, params)
        params = {**(params or {}), "_meta": dict(self._request_meta)}
        version = self._meta_version
        headers = {"mcp-protocol-version": version, "mcp-method": method} if isinstance(version, str) else None
        return messages.request(self._own_id(link), method, params, headers)

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

    def _learn_tools_soon(self) -> None:
        """The session calls a tool before it listed any (an mcp 2.x ``Client`` lists none first): learn the
        tools' annotations now, beside the call, so a request lost in flight can be judged by them. Once."""
        link = self._link
        if link is None or link.gone or self._tg is None:
            return
        self._learning = True
        self._tg.start_soon(self._list_tools, link)

    async def _list_tools(self, link: _Link) -> bool:
        """Every page of the tools on ``link`` (bounded), learned; whether all of them were read."""
        cursor: Any = None
        for page in range(MAX_TOOL_PAGES):
            params = {"cursor": cursor} if cursor else None
            answer = await self._ask(link, self._own_request(link, "tools/list", params), within=RESTORE_TIMEOUT)
            result = getattr(answer, "result", None) if answer is not None else None
            if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                return False
            self._learn_tools(result, first_page=page == 0)
            cursor = result.get("nextCursor")
            if not cursor:
                return True
        return False  # too many pages to tell

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

    def _confirmed(self, link: _Link) -> None:
        """The server answered on a rebuilt link: the outage is over."""
        self.rebuilds += 1
        since, self._outage_since = self._outage_since, None
        self._unreachable_since = None
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
