"""``connect()``: an MCP session that survives whatever happens to the session underneath.

One **owner task** holds the transport and the SDK session (anyio context managers must be exited by
the task that entered them); calls from any task go through it. A rebuild tears the old transport and
session down and opens new ones with a fresh ``initialize`` and no stale session id.

The HTTP layer is watched: every request goes through :class:`_WatchingTransport`, which sees

- a 404 or 410 to a request that carried ``Mcp-Session-Id`` (or a 400 whose body names the session):
  the server forgot the session; errors of calls on that link are marked :data:`Loss.REJECTED`
  whatever their wording, and the link is rebuilt in the background at once;
- a response stream that breaks (the server died mid-answer) or a standing GET stream that ends: the
  link is rebuilt in the background; calls still waiting on it are given a moment to receive their
  answers and are then settled as lost in flight, instead of hanging (mcp 1.x never fails them).

Recovery of each call is the engine's (:mod:`mcp_hooks.engine`): hooks decide, one rebuild is shared
by every failing call, a call is replayed only when safe, or raises :class:`~mcp_hooks.OutcomeUncertain`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import importlib
import importlib.metadata
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pluggy

from . import redact, telemetry
from .calls import CallTimeout, ToolCall
from .classify import Loss, SessionLostMark, classify, flow_expired, mark_session_lost
from .engine import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_RECONNECTS,
    CircuitOpen,
    CredentialsRefused,
    RebuildTimeout,
    RecoveryPolicy,
    _Flight,
    _LeaderCancelled,
    add_note,
    gate_for,
    recover_async,
)
from .healing.relay import FLOW_RESTARTS
from .healing.sdk_patch import bypass
from .healing.watch import EventSeen, event_stream, read_400, send_refusable, session_gone
from .manager import decide, notify
from .subscriptions import HealedSubscription
from .subscriptions import listen as _listen

__all__ = ["ResilientSession", "connect", "MCP_MAJOR"]

log = logging.getLogger("mcp_hooks.connect")

MCP_MAJOR = int(importlib.metadata.version("mcp").split(".", 1)[0])
_httpx: Any = importlib.import_module("httpx2" if MCP_MAJOR >= 2 else "httpx")

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


def _uncancel(task: asyncio.Task[Any]) -> None:
    """Take back one cancellation of ``task`` that was turned into an error (Python 3.11+; a no-op before)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


#: The key under which ``call_tool(call_timeout=...)`` travels to ``_attempt`` (never passed to the SDK).
_CALL_TIMEOUT = "__mcp_hooks_call_timeout__"


def _check_call_timeout(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{where}: option 'call_timeout' must be a positive number of seconds, got {value!r}")


class _Silence:
    """Cancels a call's task once the call has been silent (no answer, no progress notification for it)
    for ``limit`` seconds; every progress notification starts the count again."""

    def __init__(self, task: asyncio.Task[Any], limit: float) -> None:
        self.task = task
        self.limit = limit
        self.fired = False
        self.session: Any = None  # the SDK session the call is sent on, told when the call is given up
        self.callback: Any = None  # the progress callback handed to the SDK for this call
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(limit, self._fire)

    def _fire(self) -> None:
        self.fired = True
        if self.session is not None:
            _cancel_request(self.session, self.callback, f"no answer and no progress for {self.limit:g} s")
        self.task.cancel()

    def heard(self) -> None:
        if not self.fired:
            self._timer.cancel()
            self._timer = self._loop.call_later(self.limit, self._fire)

    def stop(self) -> None:
        self._timer.cancel()

    def listening(self, user: Callable[..., Awaitable[None]] | None) -> Callable[..., Awaitable[None]]:
        """A progress callback for the SDK that restarts the count, then calls the user's own."""

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            self.heard()
            if user is not None:
                await user(progress, total, message)

        self.callback = on_progress
        return on_progress


#: Courtesy ``notifications/cancelled`` being sent (kept so they are not collected half-way).
_cancelling: set[asyncio.Task[Any]] = set()


def _cancel_request(session: Any, callback: Any, reason: str) -> None:
    """Tell the server that a call given up for silence is no longer awaited, so it can stop the tool.

    mcp 2.x sends ``notifications/cancelled`` itself for a request its caller abandons; mcp 1.x sends
    nothing. Its request id is found by the call's progress callback (mcp 1.x keys them by the request
    id, which is also the progress token), read before the cancellation removes it."""
    if MCP_MAJOR >= 2:
        return
    callbacks = getattr(session, "_progress_callbacks", None)
    if not isinstance(callbacks, dict):
        return
    request_id = next((rid for rid, cb in callbacks.items() if cb is callback), None)
    if request_id is None:
        return
    types: Any = importlib.import_module("mcp.types")  # the mcp 1.x names (2.x returned above)
    note = types.ClientNotification(
        types.CancelledNotification(params=types.CancelledNotificationParams(requestId=request_id, reason=reason))
    )

    async def send() -> None:
        try:
            await asyncio.wait_for(session.send_notification(note), 2.0)
        except Exception:  # a courtesy: the call has its answer (CallTimeout) whatever happens here
            log.debug("mcp_hooks: could not send notifications/cancelled", exc_info=True)

    task = asyncio.ensure_future(send())
    _cancelling.add(task)
    task.add_done_callback(_cancelling.discard)


def _redact(url: str) -> str:
    """The URL without credentials or query (never log secrets)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Link:
    """One generation: a transport, its SDK session, and what the watcher saw of it."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.api: Any = None
        self.sdk_session: Any = None  # the SDK's ClientSession (under mcp 2.x, inside api)
        self.session_id: str | None = None
        self.stop = asyncio.Event()
        self.usable = False
        self.trouble: SessionLostMark | None = None  # why it is being given up
        self.rejected_status: int | None = None
        self.lost_in_flight = False
        self.callers: set[asyncio.Task[Any]] = set()
        self.cut: set[asyncio.Task[Any]] = set()
        self.death: BaseException | None = None
        self.drained = asyncio.Event()
        self.annotations: dict[str, Any] | None = None
        self.opening: asyncio.Task[Any] | None = None  # the owner task, while it opens this link
        self.aborted: str | None = None  # why its opening was cut short
        self.refused_credentials: int | None = None  # 401/403 to this link's handshake

    def abort_opening(self, why: str) -> None:
        """Cut short an opening that can no longer succeed (its handshake was lost, or it took too long)."""
        if self.opening is not None and self.aborted is None:
            self.aborted = why
            self.opening.cancel()

    def leave(self, task: asyncio.Task[Any]) -> None:
        self.callers.discard(task)
        if not self.callers:
            self.drained.set()


class _WatchedStream(_httpx.AsyncByteStream):  # type: ignore[misc]
    """A response body that tells the session when it breaks (or, for the GET stream, ends)."""

    def __init__(self, inner: Any, owner: ResilientSession, link: _Link, request: Any, events: bool) -> None:
        self._inner = inner
        self._owner = owner
        self._link = link
        self._request = request
        self._standing = request.method == "GET"
        self._events = EventSeen() if events and not self._standing else None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        events = self._events
        try:
            async for chunk in self._inner:
                if events is not None:
                    events.feed(chunk)
                yield chunk
        except Exception as exc:
            self._owner._stream_broke(self._link, exc, self._standing)
            raise
        if self._standing:
            self._owner._standing_stream_ended(self._link)
        elif events is not None:
            lost = events.lost_answer(self._request)
            if lost is not None:  # e.g. the handshake's answer, from a server shutting down gracefully
                self._owner._stream_broke(self._link, lost, standing=False)

    async def aclose(self) -> None:
        await self._inner.aclose()


class _WatchingTransport(_httpx.AsyncBaseTransport):  # type: ignore[misc]
    """Wraps the real HTTP transport of one link and reports what it sees about the session."""

    def __init__(self, inner: Any, owner: ResilientSession, link: _Link) -> None:
        self._inner = inner
        self._owner = owner
        self._link = link

    async def handle_async_request(self, request: Any) -> Any:
        link = self._link
        sent_session = request.headers.get("mcp-session-id")
        if request.method == "DELETE" and link.trouble is not None:
            # The session is already gone: closing it would only earn a 404 and a warning.
            return _httpx.Response(204, request=request)
        try:
            owner = self._owner
            response = await send_refusable(
                self._inner.handle_async_request,
                request,
                owner.server,
                owner._tool_policy.manager(),
                deadline=owner._deadline,
            )
        except Exception as exc:
            self._owner._request_failed(link, request, exc, sent_session is not None)
            raise
        status = response.status_code
        if sent_session is None:
            issued = response.headers.get("mcp-session-id")
            if issued:
                link.session_id = issued
            if status in (401, 403) and request.method == "POST":
                link.refused_credentials = status  # a new session's handshake: the credentials are refused
        elif status in (404, 410, 401) or status == 400:
            if status == 401:  # taken as the session dropped (a gateway's GC): the SDK is shown a 404
                gone = await session_gone(response, request, owner.server, owner._tool_policy.manager())
                if gone is None:  # a plugin said it is not: the SDK and its auth see the 401
                    return response
                response = gone
            if status == 400:
                response, named = await read_400(response, request)
            else:
                named = True
            if named:
                self._owner._session_rejected(link, status, request.method)
            return response
        if status < 300 and request.method in ("GET", "POST"):
            response.stream = _WatchedStream(response.stream, self._owner, link, request, event_stream(response))
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


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


class ResilientSession:
    """The object ``connect()`` yields: the ``ClientSession`` call surface, with recovery."""

    def __init__(
        self,
        target: Any,
        options: _Options,
        *,
        max_reconnects: int,
        deadline: float,
        replay_safe_tools: Iterable[str],
        plugin_manager: pluggy.PluginManager | None,
    ) -> None:
        self._target = target
        self._options = options
        self._is_http = isinstance(target, str)
        if self._is_http:
            self.server = _redact(target)
        else:
            command = getattr(target, "command", "stdio")
            args = " ".join(str(a) for a in getattr(target, "args", []) or [])
            self.server = f"stdio:{command} {args}".strip()
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
        self._ping_unsupported = False
        self._deadline = deadline
        pm = plugin_manager
        common = {
            "server": self.server,
            "framework": "mcp",
            "max_reconnects": max_reconnects,
            "deadline": deadline,
            "replay_safe_tools": frozenset(replay_safe_tools),
            "reconnect": self._reconnect_for_engine,
            "plugin_manager": pm,
        }
        self._tool_policy = RecoveryPolicy(annotate=self._annotations_for, **common)  # type: ignore[arg-type]
        self._read_policy = RecoveryPolicy(always_replay_safe=True, **common)  # type: ignore[arg-type]
        self._pm = pm
        # The engine's single-flight gate of this session: the rebuilds the connection leads itself hold it
        # too, so a call failing meanwhile waits for them instead of leading (and announcing) its own.
        self._gate = gate_for(self, self.server)

    # --- what callers see ------------------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        """The current ``Mcp-Session-Id`` (``None`` for stdio and session-less protocols)."""
        link = self._link
        return link.session_id if link is not None else None

    @property
    def session(self) -> Any:
        """The current SDK object (``mcp.ClientSession`` under 1.x, ``mcp.Client`` under 2.x). It is
        replaced on every rebuild: do not keep it."""
        link = self._link
        return link.api if link is not None else None

    @property
    def protocol_version(self) -> str | None:
        api = self.session
        version = getattr(api, "protocol_version", None)
        return version if isinstance(version, str) else None

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        call_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """``ClientSession.call_tool``, recovered: replayed after session loss when safe.

        :param call_timeout: this call's silence limit, in place of ``connect(call_timeout=...)``.
        """
        if call_timeout is not None:
            _check_call_timeout("call_tool", call_timeout)
            kwargs[_CALL_TIMEOUT] = call_timeout
        return await self._invoke("call_tool", (name, dict(arguments) if arguments is not None else None), kwargs, name)

    async def list_tools(self, *args: Any, **kwargs: Any) -> Any:
        return await self._invoke("list_tools", args, kwargs)

    async def list_resources(self, *args: Any, **kwargs: Any) -> Any:
        return await self._invoke("list_resources", args, kwargs)

    async def list_resource_templates(self, *args: Any, **kwargs: Any) -> Any:
        return await self._invoke("list_resource_templates", args, kwargs)

    async def read_resource(self, uri: Any, **kwargs: Any) -> Any:
        return await self._invoke("read_resource", (uri,), kwargs)

    async def list_prompts(self, *args: Any, **kwargs: Any) -> Any:
        return await self._invoke("list_prompts", args, kwargs)

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None = None, **kwargs: Any) -> Any:
        return await self._invoke("get_prompt", (name, dict(arguments) if arguments is not None else None), kwargs)

    async def complete(self, *args: Any, **kwargs: Any) -> Any:
        return await self._invoke("complete", args, kwargs)

    async def send_ping(self, **kwargs: Any) -> Any:
        return await self._invoke("send_ping", (), kwargs)

    async def set_logging_level(self, level: Any, **kwargs: Any) -> Any:
        return await self._invoke("set_logging_level", (level,), kwargs)

    async def subscribe_resource(self, uri: Any, **kwargs: Any) -> Any:
        return await self._invoke("subscribe_resource", (uri,), kwargs)

    async def unsubscribe_resource(self, uri: Any, **kwargs: Any) -> Any:
        return await self._invoke("unsubscribe_resource", (uri,), kwargs)

    def listen(
        self,
        *,
        tools_list_changed: bool = False,
        prompts_list_changed: bool = False,
        resources_list_changed: bool = False,
        resource_subscriptions: Iterable[str] = (),
    ) -> contextlib.AbstractAsyncContextManager[HealedSubscription]:
        """mcp 2.x ``Client.listen`` (the 2026-07-28 ``subscriptions/listen``), opened again when the stream is
        lost: ``async with session.listen(tools_list_changed=True) as sub: async for event in sub: ...``.
        After a loss the events that may have been missed are given as one event per kind honoured, so a
        consumer that refetches on events refetches them (see :mod:`mcp_hooks.subscriptions`)."""
        if isinstance(resource_subscriptions, str):
            raise TypeError("listen: option 'resource_subscriptions' takes a sequence of URIs, not a string")
        if MCP_MAJOR < 2:
            raise RuntimeError(
                "listen() is the 2026-07-28 protocol's subscriptions/listen (mcp 2.x); under mcp 1.x use "
                "subscribe_resource() and the session's message_handler"
            )
        filters = {
            "tools_list_changed": tools_list_changed,
            "prompts_list_changed": prompts_list_changed,
            "resources_list_changed": resources_list_changed,
            "resource_subscriptions": tuple(resource_subscriptions),
        }
        return _listen(self, filters)

    # --- one call ----------------------------------------------------------------------------------------

    async def _invoke(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], tool: str | None = None) -> Any:
        with telemetry.one_call():
            started = time.monotonic()
            try:
                return await self._attempt(method, args, kwargs)
            except Exception as exc:
                error = exc
            # The call's deadline, for the rebuilds it leads or waits for; reset after, so it never outlives
            # the call in the caller's context (a later call there would inherit a deadline long past).
            token = _call_deadline.set(started + self._deadline)
            try:
                return await self._recover(method, args, kwargs, tool, error, started)
            finally:
                _call_deadline.reset(token)
                _failed_generation.set(0)

    async def _recover(
        self,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        tool: str | None,
        error: Exception,
        started: float,
    ) -> Any:
        link = self._link
        call = ToolCall(
            server=self.server,
            tool=tool,
            arguments=args[1] if tool is not None and len(args) > 1 else None,
            annotations=(link.annotations or {}).get(tool) if (link is not None and tool is not None) else None,
            owner=self,
            framework="mcp",
        )
        policy = self._tool_policy if tool is not None else self._read_policy
        return await recover_async(policy, lambda: self._attempt(method, args, kwargs), call, error, started)

    async def _attempt(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        link = self._link
        if link is None or not link.usable:
            link = await self._usable_link()
        task = asyncio.current_task()
        assert task is not None
        silence: _Silence | None = None
        if method == "call_tool" and (self._options.call_timeout is not None or _CALL_TIMEOUT in kwargs):
            kwargs = dict(kwargs)  # the caller's stays as it is, for a replay
            limit = kwargs.pop(_CALL_TIMEOUT, None) or self._options.call_timeout
            if limit is not None:
                silence = _Silence(task, limit)
                kwargs["progress_callback"] = silence.listening(kwargs.get("progress_callback"))
                silence.session = link.api
        link.callers.add(task)
        link.drained.clear()
        telemetry.note(telemetry.scope(), self.server, link.session_id)
        try:
            if method == "call_tool":
                return await self._call_tool_flow(link, args, kwargs)
            return await getattr(link.api, method)(*args, **kwargs)
        except asyncio.CancelledError:
            if silence is not None and silence.fired and task not in link.cut:
                _uncancel(task)
                raise self._silent(link, args[0], silence.limit) from None
            if task not in link.cut:
                raise
            link.cut.discard(task)
            _uncancel(task)
            _failed_generation.set(link.generation)
            raise self._lost_in_flight(link, method) from None
        except Exception as exc:
            _failed_generation.set(link.generation)
            self._mark(link, exc)
            raise
        finally:
            if silence is not None:
                silence.stop()
            link.leave(task)

    async def _call_tool_flow(self, link: _Link, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """``call_tool``; a multi-round-trip flow (2026-07-28) whose ``requestState`` the server no longer
        accepts (it restarted, or another replica answered, between the rounds) is started again from its
        first round, when the tool is safe to repeat: the rejected round never ran."""
        for restart in range(FLOW_RESTARTS + 1):
            try:
                return await link.api.call_tool(*args, **kwargs)
            except Exception as exc:
                if restart == FLOW_RESTARTS or not flow_expired(exc) or kwargs.get("request_state") is not None:
                    raise
                if not self._replay_safe(link, args[0], exc):
                    log.info(
                        "%s: tool %r: its requestState expired; not started again (not known safe to repeat)",
                        self.server,
                        args[0],
                    )
                    raise
                log.info(
                    "%s: tool %r: its requestState expired (the server restarted between rounds); "
                    "starting the flow again",
                    self.server,
                    args[0],
                )
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    def _replay_safe(self, link: _Link, tool: str, error: BaseException) -> bool:
        """What the ``is_replay_safe`` hook (and ``replay_safe_tools``) say of sending ``tool`` again."""
        if tool in self._tool_policy.replay_safe_tools:
            return True
        call = ToolCall(
            server=self.server,
            tool=tool,
            annotations=(link.annotations or {}).get(tool),
            owner=self,
            framework="mcp",
        )
        return decide(self._tool_policy.manager(), "is_replay_safe", call=call, error=error) is True

    def _silent(self, link: _Link, tool: str, limit: float) -> CallTimeout:
        """The error of a call given up for silence: uncertain unless replaying it would be safe."""
        safe = self._replay_safe(link, tool, TimeoutError("silent"))
        return CallTimeout(self.server, tool, limit, outcome_uncertain=not safe)

    def _mark(self, link: _Link, error: Exception) -> None:
        """Attach what the HTTP layer saw, so classification does not depend on wording."""
        if link.rejected_status is None:
            return
        verdict = classify(error)
        if verdict.loss is Loss.IN_FLIGHT or verdict.loss is Loss.INTERRUPTED:
            return
        code = getattr(getattr(error, "error", None), "code", None)
        if not isinstance(code, int) or code in (-32601, -32602):
            return  # not an SDK error, or the server's own verdict on the request
        mark_session_lost(
            error,
            SessionLostMark(
                Loss.REJECTED,
                status=link.rejected_status,
                detail=f"HTTP {link.rejected_status} to a request that carried Mcp-Session-Id",
            ),
        )

    def _lost_in_flight(self, link: _Link, method: str) -> Exception:
        death = link.death
        if not link.lost_in_flight and death is not None and classify(death).loss is Loss.REJECTED:
            loss, detail = Loss.REJECTED, "the connection failed before the request was sent"
        else:
            loss, detail = Loss.IN_FLIGHT, "the connection to the server died with the request outstanding"
        error = ConnectionError(f"MCP {method} to {self.server}: {detail}")
        if death is not None:
            error.__cause__ = death
        mark_session_lost(error, SessionLostMark(loss, method=method, detail=detail))
        return error

    async def _usable_link(self) -> _Link:
        deadline_at = _call_deadline.get() or (time.monotonic() + self._deadline)
        while True:
            link = self._link
            if link is not None and link.usable:
                return link
            if self._closing:
                raise RuntimeError(f"the MCP session to {self.server} is closed")
            self._check_breaker()
            if link is None:
                await self._heal(0, deadline_at)
            else:
                # A link given up before any call failed on it: the rebuild is the connection's own.
                await self._lead_rebuild(link.generation, deadline_at)

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

    # --- what the watcher reports (called from the owner task's transport) ---------------------------------

    def _session_rejected(self, link: _Link, status: int, method: str) -> None:
        if link.rejected_status is None:
            link.rejected_status = status
            log.debug("mcp_hooks: %s answered HTTP %d to a %s with our session id", self.server, status, method)
        self._give_up_link(link, SessionLostMark(Loss.REJECTED, status=status, detail=f"HTTP {status}"))

    def _stream_broke(self, link: _Link, error: Exception, standing: bool) -> None:
        if not standing:
            link.lost_in_flight = True
        self._give_up_link(link, SessionLostMark(Loss.IN_FLIGHT, detail=f"response stream broke: {error!r}"))

    def _standing_stream_ended(self, link: _Link) -> None:
        if link.usable and not self._closing:
            self._give_up_link(link, SessionLostMark(Loss.IN_FLIGHT, detail="the server closed the GET stream"))

    def _request_failed(self, link: _Link, request: Any, error: Exception, with_session: bool) -> None:
        if not with_session:
            return
        loss = classify(error).loss
        if loss is Loss.IN_FLIGHT and request.method == "POST":
            link.lost_in_flight = True
        self._give_up_link(link, SessionLostMark(loss, detail=type(error).__name__))

    # --- the owner task ------------------------------------------------------------------------------------

    async def _owner(self) -> None:
        telemetry.current.set(telemetry.INTERNAL)  # this task's own requests are no caller's
        while not self._closing:
            await self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                break
            build = self._build
            previous = self._link
            link = _Link(self._generation + 1)
            published = False
            try:
                async with contextlib.AsyncExitStack() as stack:
                    await self._open_bounded(stack, link)
                    if previous is not None:
                        _inherit_validators(previous.sdk_session, link.sdk_session)
                    self._generation = link.generation
                    if self._link is not None:
                        self.reconnects += 1
                    self._link = link
                    link.usable = True
                    published = True
                    if self._unreachable_since is not None:
                        log.info("mcp_hooks: %s answers again", self.server)
                        self._unreachable_since = None
                    if build is not None and not build.done():
                        build.set_result(None)
                    if self._build is build:
                        self._build = None
                    await link.stop.wait()
                    link.usable = False
                    if link.callers:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(link.drained.wait(), DRAIN_GRACE)
                    self._cut_callers(link)
            except Exception as exc:
                link.death = exc
                if not published and link.refused_credentials is not None:
                    exc = CredentialsRefused(
                        f"MCP server {self.server} refused the credentials (HTTP {link.refused_credentials}) "
                        "when a new session was opened"
                    )
                if not published:
                    log.info("mcp_hooks: could not open a session to %s: %s", self.server, _describe(exc))
                    if self._unreachable_since is None and self._link is not None:
                        self._unreachable_since = (time.monotonic(), time.time())
                    if build is not None and not build.done():
                        build.set_result(_unwrap(exc))
                    if self._build is build:
                        self._build = None
                else:
                    log.debug("mcp_hooks: the connection to %s died: %s", self.server, _describe(exc))
            finally:
                link.usable = False
                self._cut_callers(link)
            if published and not self._closing and link.trouble is None and self._options.heal:
                # The transport died by itself: heal now rather than at the next call.
                self._give_up_link(link, SessionLostMark(Loss.IN_FLIGHT, detail="the transport died"))

    def _cut_callers(self, link: _Link) -> None:
        for task in list(link.callers):
            if task not in link.cut and not task.done():
                link.cut.add(task)
                task.cancel()

    async def _open_bounded(self, stack: contextlib.AsyncExitStack, link: _Link) -> None:
        """``_open``, cut short (as a ``ConnectionError``) when the watcher gives the link up before it is
        open, or after ``deadline`` seconds: a build never hangs, not even a background one."""
        task = asyncio.current_task()
        assert task is not None
        link.opening = task
        timer = asyncio.get_running_loop().call_later(
            self._deadline, link.abort_opening, f"opening took longer than {self._deadline:g} s"
        )
        try:
            await self._open(stack, link)
            await self._list_tools_first(link)
            if link.aborted is not None:  # cancelled as it returned: the cancellation lands here (or was
                await asyncio.sleep(0)  # swallowed on the way: the outcome is the same)
                raise asyncio.CancelledError
        except asyncio.CancelledError:
            if link.aborted is None or self._closing:
                raise
            _uncancel(task)
            raise ConnectionError(f"MCP session to {self.server}: {link.aborted}") from None
        finally:
            timer.cancel()
            link.opening = None

    async def _list_tools_first(self, link: _Link) -> None:
        """List the tools of a session just opened, before any call uses it.

        The SDK lists them itself before a session's first ``call_tool`` (to validate results), once per
        call until one listing has answered: after a reconnect, N calls replayed at once would send N
        listings (measured: 1,000 replays under mcp 1.x took 4x as long as 1,000 warm calls). One listing
        here fills the SDK's cache and gives the replay decisions their annotations. A failure leaves
        both to the calls, as without it; a lost session cuts it short like the handshake.
        """
        try:
            link.annotations = await _tool_annotations(link.api.list_tools)
        except Exception as exc:
            log.debug("mcp_hooks: listing the tools of %s after opening failed: %r", self.server, exc)

    async def _open(self, stack: contextlib.AsyncExitStack, link: _Link) -> None:
        opts = self._options
        if self._is_http:
            http = _httpx.AsyncClient(
                headers=dict(opts.headers or {}),
                auth=opts.auth,
                # A request waiting for one of the pool's connections waits behind requests that are
                # answered in turn: bounded like a stream read, not like a connect (under mcp 1.x a
                # PoolTimeout fails the whole transport, and every call in flight with it).
                timeout=_httpx.Timeout(
                    opts.timeout, read=opts.sse_read_timeout, pool=max(opts.timeout, opts.sse_read_timeout)
                ),
                transport=_WatchingTransport(_httpx.AsyncHTTPTransport(), self, link),
            )
            await stack.enter_async_context(http)
            from mcp.client.streamable_http import streamable_http_client

            with bypass():  # connect() heals by its own means: the SDK transport must be its own
                transport = streamable_http_client(self._target, http_client=http)
        else:
            from mcp.client.stdio import stdio_client

            with bypass():
                transport = stdio_client(self._target)
        sdk: Any = importlib.import_module("mcp")
        if MCP_MAJOR >= 2:
            client = sdk.Client(
                transport,
                mode=opts.mode,
                read_timeout_seconds=opts.read_timeout_seconds,
                client_info=opts.client_info,
                cache=None,
                **opts.session_kwargs,
            )
            link.api = await stack.enter_async_context(client)
            link.sdk_session = getattr(client, "session", None)
            return
        streams = await stack.enter_async_context(transport)
        read_stream, write_stream = streams[0], streams[1]
        timeout = timedelta(seconds=opts.read_timeout_seconds) if opts.read_timeout_seconds else None
        session = sdk.ClientSession(
            read_stream,
            write_stream,
            read_timeout_seconds=timeout,
            client_info=opts.client_info,
            **opts.session_kwargs,
        )
        await stack.enter_async_context(session)
        await session.initialize()
        link.api = link.sdk_session = session

    # --- annotations and keepalive -------------------------------------------------------------------------

    async def _annotations_for(self, call: ToolCall) -> Any:
        link = self._link
        if call.tool is None or link is None:
            return None
        if link.annotations is None:
            await self._learn_annotations(link)
        return (link.annotations or {}).get(call.tool)

    async def _learn_annotations(self, link: _Link) -> None:
        """Every tool's annotations, when the listing made at opening failed and a decision needs them."""
        known = await _tool_annotations(lambda *cursor: self._attempt("list_tools", cursor, {}))
        if link.annotations is None:
            link.annotations = known

    async def _keepalive(self, interval: float) -> None:
        telemetry.current.set(telemetry.INTERNAL)  # pings are no caller's
        while not self._closing:
            await asyncio.sleep(interval)
            link = self._link
            if link is None or not link.usable or link.session_id is None:
                # No session (the session-less 2026-07-28 protocol, which also removed ping; a stateless
                # server; stdio): nothing expires while idle, nothing to keep alive.
                continue
            try:
                if self._ping_unsupported:
                    await self.list_tools()
                else:
                    await self.send_ping()
            except Exception as exc:
                code = getattr(getattr(exc, "error", None), "code", None)
                if code == -32601 and not self._ping_unsupported:
                    self._ping_unsupported = True
                    log.info("mcp_hooks: %s does not answer ping; keeping alive with list_tools", self.server)
                else:
                    log.debug("mcp_hooks: keepalive to %s failed: %r", self.server, exc)

    # --- lifetime --------------------------------------------------------------------------------------------

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._owner_task = loop.create_task(self._owner(), name=f"mcp_hooks owner {self.server}")
        build = self._request_build()
        try:
            error = await asyncio.wait_for(asyncio.shield(build), self._deadline)
        except asyncio.TimeoutError:
            await self._close()
            raise TimeoutError(f"could not open an MCP session to {self.server} within {self._deadline:g} s") from None
        except BaseException:
            await self._close()
            raise
        if error is not None:
            await self._close()
            add_note(error, f"mcp-hooks: opening the session to {self.server} failed")
            raise error
        if self._options.keepalive:
            self._keepalive_task = loop.create_task(self._keepalive(self._options.keepalive))

    async def _close(self) -> None:
        self._closing = True
        for task in (self._keepalive_task, self._heal_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 5.0)
        build = self._build
        if build is not None and not build.done():
            build.set_result(RuntimeError(f"the MCP session to {self.server} is closed"))
        link = self._link
        if link is not None:
            link.stop.set()
        self._wanted.set()
        owner = self._owner_task
        if owner is not None and not owner.done():
            done, _ = await asyncio.wait({owner}, timeout=10.0)
            if not done:
                owner.cancel()
                await asyncio.wait({owner}, timeout=5.0)
        if owner is not None and owner.done() and not owner.cancelled():
            exc = owner.exception()
            if exc is not None:
                log.debug("mcp_hooks: owner task of %s ended with %r", self.server, exc)


async def _tool_annotations(list_page: Callable[..., Awaitable[Any]]) -> dict[str, Any]:
    """Every tool's annotations, ``list_page()`` then ``list_page(cursor)`` (at most 20 pages)."""
    known: dict[str, Any] = {}
    cursor: Any = None
    for _ in range(20):
        listed = await (list_page() if cursor is None else list_page(cursor))
        for tool in getattr(listed, "tools", []):
            known[tool.name] = tool.annotations
        cursor = getattr(listed, "nextCursor", None) or getattr(listed, "next_cursor", None)
        if not cursor:
            break
    return known


def _inherit_validators(old: Any, new: Any) -> None:
    """Give a rebuilt session the old one's compiled output-schema validators, for the tools whose listed
    schema is unchanged.

    mcp 2.x compiles a tool's validator on the session's first call of that tool (a meta-schema check,
    ~3 ms here, 60x a validation): without this, the first call of each tool after every reconnect pays
    it again (the healed call measured 1.8x a warm one). A compiled validator holds only its schema, so
    sharing it is safe; the schemas are compared as JSON, as the SDK does before reusing one itself.
    mcp 1.x keeps no compiled validators: nothing to do.
    """
    compiled = getattr(old, "_tool_output_validators", None)
    before = getattr(old, "_tool_output_schemas", None)
    now = getattr(new, "_tool_output_schemas", None)
    into = getattr(new, "_tool_output_validators", None)
    if not (
        isinstance(compiled, dict) and isinstance(before, dict) and isinstance(now, dict) and isinstance(into, dict)
    ):
        return
    for name, validator in list(compiled.items())[:1000]:
        if name in into or name not in now or name not in before:
            continue
        try:
            same = json.dumps(before[name], sort_keys=True) == json.dumps(now[name], sort_keys=True)
        except (TypeError, ValueError):
            continue
        if same:
            into[name] = validator


def _unwrap(error: BaseException) -> BaseException:
    """The one real error inside nested single-member exception groups (the SDK's task groups)."""
    seen = 0
    while seen < 100:
        members = getattr(error, "exceptions", None)
        if not isinstance(members, tuple):
            break
        real = [m for m in members if not isinstance(m, asyncio.CancelledError)]
        if len(real) != 1:
            break
        error = real[0]
        seen += 1
    return error


def _describe(error: BaseException) -> str:
    error = _unwrap(error)
    return redact.text(f"{type(error).__name__}: {error}")


@contextlib.asynccontextmanager
async def connect(
    target: Any,
    *,
    headers: Mapping[str, str] | None = None,
    auth: Any = None,
    timeout: float = 30.0,
    sse_read_timeout: float = 300.0,
    read_timeout_seconds: float | None = None,
    mode: str = "auto",
    max_reconnects: int = DEFAULT_MAX_RECONNECTS,
    deadline: float = DEFAULT_DEADLINE,
    replay_safe_tools: Iterable[str] = (),
    heal: bool = True,
    keepalive: float | None = None,
    breaker_after: float | None = BREAKER_AFTER,
    call_timeout: float | None = None,
    client_info: Any = None,
    plugin_manager: pluggy.PluginManager | None = None,
    **session_kwargs: Any,
) -> AsyncIterator[ResilientSession]:
    """Open an MCP session that survives session loss.

    ``async with mcp_hooks.connect("http://127.0.0.1:8000/mcp") as session:
    await session.call_tool("echo", {"text": "hi"})``

    :param target: a streamable-HTTP URL, or an ``mcp.StdioServerParameters``.
    :param headers: HTTP headers for every request (for example authorization; never logged).
    :param auth: an ``httpx.Auth`` (``httpx2.Auth`` under mcp 2.x), passed to the HTTP client.
    :param timeout: HTTP connect/write timeout; ``sse_read_timeout`` the read timeout of streams, and how
        long a request may wait for one of the HTTP client's 100 pooled connections.
    :param read_timeout_seconds: the SDK's per-request timeout (none by default: a call lost in flight
        is settled by watching the connection, not by cutting slow tools short).
    :param mode: mcp 2.x only: ``"auto"`` (the session-less 2026-07-28 protocol where the server
        speaks it), ``"legacy"`` (always the initialize handshake), or a version.
    :param max_reconnects: rebuilds per call (3); ``deadline``: seconds per call including recovery (30).
    :param replay_safe_tools: tool names always safe to replay.
    :param heal: rebuild in the background as soon as the transport sees the session lost (default on).
    :param breaker_after: with ``heal``, once no session could be opened for this many seconds (15), calls
        fail at once with :class:`~mcp_hooks.CircuitOpen` ("unreachable since ...") instead of waiting
        their deadline, until the background heal reaches the server again; ``None``: never.
    :param call_timeout: seconds a tool call may stay silent (no answer, no progress notification for it)
        before it is given up with :class:`~mcp_hooks.CallTimeout`; every progress notification the server
        sends for the call starts the count again, so a slow tool that reports progress is never cut short.
        The session is kept and nothing is sent again. ``None`` (default): no limit. Per call:
        ``call_tool(..., call_timeout=...)``.
    :param keepalive: seconds between pings while idle (opt-in; below the server's idle timeout);
        falls back to ``list_tools`` when the server answers ping with -32601.
    :param session_kwargs: passed to ``ClientSession`` (1.x) or ``mcp.Client`` (2.x): callbacks etc.
    """
    if not isinstance(target, str):
        if type(target).__name__ != "StdioServerParameters":
            raise TypeError(
                f"connect: target must be a streamable-HTTP URL or mcp.StdioServerParameters, got {target!r}"
            )
    elif not target.startswith(("http://", "https://")):
        raise ValueError(f"connect: target URL must start with http:// or https://, got {_redact(target)!r}")
    if MCP_MAJOR < 2 and mode != "auto":
        raise ValueError("connect: option 'mode' needs mcp 2.x (mcp 1.x always uses the initialize handshake)")
    if keepalive is not None and (isinstance(keepalive, bool) or not keepalive > 0):
        raise ValueError(f"connect: option 'keepalive' must be a positive number of seconds, got {keepalive!r}")
    if breaker_after is not None and (
        isinstance(breaker_after, bool) or not isinstance(breaker_after, (int, float)) or not breaker_after > 0
    ):
        raise ValueError(
            f"connect: option 'breaker_after' must be a positive number of seconds or None, got {breaker_after!r}"
        )
    if call_timeout is not None:
        _check_call_timeout("connect", call_timeout)
    from .options import build_policy

    build_policy(
        "connect",
        {
            "max_reconnects": max_reconnects,
            "deadline": deadline,
            "replay_safe_tools": replay_safe_tools,
            "plugin_manager": plugin_manager,
        },
    )
    options = _Options(
        headers=headers,
        auth=auth,
        timeout=timeout,
        sse_read_timeout=sse_read_timeout,
        read_timeout_seconds=read_timeout_seconds,
        mode=mode,
        heal=heal,
        keepalive=keepalive,
        breaker_after=breaker_after,
        call_timeout=call_timeout,
        client_info=client_info,
        session_kwargs=session_kwargs,
    )
    session = ResilientSession(
        target,
        options,
        max_reconnects=max_reconnects,
        deadline=deadline,
        replay_safe_tools=replay_safe_tools,
        plugin_manager=plugin_manager,
    )
    await session._start()
    try:
        yield session
    finally:
        await session._close()
