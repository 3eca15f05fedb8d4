"""mcp-hooks for hermes-agent: its MCP client asks the hooks, and survives restarts under load.

hermes-agent (0.19, mcp 1.26) already reconnects on its own: a session-expired error makes a tool
handler signal the server's connection task (``MCPServerTask``) to tear the transport down and build
it again, poll every 0.25 s for the new session, and retry once. This shim keeps that machinery and
changes what decides and what waits:

- **Detection asks mcp-hooks.** ``tools.mcp_tool._is_session_expired_error`` answers
  :func:`mcp_hooks.is_session_expired`, so every spelling the built-in classifier knows (HTTP status,
  JSON-RPC codes of both signs, error groups, causes) and every installed plugin counts; hermes' own
  markers stay, as a ``should_reconnect`` implementation that answers last.
- **Recovery is the engine's.** ``_handle_session_expired_and_retry`` (called by hermes' five MCP
  handlers) runs :func:`mcp_hooks.engine.recover_sync`: one rebuild for all concurrent calls (single
  flight per server), by hermes' own means (the ``reconnect`` hook below sets the server task's
  reconnect event in its own task and waits for the new session, without polling), then a replay only
  when ``is_replay_safe`` allows it (hermes alone retries whatever the call: over stdio, a write lost
  in flight ran twice); otherwise the model gets an "outcome uncertain" error, the
  ``OutcomeUncertain`` text. Every failed attempt and every rebuild reaches the observer hooks.
- **No call waits for the tool timeout.** mcp 1.x never answers a request whose answer was lost; in
  hermes such a call held the per-server lock until its timeout, and every other call waited behind
  it. :mod:`._settle` answers it with an error as soon as its stream ends, and fails what is still
  outstanding when a session closes.
- **One healer per session.** The server's connection task opens its SDK transport in
  ``MCPServerTask._run_http`` / ``_run_stdio``, which run under :func:`mcp_hooks.healing.bypass` while
  the shim is on: with ``mcp_hooks.instrument("mcp")`` on too, hermes' sessions are rebuilt by this shim
  only, never also beneath the session.

Turn it on with ``mcp_hooks.instrument("hermes")`` before hermes connects its MCP servers, or in
hermes itself by enabling the plugin ``mcp-hooks`` (``plugins.enabled`` in ``config.yaml``).
``mcp_hooks.uninstrument("hermes")`` puts every patched function back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import dataclasses
import functools
import inspect
import json
import linecache
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import mcp_hooks
from mcp_hooks import OutcomeUncertain, ToolCall
from mcp_hooks.classify import Loss, SessionLostMark, mark_session_lost, session_lost_mark
from mcp_hooks.engine import RecoveryPolicy, recover_sync
from mcp_hooks.healing import bypass
from mcp_hooks.manager import notify, plugin_manager

from . import _settle
from ._rebuild import ReconnectFailed, _await_session, _rebuild

__all__ = [
    "FRAMEWORK",
    "HermesIntegration",
    "ReconnectFailed",
    "mcp_hooks_integration",
    "reconnect",
    "register",
    "should_reconnect",
]

log = logging.getLogger("mcp_hooks.hermes")

FRAMEWORK = "hermes-agent"
HERMES_MODULE = "tools.mcp_tool"

#: Recovery budget after a failure: rebuilds (and waits for them) stop this many seconds after it.
RECOVERY_SECONDS = 20.0
#: At most this many rebuilds per failed call.
MAX_RECONNECTS = 3
#: How long one rebuild may take (hermes' own reconnect wait is 15 s too).
REBUILD_TIMEOUT = 15.0

# The ClientSession methods hermes' handlers call on ``server.session``.
_SESSION_METHODS = frozenset({"call_tool", "list_resources", "read_resource", "list_prompts", "get_prompt"})


@dataclasses.dataclass(frozen=True)
class _HandlerCall:
    """What a hermes tool handler is doing, for the hooks (set while the handler runs)."""

    server: str
    tool: str | None
    arguments: Mapping[str, Any] | None
    timeout: float
    started: float


_CURRENT: contextvars.ContextVar[_HandlerCall | None] = contextvars.ContextVar("mcp_hooks_hermes_call", default=None)


def _hermes() -> Any:
    """The imported ``tools.mcp_tool`` module, or ``None``."""
    return sys.modules.get(HERMES_MODULE)


def _hermes_loop() -> Any:
    """hermes' dedicated MCP event loop (every hermes MCP connection lives on it), or ``None``."""
    mod = _hermes()
    return getattr(mod, "_mcp_loop", None) if mod is not None else None


def _enabled() -> bool:
    return mcp_hooks_integration.enabled


# --- hooks ----------------------------------------------------------------------------------------


@mcp_hooks.hookimpl(trylast=True)
def should_reconnect(call: ToolCall, error: BaseException) -> bool | None:
    """hermes-agent's own spellings of session loss (its ``_SESSION_EXPIRED_MARKERS``), for its calls.

    Answers last, next to the built-in classifier, so any other plugin can add a case or veto one.
    """
    if call.framework != FRAMEWORK:
        return None
    detector = _hermes_detector()
    if detector is None:
        return None
    try:
        return True if detector(error) else None
    except Exception:  # hermes' detector is not ours to break on
        return None


@mcp_hooks.hookimpl
def reconnect(call: ToolCall) -> Any:
    """Rebuild the session of a hermes ``MCPServerTask`` by hermes' own means.

    The server's connection task tears its transport down and connects again when its reconnect event
    is set: the same signal hermes' own recovery sends. The wait for the new session runs on hermes'
    MCP loop and wakes on its ready event. Returns a ``concurrent.futures.Future``; ``None`` for
    objects that are not hermes servers.
    """
    mod = _hermes()
    if mod is None or not isinstance(call.owner, mod.MCPServerTask):
        return None
    loop = mod._mcp_loop
    if loop is None or not loop.is_running():
        raise RuntimeError(f"hermes' MCP event loop is not running: cannot reconnect {call.server!r}")
    return asyncio.run_coroutine_threadsafe(_rebuild(mod, call.owner, REBUILD_TIMEOUT), loop)


# --- hermes' functions, wrapped ---------------------------------------------------------------------


def _hermes_detector() -> Callable[[BaseException], Any] | None:
    patch = _PATCHES_BY_NAME.get("_is_session_expired_error")
    if patch is not None and patch.original is not None:
        return patch.original  # type: ignore[no-any-return]
    mod = _hermes()
    return getattr(mod, "_is_session_expired_error", None) if mod is not None else None


def _prepare(error: BaseException) -> None:
    """Give the classifier what hermes' call path hides: the transport error behind an answer made up
    for a lost request, and the meaning of hermes finding no session at all (a reconnect under way)."""
    seen = 0
    node: BaseException | None = error
    while node is not None and seen < 8:
        cause = _settle.transport_error_of(node)
        if cause is not None and node.__cause__ is None and cause is not node:
            node.__cause__ = cause
        node = node.__cause__ or node.__context__
        seen += 1
    if session_lost_mark(error) is not None:
        return
    if (
        isinstance(error, AttributeError)
        and getattr(error, "obj", ...) is None
        and getattr(error, "name", None) in _SESSION_METHODS
    ):
        mark_session_lost(
            error,
            SessionLostMark(Loss.REJECTED, detail="hermes had no live session (a reconnect was under way): not sent"),
        )
    elif _never_sent(error):
        mark_session_lost(
            error,
            SessionLostMark(Loss.REJECTED, detail="the session was already closed: the request was never sent"),
        )


def _never_sent(error: BaseException) -> bool:
    """An anyio closed/broken-stream error raised where mcp 1.x hands the request to its transport
    (``BaseSession.send_request``: ``await self._write_stream.send(...)``): the request never left."""
    kind = type(error)
    if kind.__name__ not in ("ClosedResourceError", "BrokenResourceError") or not kind.__module__.startswith("anyio"):
        return False
    tb = error.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "send_request" and frame.f_globals.get("__name__") == "mcp.shared.session":
            return "_write_stream.send" in linecache.getline(frame.f_code.co_filename, tb.tb_lineno)
        tb = tb.tb_next
    return False


def _call_for(server_name: str | None, error_op: str | None = None, owner: Any = None) -> ToolCall:
    current = _CURRENT.get()
    tool: str | None = None
    arguments: Mapping[str, Any] | None = None
    if current is not None and (server_name is None or current.server == server_name):
        server_name, tool, arguments = current.server, current.tool, current.arguments
    elif error_op and error_op.startswith("tools/call "):
        tool = error_op[len("tools/call ") :]
    return ToolCall(
        server=server_name or FRAMEWORK,
        tool=tool,
        arguments=arguments,
        annotations=_annotations(owner, tool),
        owner=owner,
        framework=FRAMEWORK,
    )


def _annotations(server: Any, tool: str | None) -> Any:
    if server is None or tool is None:
        return None
    for known in getattr(server, "_tools", None) or ():
        if getattr(known, "name", None) == tool:
            return getattr(known, "annotations", None)
    return None


def _detect(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``_is_session_expired_error(exc)``: the hooks' verdict."""
    error = args[0] if args else kwargs.get("exc")
    if not _enabled() or not isinstance(error, BaseException):
        return wrapped(*args, **kwargs)
    _prepare(error)
    return mcp_hooks.is_session_expired(error, call=_call_for(None))


def _recover(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``_handle_session_expired_and_retry(server_name, exc, retry_call, op_description)``."""
    if not _enabled():
        return wrapped(*args, **kwargs)
    bound = _bind(wrapped, args, kwargs)
    if bound is None:
        return wrapped(*args, **kwargs)
    server_name, error, retry_call, op = (
        bound["server_name"],
        bound["exc"],
        bound["retry_call"],
        bound["op_description"],
    )
    mod = _hermes()
    if mod is None or not isinstance(error, Exception) or not callable(retry_call):
        return wrapped(*args, **kwargs)
    _prepare(error)
    with mod._lock:
        server = mod._servers.get(server_name)
    loop = mod._mcp_loop
    if server is None or loop is None or not loop.is_running():
        return wrapped(*args, **kwargs)
    current = _CURRENT.get()
    if current is not None and current.server != server_name:
        current = None
    started = current.started if current is not None else time.monotonic()
    is_tool_call = isinstance(op, str) and op.startswith("tools/call")
    call = _call_for(server_name, op if isinstance(op, str) else None, server)
    if not is_tool_call:
        call = call.replace(tool=None, arguments=None, annotations=None)
    policy = RecoveryPolicy(
        server=server_name,
        framework=FRAMEWORK,
        max_reconnects=MAX_RECONNECTS,
        deadline=max(0.001, time.monotonic() - started) + RECOVERY_SECONDS,
        always_replay_safe=not is_tool_call,  # listing and reading change nothing
        # The `reconnect` hook below does it; asked directly only if this module is not a registered
        # plugin (entry points disabled), so that recovery never replays on the dead session.
        reconnect=None if plugin_manager().is_registered(sys.modules[__name__]) else reconnect,
    )

    def attempt() -> Any:
        try:
            return retry_call()
        except Exception as failed:
            _prepare(failed)
            raise

    try:
        result = recover_sync(policy, attempt, call, error, started)
    except OutcomeUncertain as uncertain:
        return json.dumps(
            {"error": mod._sanitize_error(str(uncertain)), "outcome_uncertain": True, "server": server_name},
            ensure_ascii=False,
        )
    except InterruptedError:
        return mod._interrupted_call_result()
    except Exception as final:
        notes = [str(n) for n in getattr(final, "__notes__", None) or () if "mcp-hooks" in str(n)]
        if final is error and not notes:
            return None  # not session loss: hermes' own error path, unchanged
        # Recovery gave up (the server did not come back in time): the last real error, and what was tried.
        mod._bump_server_error(server_name)
        text = f"MCP call failed: {type(final).__name__}: {mod._exc_str(final)}"
        if notes:
            text += f" ({' '.join(notes)})"
        return json.dumps({"error": mod._sanitize_error(text)}, ensure_ascii=False)
    with contextlib.suppress(Exception):
        parsed = json.loads(result)
        if isinstance(parsed, dict) and "error" in parsed:
            return result
    mod._reset_server_error(server_name)
    return result


def _observe_auth(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``_handle_auth_error_and_retry``: auth failures never reach the engine; show them to observers."""
    if _enabled():
        bound = _bind(wrapped, args, kwargs)
        mod = _hermes()
        if bound is not None and mod is not None:
            error = bound["exc"]
            with contextlib.suppress(Exception):
                if isinstance(error, BaseException) and mod._is_auth_error(error):
                    with mod._lock:
                        server = mod._servers.get(bound["server_name"])
                    call = _call_for(bound["server_name"], bound["op_description"], server)
                    notify(plugin_manager(), "on_tool_error", call=call, error=error)
    return wrapped(*args, **kwargs)


def _wait_ready(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``_wait_for_server_session_ready(srv, *, old_session=None, timeout=15.0)`` without the 0.25 s poll."""
    mod = _hermes()
    if not _enabled() or mod is None:
        return wrapped(*args, **kwargs)
    bound = _bind(wrapped, args, kwargs)
    loop = mod._mcp_loop
    if bound is None or loop is None or not loop.is_running() or threading.current_thread() is mod._mcp_thread:
        return wrapped(*args, **kwargs)
    timeout = max(0.0, float(bound.get("timeout", 15.0) or 0.0))
    future = asyncio.run_coroutine_threadsafe(_await_session(bound["srv"], bound.get("old_session"), timeout), loop)
    try:
        return bool(future.result(timeout + 5.0))
    except concurrent.futures.TimeoutError:
        future.cancel()
        return False


def _handler_factory(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``_make_tool_handler(server_name, tool_name, tool_timeout)`` and the four utility factories:
    the handler they return notes what it is doing (server, tool, arguments, start) while it runs."""
    handler = wrapped(*args, **kwargs)
    bound = _bind(wrapped, args, kwargs)
    if bound is None or not callable(handler) or getattr(handler, "__mcp_hooks_hermes__", False):
        return handler
    server_name = bound.get("server_name")
    tool_name = bound.get("tool_name")
    try:
        timeout = float(bound.get("tool_timeout") or 0.0)
    except (TypeError, ValueError):
        timeout = 0.0

    @functools.wraps(handler)
    def handler_with_context(*hargs: Any, **hkwargs: Any) -> Any:
        if not _enabled():
            return handler(*hargs, **hkwargs)
        arguments = hargs[0] if hargs else hkwargs.get("args")
        token = _CURRENT.set(
            _HandlerCall(
                server=str(server_name),
                tool=tool_name if isinstance(tool_name, str) else None,
                arguments=arguments if isinstance(arguments, Mapping) else None,
                timeout=timeout,
                started=time.monotonic(),
            )
        )
        try:
            return handler(*hargs, **hkwargs)
        finally:
            _CURRENT.reset(token)

    handler_with_context.__mcp_hooks_hermes__ = True  # type: ignore[attr-defined]
    return handler_with_context


async def _transport_under_bypass(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    """``MCPServerTask._run_http(config)`` / ``_run_stdio(config)``: one connection of the server task,
    from opening the SDK transport to closing it. The shim heals this session, so the transport is the
    SDK's own (``instrument("mcp")`` must not heal it beneath as well); decided at each (re)connect."""
    if not _enabled():
        return await wrapped(*args, **kwargs)
    with bypass():
        return await wrapped(*args, **kwargs)


_signatures: dict[Any, inspect.Signature | None] = {}


def _bind(function: Any, args: Any, kwargs: Any) -> dict[str, Any] | None:
    target = getattr(function, "__wrapped__", function)
    if target not in _signatures:
        try:
            _signatures[target] = inspect.signature(target)
        except (TypeError, ValueError):
            _signatures[target] = None
    signature = _signatures[target]
    if signature is None:
        return None
    try:
        binding = signature.bind(*args, **kwargs)
    except TypeError:
        return None
    binding.apply_defaults()
    return dict(binding.arguments)


# --- patching ---------------------------------------------------------------------------------------


def _patch(module: str, qualname: str, wrapper: Callable[..., Any], *, required: bool) -> mcp_hooks.Patch:
    return mcp_hooks.Patch(module, qualname, wrapper, required=required, owner="mcp_hooks.hermes")


_PATCHES: tuple[mcp_hooks.Patch, ...] = (
    _patch(HERMES_MODULE, "_is_session_expired_error", _detect, required=True),
    _patch(HERMES_MODULE, "_handle_session_expired_and_retry", _recover, required=True),
    _patch(HERMES_MODULE, "_handle_auth_error_and_retry", _observe_auth, required=False),
    _patch(HERMES_MODULE, "_wait_for_server_session_ready", _wait_ready, required=False),
    _patch(HERMES_MODULE, "_make_tool_handler", _handler_factory, required=True),
    _patch(HERMES_MODULE, "_make_list_resources_handler", _handler_factory, required=False),
    _patch(HERMES_MODULE, "_make_read_resource_handler", _handler_factory, required=False),
    _patch(HERMES_MODULE, "_make_list_prompts_handler", _handler_factory, required=False),
    _patch(HERMES_MODULE, "_make_get_prompt_handler", _handler_factory, required=False),
    _patch(HERMES_MODULE, "MCPServerTask._run_http", _transport_under_bypass, required=True),
    _patch(HERMES_MODULE, "MCPServerTask._run_stdio", _transport_under_bypass, required=True),
    _patch(
        "mcp.client.streamable_http",
        "StreamableHTTPTransport._handle_post_request",
        _settle.handle_post_request,
        required=False,
    ),
    _patch("mcp.shared.session", "BaseSession.__aexit__", _settle.session_aexit, required=False),
)
_PATCHES_BY_NAME = {patch.path[-1]: patch for patch in _PATCHES}


class HermesIntegration(mcp_hooks.Integration):
    """The hermes-agent shim: patches ``tools.mcp_tool`` (hermes' MCP client) and, for the connections
    hermes owns, two places of mcp 1.x where a lost request would otherwise never be answered."""

    name = "hermes"
    distribution = "hermes-agent"
    min_version = "0.19"
    max_version = "0.20"  # private functions are patched: each hermes minor is checked before it is allowed

    patches = _PATCHES

    def _on(self) -> None:
        _settle.set_scope(_hermes_loop)

    def _off(self) -> None:
        _settle.set_scope(None)


mcp_hooks_integration = HermesIntegration()


def register(ctx: Any) -> None:
    """hermes-agent plugin entry point (group ``hermes_agent.plugins``, name ``mcp-hooks``): turn the
    shim on when hermes loads its plugins, which it does before it connects MCP servers."""
    if not mcp_hooks_integration.instrument():
        log.warning("mcp_hooks.hermes: not enabled: %s", mcp_hooks_integration.why_not)
