"""The MCP server of the fault server, built with the installed SDK (1.x ``FastMCP`` or 2.x
``MCPServer``): its tools (``echo``, ``incr``, ``put``, ``slow``, ``fail``; ``extra`` and
``confirm_put`` when the controls offer them), its ``kit://counter`` resource, the recorded
``logging/setLevel`` and ``resources/(un)subscribe`` answers, and its streamable-HTTP ASGI app.
Every tool runs the controls of :class:`~mcp_hooks.testing.faults.FaultState` around its work.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
from typing import TYPE_CHECKING, Any

import anyio

from mcp_hooks.testing.controller import COUNTER_URI, EXTRA_TOOL
from mcp_hooks.testing.faults import FaultState, _sleep

if TYPE_CHECKING:
    from mcp_hooks.testing.middleware import ASGIApp

__all__ = ["SERVER_NAME", "build_http_app", "build_mcp_server"]

SERVER_NAME = "mcp-hooks-fault-server"


class _Sdk:
    """The installed SDK major: its server class, ``ToolAnnotations`` and ``ToolError``."""

    def __init__(self) -> None:
        try:
            server_mod = importlib.import_module("mcp.server.mcpserver")
            errors = importlib.import_module("mcp.server.mcpserver.exceptions")
            self.major = 2
            self.server_cls: Any = server_mod.MCPServer
        except ImportError:
            server_mod = importlib.import_module("mcp.server.fastmcp")
            errors = importlib.import_module("mcp.server.fastmcp.exceptions")
            self.major = 1
            self.server_cls = server_mod.FastMCP
        self.tool_error: type[Exception] = errors.ToolError
        self.context_cls: type[Any] = server_mod.Context
        self.annotations_cls: Any = importlib.import_module("mcp.types").ToolAnnotations
        try:
            self.handshake_versions: frozenset[str] | None = frozenset(
                importlib.import_module("mcp_types.version").HANDSHAKE_PROTOCOL_VERSIONS
            )
        except (ImportError, AttributeError):
            self.handshake_versions = None  # 1.x: every protocol version has sessions

    def supports_idle_timeout(self) -> bool:
        target = self.server_cls.streamable_http_app if self.major == 2 else self.server_cls.__init__
        return "session_idle_timeout" in inspect.signature(target).parameters


def build_mcp_server(sdk: _Sdk, state: FaultState, args: argparse.Namespace) -> Any:
    """The FastMCP/MCPServer with the five test tools."""
    kwargs: dict[str, Any] = {}
    if sdk.major == 1:
        kwargs = {"json_response": args.json_response, "stateless_http": args.stateless, "log_level": "INFO"}
        if args.idle_timeout is not None and sdk.supports_idle_timeout():
            kwargs["session_idle_timeout"] = args.idle_timeout
    else:
        kwargs = {"log_level": "INFO"}
    server = sdk.server_cls(SERVER_NAME, **kwargs)
    ann = sdk.annotations_cls
    tool_error = sdk.tool_error

    async def echo(text: str) -> str:
        """Echo the text back with the server's pid (read-only, idempotent)."""
        kill_after = await state.begin("echo")
        result = f"{text} (pid {os.getpid()})"
        state.finish("echo", kill_after)
        return result

    async def incr(key: str = "default") -> int:
        """Increment the counter ``key`` and return its new value (NOT safe to repeat)."""
        kill_after = await state.begin("incr")
        value = state.files.increment(key)
        state.finish("incr", kill_after)
        return value

    async def put(key: str, value: str) -> str:
        """Store ``value`` under ``key`` (idempotent write)."""
        kill_after = await state.begin("put")
        state.files.put(key, value)
        state.finish("put", kill_after)
        return f"{key}={value}"

    async def slow(seconds: float, progress_every: float = 0.0, ctx: Any = None) -> str:
        """Sleep ``seconds``, then answer (read-only); with ``progress_every`` > 0, report progress that often."""
        kill_after = await state.begin("slow")
        try:
            if progress_every > 0 and ctx is not None:
                done = 0.0
                for _ in range(100_000):  # bounded: seconds / progress_every steps
                    if done >= seconds:
                        break
                    step = min(progress_every, seconds - done)
                    await _sleep(step)
                    done += step
                    await ctx.report_progress(done, seconds)
            else:
                await _sleep(max(0.0, seconds))
        except anyio.get_cancelled_exc_class():
            state.cancelled += 1  # the client cancelled it (or the process is shutting down)
            raise
        state.finish("slow", kill_after)
        return f"slept {seconds} s (pid {os.getpid()})"

    slow.__annotations__["ctx"] = sdk.context_cls  # the SDK injects its request context here

    async def fail(message: str) -> str:
        """Fail with ``message`` as a tool error (an ``isError`` result, not a lost session)."""
        kill_after = await state.begin("fail")
        state.finish("fail", kill_after)
        raise tool_error(message)

    server.add_tool(echo, annotations=ann(readOnlyHint=True, idempotentHint=True))
    server.add_tool(incr)
    server.add_tool(put, annotations=ann(readOnlyHint=False, idempotentHint=True))
    server.add_tool(slow, annotations=ann(readOnlyHint=True))
    server.add_tool(fail)

    state.extra_tool = bool(state.controls().get("offer_extra_tool"))
    if state.extra_tool:

        async def extra() -> str:
            """The extra tool, offered when the server started with ``offer_extra_tool`` on (read-only)."""
            kill_after = await state.begin(EXTRA_TOOL)
            result = f"{EXTRA_TOOL} (pid {os.getpid()})"
            state.finish(EXTRA_TOOL, kill_after)
            return result

        server.add_tool(extra, name=EXTRA_TOOL, annotations=ann(readOnlyHint=True, idempotentHint=True))

    if sdk.major >= 2 and state.controls().get("offer_confirm_tool"):
        _add_confirm_tool(sdk, server, state, ann)

    def counter() -> str:
        """The ``incr`` counter ``default``, as text."""
        return str(state.files.counter("default"))

    server.resource(COUNTER_URI, name="counter", mime_type="text/plain")(counter)
    _answer_session_setup(sdk, server, state)
    return server


def _add_confirm_tool(sdk: _Sdk, server: Any, state: FaultState, ann: Any) -> None:
    """``confirm_put(key, value)`` (mcp 2.x, the 2026-07-28 protocol): a multi-round-trip tool. Its first
    round asks the client to confirm (an ``input_required`` result with an elicitation and a
    ``requestState`` the SDK seals with this process's key); the round that carries the answer stores
    ``value`` under ``key`` (idempotent). Each first round counts ``confirm_asked`` in the counters."""
    types = importlib.import_module("mcp_types")

    async def confirm_put(key: str, value: str, ctx: Any = None) -> Any:
        """Ask the client to confirm, then store ``value`` under ``key`` (idempotent write)."""
        responses = getattr(ctx, "input_responses", None)
        if not responses:
            state.files.increment("confirm_asked")
            question = types.ElicitRequestFormParams(
                message=f"Store {key}={value}?",
                requested_schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]},
            )
            return types.InputRequiredResult(
                input_requests={"confirm": types.ElicitRequest(params=question)}, request_state=f"confirm:{key}"
            )
        answer = responses.get("confirm")
        if getattr(answer, "action", None) != "accept" or not (getattr(answer, "content", None) or {}).get("ok"):
            return "not confirmed"
        kill_after = await state.begin("confirm_put")
        state.files.put(key, value)
        state.finish("confirm_put", kill_after)
        return f"{key}={value}"

    confirm_put.__annotations__.update(ctx=sdk.context_cls, **{"return": str | types.InputRequiredResult})
    server.add_tool(confirm_put, annotations=ann(readOnlyHint=False, idempotentHint=True))


def _lowlevel(server: Any, attribute: str) -> Any:
    """The SDK's low-level server inside its high-level one (a private attribute: checked, so an SDK that
    renamed it fails the server's start, and with it every kit test, instead of silently not recording)."""
    lowlevel = getattr(server, attribute, None)
    if lowlevel is None:
        raise RuntimeError(
            f"{type(server).__name__} has no {attribute!r} (the low-level server) any more: "
            "the fault server cannot answer logging/setLevel and resources/subscribe"
        )
    return lowlevel


def _answer_session_setup(sdk: _Sdk, server: Any, state: FaultState) -> None:
    """Answer ``logging/setLevel``, ``resources/subscribe`` and ``resources/unsubscribe``, recording each
    with this process's pid. Neither high-level server has a public way to, so on their low-level one."""
    record = state.files.append_request
    pid = state.pid
    if sdk.major == 1:
        lowlevel = _lowlevel(server, "_mcp_server")

        async def set_level_1(level: Any) -> None:
            record("logging/setLevel", pid, str(level))

        async def subscribe_1(uri: Any) -> None:
            record("resources/subscribe", pid, str(uri))

        async def unsubscribe_1(uri: Any) -> None:
            record("resources/unsubscribe", pid, str(uri))

        lowlevel.set_logging_level()(set_level_1)
        lowlevel.subscribe_resource()(subscribe_1)
        lowlevel.unsubscribe_resource()(unsubscribe_1)
        return

    types: Any = importlib.import_module("mcp.types")
    lowlevel = _lowlevel(server, "_lowlevel_server")
    if not callable(getattr(lowlevel, "add_request_handler", None)):
        raise RuntimeError(f"{type(lowlevel).__name__} has no add_request_handler() any more")

    async def set_level_2(ctx: Any, params: Any) -> Any:
        record("logging/setLevel", pid, str(params.level))
        return types.EmptyResult()

    async def subscribe_2(ctx: Any, params: Any) -> Any:
        record("resources/subscribe", pid, str(params.uri))
        return types.EmptyResult()

    async def unsubscribe_2(ctx: Any, params: Any) -> Any:
        record("resources/unsubscribe", pid, str(params.uri))
        return types.EmptyResult()

    lowlevel.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level_2)
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscribe_2)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, unsubscribe_2)


def build_http_app(sdk: _Sdk, server: Any, args: argparse.Namespace) -> ASGIApp:
    if sdk.major == 1:
        app: ASGIApp = server.streamable_http_app()
    else:
        kwargs: dict[str, Any] = {"json_response": args.json_response, "stateless_http": args.stateless}
        if args.idle_timeout is not None and sdk.supports_idle_timeout():
            kwargs["session_idle_timeout"] = args.idle_timeout
        app = server.streamable_http_app(**kwargs)
    return app
