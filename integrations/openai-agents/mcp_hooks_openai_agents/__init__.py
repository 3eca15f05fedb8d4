"""mcp-hooks for openai-agents: MCP servers that survive a server restart or a lost session.

Turn it on once, before the servers connect::

    import mcp_hooks
    mcp_hooks.instrument("openai-agents")

Then every ``MCPServerStreamableHttp``, ``MCPServerSse`` and ``MCPServerStdio`` recovers by openai-agents'
own means (``await server.cleanup(); await server.connect()``) when its session is lost, once for all
the tool calls that failed together, and replays a call only when that is safe: the server refused it
before running it, or the tool is annotated read-only or idempotent. A write lost in flight raises
:class:`mcp_hooks.OutcomeUncertain` (which openai-agents wraps in its ``AgentsException`` and shows to the
model) instead of running twice.

What is wrapped (``agents.mcp.server``, patched where the names live, at import time if needed):

- ``_MCPServerWithClientSession.call_tool`` and its override ``MCPServerStreamableHttp.call_tool``, and
  ``_MCPServerWithClientSession.list_tools`` (a read, always safe to replay): detect, reconnect, replay.
  ``MCPUtil.to_function_tool`` binds ``MCPUtil.invoke_mcp_tool`` early, but that looks ``server.call_tool``
  up on every call, so tools made before ``instrument()`` are covered too.
- ``_MCPServerWithClientSession.connect`` and ``.cleanup``: run in one long-lived owner task per server
  (see :mod:`._owner`), so a reconnect never enters an mcp 1.x transport in a per-call task.
- ``MCPServerStreamableHttp.create_streams`` (mcp 1.x only): the HTTP transport is watched, so a call
  whose server died mid-answer fails at once instead of hanging (the core's
  :func:`mcp_hooks.healing.settle.answering_factory`).

The shim heals these servers' sessions itself, so the SDK transports they open (in ``connect`` and in
``MCPServerStreamableHttp._isolated_client_session``, openai-agents' one-call retry session) are opened
under :func:`mcp_hooks.healing.bypass`: with ``mcp_hooks.instrument("mcp")`` on too, one loss is rebuilt
once, by the shim, not also beneath the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import mcp_hooks
from mcp_hooks import ToolCall, hookimpl
from mcp_hooks.healing import bypass, settle
from mcp_hooks.plugins.replay_safety import annotation_hint

from . import _owner
from ._settle import _settle_now, _settle_pending

__all__ = [
    "FRAMEWORK",
    "IN_FLIGHT_MESSAGE",
    "REFUSED_MARK",
    "OpenAIAgentsIntegration",
    "configure",
    "is_reconnect_supported",
    "mcp_hooks_integration",
    "reconnect_count",
]

log = logging.getLogger("mcp_hooks")

#: ``ToolCall.framework`` of the calls this shim wraps.
FRAMEWORK = "openai-agents"
SERVER_MODULE = "agents.mcp.server"
_BASE = "_MCPServerWithClientSession"
_HTTP = "MCPServerStreamableHttp"

#: What ``instrument()`` wraps with the recovery of ``mcp_hooks.attach``.
RECOVERY_TARGETS = (
    f"{SERVER_MODULE}:{_BASE}.call_tool",
    f"{SERVER_MODULE}:{_HTTP}.call_tool",
    f"{SERVER_MODULE}:{_BASE}.list_tools",
)

#: Starts the message of the shim's answer to an mcp 1.x HTTP request that was never sent.
REFUSED_MARK = "Connection refused: the request was not sent (mcp-hooks)"
#: Starts the message of the shim's answer to an mcp 1.x HTTP request lost in flight.
IN_FLIGHT_MESSAGE = "Connection closed: the connection broke before the answer arrived; the request may have run"

#: openai-agents' own wording for a request that could not be sent (an HTTP ConnectError).
_CONNECT_ERROR_TEXT = "Connection lost. The server may have disconnected."
#: openai-agents' own wording for a ``connect()`` that could not reach the server (an HTTP ConnectError,
#: which it drops from the cause chain when it cannot vouch for the URLs in it).
_UNREACHABLE_TEXT = "Could not reach the server."
_CONFIGURABLE = frozenset({"max_reconnects", "deadline", "replay_safe_tools"})


# --- what the hooks need to know about an object ---------------------------------------------------------


def _server_class() -> Any:
    module = sys.modules.get(SERVER_MODULE)
    return getattr(module, _BASE, None) if module is not None else None


def is_reconnect_supported(server: Any) -> bool:
    """Whether ``server`` is an openai-agents MCP server this shim can reconnect."""
    cls = _server_class()
    return cls is not None and isinstance(server, cls)


def reconnect_count(server: Any) -> int:
    """How many times the shim rebuilt the session of ``server`` (successful rebuilds)."""
    state = _owner.peek(server)
    return state.reconnects if state is not None else 0


def _walk(error: BaseException, budget: int = 64) -> Iterable[BaseException]:
    """``error``, its causes and group members (not ``__context__``: what was being handled says nothing)."""
    queue: deque[BaseException] = deque((error,))
    seen = {id(error)}
    while queue and budget > 0:
        budget -= 1
        node = queue.popleft()
        yield node
        members = getattr(node, "exceptions", None)
        children = [node.__cause__, *(members if isinstance(members, (list, tuple)) else ())]
        for child in children:
            if isinstance(child, BaseException) and id(child) not in seen:
                seen.add(id(child))
                queue.append(child)


def _user_error_says(node: BaseException, words: str) -> bool:
    """``node`` is openai-agents' ``UserError`` and its message holds ``words``."""
    return type(node).__name__ == "UserError" and words in _text(node)


def _text(node: BaseException) -> str:
    try:
        return str(node)
    except Exception:  # a broken __str__ says nothing
        return ""


def _never_sent(error: BaseException) -> bool:
    """The request could not reach the server: the shim's own answer (mcp 1.x HTTP) or openai-agents'."""
    return any(REFUSED_MARK in _text(node) or _user_error_says(node, _CONNECT_ERROR_TEXT) for node in _walk(error))


def _unreachable(error: BaseException) -> bool:
    """``connect()`` found no server to talk to: openai-agents' wording, or a typed ``ConnectError``."""
    return any(
        type(node).__name__ == "ConnectError" or _user_error_says(node, _UNREACHABLE_TEXT) for node in _walk(error)
    )


def _annotations(server: Any, tool: str | None) -> Any:
    """The tool's MCP annotations from the tool list the server already holds (no request)."""
    if tool is None:
        return None
    tools = getattr(server, "_tools_list", None)
    if not isinstance(tools, list):
        return None
    for item in tools:
        if getattr(item, "name", None) == tool:
            return getattr(item, "annotations", None)
    return None


# --- hooks ----------------------------------------------------------------------------------------------


@hookimpl
def should_reconnect(call: ToolCall, error: BaseException) -> bool | None:
    """Never for a server its user closed (or never opened); yes when the request could not be sent."""
    if call.framework != FRAMEWORK or not is_reconnect_supported(call.owner):
        return None
    state = _owner.peek(call.owner)
    wanted = state.wanted if state is not None else None
    if wanted is False or (wanted is None and getattr(call.owner, "session", None) is None):
        return False  # "Server not initialized" because nobody connected it: the user's error, not a loss
    if _connected_elsewhere(call.owner, state):
        _warn_connected_elsewhere(call.owner, _owner.state_of(call.owner))
        return False
    if _never_sent(error):
        return True
    return None


@hookimpl
def is_replay_safe(call: ToolCall, error: BaseException) -> bool | None:
    """Yes for listings, for requests never sent, and for tools the server's tool list marks repeatable."""
    if call.framework != FRAMEWORK or not is_reconnect_supported(call.owner):
        return None
    if call.tool is None:
        return True  # list_tools: a read
    if _never_sent(error):
        return True
    annotations = call.annotations if call.annotations is not None else _annotations(call.owner, call.tool)
    if annotation_hint(annotations, "readOnlyHint") or annotation_hint(annotations, "idempotentHint"):
        return True
    return None  # the built-in replay-safety plugin decides


@hookimpl
def reconnect(call: ToolCall) -> Any:
    """``await server.cleanup(); await server.connect()``, in the server's owner task."""
    server = call.owner
    if not is_reconnect_supported(server):
        return None
    state = _owner.state_of(server)
    return _owner.run_in_owner(server, state, lambda: _rebuild(server, state))


def _mcp_v1() -> bool:
    compat = sys.modules.get("agents.mcp._compat")
    return compat is not None and not getattr(compat, "MCP_V2", True)


def _connected_elsewhere(server: Any, state: _owner.OwnerState | None) -> bool:
    """mcp 1.x: the open transport was entered by another task (the server connected before
    ``instrument()``). Only that task can close it: closing it from the owner task would make anyio
    cancel that task. So the shim leaves such a server alone until its user reconnects it."""
    if getattr(server, "session", None) is None or not _mcp_v1():
        return False
    return state is None or not state.connected_by_owner


def _warn_connected_elsewhere(server: Any, state: _owner.OwnerState) -> None:
    if state.warned_elsewhere:
        return
    state.warned_elsewhere = True
    log.warning(
        "mcp_hooks: MCP server %r was connected before mcp_hooks.instrument('openai-agents'); under mcp 1.x "
        "its transport can only be closed by the task that opened it, so it is not reconnected. Instrument "
        "before connecting, or reconnect it once (cleanup() then connect()).",
        getattr(server, "name", server),
    )


async def _rebuild(server: Any, state: _owner.OwnerState) -> bool:
    if state.wanted is False:
        return False  # closed by its user meanwhile: the replay meets "Server not initialized"
    state.wanted = True
    state.rebuilding = True
    try:
        await _settle_pending(server)
        await server.cleanup()
        try:
            await server.connect()
        except Exception as exc:
            if _unreachable(exc):
                # Typed, so the engine sees a server that is down or restarting: such rebuilds are retried
                # with backoff until the deadline instead of using up max_reconnects in half a second.
                raise ConnectionRefusedError(f"{exc} (mcp-hooks: the server is down or restarting)") from exc
            raise
    finally:
        state.rebuilding = False
    state.connected_by_owner = True
    state.reconnects += 1
    invalidate = getattr(server, "invalidate_tools_cache", None)
    if callable(invalidate):
        invalidate()  # the restarted server may offer other tools
    return True


# --- connect / cleanup in the owner task ----------------------------------------------------------------


def _enabled() -> bool:
    return mcp_hooks_integration.enabled


def _warn_about_own_retries(server: Any, state: _owner.OwnerState) -> None:
    attempts = getattr(server, "max_retry_attempts", 0)
    if not attempts or state.warned_retries:
        return
    state.warned_retries = True
    log.warning(
        "mcp_hooks: MCP server %r has max_retry_attempts=%r: openai-agents then re-sends a call whose answer "
        "was lost (over mcp 1.x HTTP, after its read timeout, in a fresh session), so a write may run twice "
        "whatever mcp-hooks decides. Leave max_retry_attempts at 0: mcp-hooks reconnects and replays only "
        "what is safe.",
        getattr(server, "name", server),
        attempts,
    )


async def _connect_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not _enabled() or instance is None:
        return await wrapped(*args, **kwargs)
    state = _owner.state_of(instance)
    if not state.rebuilding:
        _warn_about_own_retries(instance, state)

    async def connect() -> Any:
        with bypass():  # the shim heals this session: the transport it opens is the SDK's own
            result = await wrapped(*args, **kwargs)
        state.connected_by_owner = True
        if not state.rebuilding:
            state.wanted = True
        return result

    if _owner.in_owner(state):
        return await connect()
    return await _owner.run_in_owner(instance, state, connect)


async def _cleanup_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    if not _enabled() or instance is None:
        return await wrapped(*args, **kwargs)
    state = _owner.peek(instance)
    if state is None:
        return await wrapped(*args, **kwargs)
    inside = _owner.in_owner(state)
    if not (inside and state.rebuilding):
        state.wanted = False  # the user closes it: never reopen it behind their back
    if inside:
        _settle_now(getattr(instance, "session", None))  # mcp 1.x would leave them waiting forever
        return await wrapped(*args, **kwargs)
    if not state.owner_alive(asyncio.get_running_loop()):
        _settle_now(getattr(instance, "session", None))
        return await wrapped(*args, **kwargs)  # no owner holds a transport: close where it was opened

    async def close() -> Any:
        _settle_now(getattr(instance, "session", None))
        return await wrapped(*args, **kwargs)

    return await _owner.run_in_owner(instance, state, close)


def _create_streams_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """mcp 1.x: build the HTTP client through a factory that watches its transport."""
    if not _enabled() or not mcp_hooks_integration.watch_http or instance is None:
        return wrapped(*args, **kwargs)
    compat = sys.modules.get("agents.mcp._compat")
    params = getattr(instance, "params", None)
    if compat is None or getattr(compat, "MCP_V2", True) or not isinstance(params, dict):
        return wrapped(*args, **kwargs)
    module = sys.modules[SERVER_MODULE]
    inner = params.get("httpx_client_factory") or module._create_default_streamable_http_client
    if getattr(inner, "__mcp_hooks_answering__", False):
        return wrapped(*args, **kwargs)
    factory = settle.answering_factory(inner, refused=REFUSED_MARK, in_flight=IN_FLIGHT_MESSAGE)
    instance.params = {**params, "httpx_client_factory": factory}
    try:
        return wrapped(*args, **kwargs)
    finally:
        instance.params = params


def _isolated_session_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """openai-agents' one-call retry session (``max_retry_attempts``) opens its transport on entering:
    created and entered under ``bypass()``, like ``connect``."""
    if not _enabled():
        return wrapped(*args, **kwargs)
    return _entered_under_bypass(lambda: wrapped(*args, **kwargs))


@contextlib.asynccontextmanager
async def _entered_under_bypass(open_session: Callable[[], Any]) -> AsyncIterator[Any]:
    async with contextlib.AsyncExitStack() as stack:
        with bypass():
            session = await stack.enter_async_context(open_session())
        yield session


_PATCHES = tuple(
    mcp_hooks.Patch(SERVER_MODULE, f"{owner}.{method}", wrapper, owner="mcp_hooks.openai_agents")
    for owner, method, wrapper in (
        (_BASE, "connect", _connect_wrapper),
        (_BASE, "cleanup", _cleanup_wrapper),
        (_HTTP, "create_streams", _create_streams_wrapper),
        (_HTTP, "_isolated_client_session", _isolated_session_wrapper),
    )
)


# --- the integration ------------------------------------------------------------------------------------


class OpenAIAgentsIntegration(mcp_hooks.Integration):
    """The openai-agents shim: recovery on the MCP servers' calls, connect/cleanup in an owner task."""

    name = FRAMEWORK
    distribution = "openai-agents"
    min_version = "0.24"
    max_version = "1.0"
    patches = _PATCHES

    def __init__(self) -> None:
        super().__init__()
        #: options for ``mcp_hooks.attach`` (see :func:`configure`)
        self.options: dict[str, Any] = {}
        #: answer in place what the mcp 1.x HTTP transport lost (``settle.answering_factory``)
        self.watch_http = True

    def targets(self) -> Iterable[tuple[str, dict[str, Any]]]:
        return [(target, {**self.options, "framework": FRAMEWORK}) for target in RECOVERY_TARGETS]

    def configure(self, **options: Any) -> None:
        """Change the recovery options (``max_reconnects``, ``deadline``, ``replay_safe_tools``) and
        ``watch_http``; applied at once when the shim is on."""
        watch = options.pop("watch_http", None)
        unknown = sorted(set(options) - _CONFIGURABLE)
        if unknown:
            raise TypeError(
                f"configure: unknown option(s) {', '.join(map(repr, unknown))}; known: "
                f"{', '.join(sorted(_CONFIGURABLE | {'watch_http'}))}"
            )
        from mcp_hooks.options import build_policy

        merged = {**self.options, **options}
        build_policy("mcp_hooks_openai_agents.configure", merged)  # raises naming a bad option
        with self._lock:
            self.options = merged
            if watch is not None:
                self.watch_http = bool(watch)
            if self.enabled:  # re-attach the recovery with the new options; connect/cleanup stay
                while self._handles:
                    self._handles.pop().detach()
                for target, attach_options in self.targets():
                    self._handles.append(mcp_hooks.attach(target, **attach_options))


#: The shim's instance, found by ``mcp_hooks.instrument()`` through the entry point.
mcp_hooks_integration = OpenAIAgentsIntegration()


def configure(**options: Any) -> None:
    """Recovery options for openai-agents' MCP servers: ``max_reconnects`` (default 3), ``deadline``
    (seconds, default 30), ``replay_safe_tools`` (names always safe to replay), ``watch_http``."""
    mcp_hooks_integration.configure(**options)
