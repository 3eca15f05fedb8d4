"""``ResilientSession``: the object ``connect()`` yields, the ``ClientSession`` call surface with recovery.

Recovery of each call is the engine's (:mod:`mcp_hooks.engine`): hooks decide, one rebuild is shared
by every failing call, a call is replayed only when safe, or raises :class:`~mcp_hooks.OutcomeUncertain`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import pluggy

from .. import telemetry
from ..calls import CallTimeout, ToolCall
from ..classify import Loss, SessionLostMark, classify, flow_expired, mark_session_lost
from ..engine import RecoveryPolicy, add_note, recover_async
from ..healing.traffic import FLOW_RESTARTS
from ..manager import decide
from ..sdk import MCP_MAJOR
from .link import _Link, _uncancel
from .listen import HealedSubscription
from .listen import listen as _listen
from .owner import _Owning, _tool_annotations
from .rebuild import _call_deadline, _failed_generation, _Options
from .silence import _CALL_TIMEOUT, _check_call_timeout, _Silence

log = logging.getLogger("mcp_hooks.connect")


class ResilientSession(_Owning):
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
        super().__init__(target, options, deadline)
        self._ping_unsupported = False
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

    # --- what callers see ------------------------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        """The current ``Mcp-Session-Id`` (``None`` for stdio and session-less protocols)."""
        link = self._link
        return link.session_id_seen if link is not None else None

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
        """Set on this session and on every session rebuilt after it (the last level only)."""
        result = await self._invoke("set_logging_level", (level,), kwargs)
        self._level = ((level,), kwargs)
        return result

    async def subscribe_resource(self, uri: Any, **kwargs: Any) -> Any:
        """Subscribed on this session and again on every session rebuilt after it, until unsubscribed."""
        result = await self._invoke("subscribe_resource", (uri,), kwargs)
        self._subscribed[str(uri)] = ((uri,), kwargs)
        return result

    async def unsubscribe_resource(self, uri: Any, **kwargs: Any) -> Any:
        self._subscribed.pop(str(uri), None)
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
        consumer that refetches on events refetches them (see :mod:`mcp_hooks.connection.listen`)."""
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
        telemetry.note(telemetry.scope(), self.server, link.session_id_seen)
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
            if link is None or not link.usable or link.session_id_seen is None:
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
