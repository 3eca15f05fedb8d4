"""``ResilientSession``: the object ``connect()`` yields, the ``ClientSession`` call surface.

Its one SDK session stands on the healing relay (:mod:`.owner`), which rebuilds the transport beneath it
after every loss: the hooks decide, one rebuild is shared by every request waiting, a request is sent
again only when it never ran or is safe to repeat. What the relay answers in place of a request it gave
up (``data["mcp-hooks"]``) is raised here as the typed errors ``connect()`` has always raised:
:class:`~mcp_hooks.OutcomeUncertain`, :class:`~mcp_hooks.CircuitOpen`,
:class:`~mcp_hooks.CredentialsRefused`, :class:`~mcp_hooks.RebuildTimeout`. What only ``connect()``
offers sits here too: ``call_timeout`` (:mod:`.silence`), keepalive, ``reconnects``, ``listen()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import pluggy

from .. import telemetry
from ..calls import CallTimeout, OutcomeUncertain, ToolCall
from ..engine import CircuitOpen, CredentialsRefused, RebuildTimeout
from ..healing.settings import HealSettings
from ..manager import decide
from ..sdk import MCP_MAJOR
from .listen import HealedSubscription, listen
from .owner import _Options, _Owning
from .silence import _CALL_TIMEOUT, _check_call_timeout, _Silence, _uncancel

log = logging.getLogger("mcp_hooks.connect")

#: What the relay's made-up answers say happened (``data["mcp-hooks"]["reason"]``) -> what is raised.
_GAVE_UP = ("unreachable", "max-reconnects", "crash-loop")


class ResilientSession(_Owning):
    """The object ``connect()`` yields: the ``ClientSession`` call surface, over the healing relay."""

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
        settings = HealSettings(
            deadline=deadline,
            max_reconnects=max_reconnects,
            breaker_after=options.breaker_after,
            breaker=options.breaker_after is not None,
            replay_safe_tools=frozenset(replay_safe_tools),
            background=options.heal,
        )
        super().__init__(target, options, settings, plugin_manager)
        self._keepalive_task: asyncio.Task[None] | None = None
        self._ping_unsupported = False

    # --- what callers see ------------------------------------------------------------------------------

    @property
    def reconnects(self) -> int:
        """How many times the session was rebuilt (the server answered a new transport)."""
        return self._relay.rebuilds if self._relay is not None else 0

    @property
    def session_id(self) -> str | None:
        """The current ``Mcp-Session-Id`` (``None`` for stdio and session-less protocols)."""
        return self._relay.session_id() if self._relay is not None else None

    @property
    def session(self) -> Any:
        """The SDK object (``mcp.ClientSession`` under 1.x, ``mcp.Client`` under 2.x); the same one for the
        whole life of the session (the relay rebuilds beneath it)."""
        return self._api

    @property
    def protocol_version(self) -> str | None:
        version = getattr(self._api, "protocol_version", None)
        return version if isinstance(version, str) else None

    async def call_tool(
        self,
        name: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        call_timeout: float | None = None,
        **kwargs: Any,
    ) -> Any:
        """``ClientSession.call_tool``, recovered: sent again after session loss when safe.

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
        return await self._invoke("set_logging_level", (level,), kwargs)

    async def subscribe_resource(self, uri: Any, **kwargs: Any) -> Any:
        """Subscribed on this session and again on every session rebuilt after it, until unsubscribed."""
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
        consumer that refetches on events refetches them (see :mod:`mcp_hooks.connection.listen`)."""
        if isinstance(resource_subscriptions, str):
            raise TypeError("listen: option 'resource_subscriptions' takes a sequence of URIs, not a string")
        if MCP_MAJOR < 2:
            raise RuntimeError(
                "listen() is the 2026-07-28 protocol's subscriptions/listen (mcp 2.x); under mcp 1.x use "
                "subscribe_resource() and the session's message_handler"
            )
        self._check_open()
        filters = {
            "tools_list_changed": tools_list_changed,
            "prompts_list_changed": prompts_list_changed,
            "resources_list_changed": resources_list_changed,
            "resource_subscriptions": tuple(resource_subscriptions),
        }
        return listen(self._api, self._relay, filters)

    # --- one call ----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closing or self._api is None:
            raise RuntimeError(f"the MCP session to {self.server} is closed")

    async def _invoke(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any], tool: str | None = None) -> Any:
        self._check_open()
        with telemetry.one_call():
            silence: _Silence | None = None
            limit = (kwargs.pop(_CALL_TIMEOUT, None) or self._options.call_timeout) if method == "call_tool" else None
            task = asyncio.current_task()
            if limit is not None and task is not None:
                silence = _Silence(task, limit)
                kwargs["progress_callback"] = silence.listening(kwargs.get("progress_callback"))
                silence.session = self._api
            try:
                return await getattr(self._api, method)(*args, **kwargs)
            except asyncio.CancelledError:
                if silence is not None and task is not None and silence.fired:
                    _uncancel(task)
                    raise self._silent(args[0], silence.limit) from None
                raise
            except Exception as exc:
                typed = self._typed(exc, tool)
                if typed is exc:
                    raise
                raise typed from exc
            finally:
                if silence is not None:
                    silence.stop()

    def _typed(self, error: Exception, tool: str | None) -> Exception:
        """The typed error for what the relay answered in place of a request it gave up (else ``error``)."""
        data = getattr(getattr(error, "error", None), "data", None)
        ours = data.get("mcp-hooks") if isinstance(data, dict) else None
        if not isinstance(ours, dict):
            return error
        reason = ours.get("reason")
        said = str(getattr(getattr(error, "error", None), "message", None) or error)
        if reason == "circuit-open":
            return CircuitOpen(said)
        if reason == "credentials-refused":
            return CredentialsRefused(said)
        if ours.get("outcome") == "uncertain":
            return OutcomeUncertain(self.server, tool, said)
        if reason in _GAVE_UP:
            return RebuildTimeout(said)
        return error

    def _silent(self, tool: str, limit: float) -> CallTimeout:
        """The error of a call given up for silence: uncertain unless sending it again would be safe."""
        safe = tool in self._settings.replay_safe_tools
        relay = self._relay
        if not safe and relay is not None:
            call = ToolCall(
                server=self.server, tool=tool, annotations=relay.annotations_of(tool), owner=self, framework="mcp"
            )
            safe = decide(relay.pm, "is_replay_safe", call=call, error=TimeoutError("silent")) is True
        return CallTimeout(self.server, tool, limit, outcome_uncertain=not safe)

    # --- keepalive and lifetime --------------------------------------------------------------------------

    async def _start(self) -> None:
        await super()._start()
        if self._options.keepalive:
            self._keepalive_task = asyncio.get_running_loop().create_task(self._keepalive(self._options.keepalive))

    async def _keepalive(self, interval: float) -> None:
        """A ping while idle, below the server's idle timeout (``list_tools`` where ping is not known); a
        session-less protocol has no session to keep."""
        telemetry.current.set(telemetry.INTERNAL)
        while not self._closing:
            await asyncio.sleep(interval)
            if self.session_id is None:
                continue
            try:
                await (self.list_tools() if self._ping_unsupported else self.send_ping())
            except Exception as exc:
                code = getattr(getattr(exc, "error", None), "code", None)
                if code == -32601 and not self._ping_unsupported:
                    self._ping_unsupported = True
                else:
                    log.debug("mcp_hooks: keepalive to %s failed: %r", self.server, exc)

    async def _close(self) -> None:
        self._closing = True
        task = self._keepalive_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5.0)
        await super()._close()
