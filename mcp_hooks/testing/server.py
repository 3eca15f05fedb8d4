"""A fault-injecting MCP server for tests: ``python -m mcp_hooks.testing.server --state-dir DIR``.

It serves five tools with the installed MCP SDK (1.x ``FastMCP`` or 2.x ``MCPServer``) over
streamable HTTP (uvicorn on 127.0.0.1) or stdio:

========  ===========================================  ==========================================
tool      annotations                                  does
========  ===========================================  ==========================================
echo      readOnlyHint, idempotentHint                 returns ``"<text> (pid <pid>)"``
incr      none (not safe to repeat)                    increments a counter kept in the state dir
put       idempotentHint (readOnlyHint false)          stores ``value`` under ``key``
slow      readOnlyHint                                 sleeps ``seconds``, then answers; reports
                                                       progress every ``progress_every`` s if > 0
fail      none                                         raises a tool error (``isError`` result)
========  ===========================================  ==========================================

A process started while the ``offer_extra_tool`` control is on offers a sixth tool, ``extra``
(readOnlyHint, idempotentHint; returns ``"extra (pid <pid>)"``), so a restart can change the tool list.

Every execution is appended to ``<state-dir>/executions.log`` when the tool starts (one
``write``; no fsync, which only matters if the OS crashes), so counts survive SIGKILL and restarts.

The server also offers one resource, ``kit://counter`` (the ``incr`` counter ``default``), and answers
``logging/setLevel``, ``resources/subscribe`` and ``resources/unsubscribe``; each one answered is
appended to ``<state-dir>/requests.log`` with this process's pid (the level or the URI), so a test can
see what a client set up on which process (e.g. again on the new one after a restart).
The server checks ``<state-dir>/control.json`` (written by :class:`mcp_hooks.testing.FaultServer`)
on every request and tool call (a ``stat``; parsed again when it changed):

* ``kill_next_call``: ``{"tool": name|null, "when": "after"|"before"}``, one-shot SIGKILL of
  this process after the tool ran (the call is lost in flight) or on arrival;
* ``kill_next_handshake``: ``true``, one-shot SIGKILL of this process as it answers the next
  ``initialize`` (a POST without a session id): the headers go out, the body never does, like a
  server that dies during a redeploy just as a client reconnects;
* ``drop_next_handshake_answer``: ``true``, one-shot: the next ``initialize`` gets the event stream's
  headers and then a clean end with no event, like a server shutting down gracefully just as a client
  reconnects (the process lives on);
* ``throttle``: ``{"status": 429|503, "retry_after": "seconds or HTTP date"|null, "count": n}``: the
  next ``n`` requests that are not a handshake (POSTs carrying a session id, or of the session-less
  protocol) are refused with that status and ``Retry-After`` header, never run (``health()["throttled"]``);
* ``reject_call``: ``{"status": 400, "code": n, "message": text, "data": any, "count": n}``: the next
  ``n`` ``tools/call`` requests that are not a handshake are answered with that HTTP status and JSON-RPC
  error (the 2026-07-28 protocol's ``-32020`` HeaderMismatch or ``-32022`` UnsupportedProtocolVersion),
  never run (``health()["rejected_calls"]``);
* ``stale_401``: ``true``: stale sessions are answered 401 ``invalid_token`` instead of the stale style
  (a gateway that dropped an idle session and blames the token);
* ``refuse_credentials``: ``true``: every request is answered 401 (the credentials are bad);
* ``require_token``: a string: every request whose ``Authorization`` is not ``Bearer <it>`` is answered
  401 ``invalid_token`` (a token that expired or was rotated; never logged);
* ``expire_sessions``: a generation number; sessions issued under an older one are expired;
* ``delay``: ``{"tool": name|null, "seconds": s}``;
* ``stale_style``: how stale session ids are answered (overrides ``--stale-style``);
* ``offer_extra_tool``: ``true``, read once at start: this process offers the ``extra`` tool;
* ``offer_confirm_tool``: ``true``, read once at start (mcp 2.x): this process offers ``confirm_put``, a
  multi-round-trip tool of the 2026-07-28 protocol (see :func:`_add_confirm_tool`).

A request carrying an ``mcp-session-id`` that this process never issued (e.g. after a restart),
or one that was expired, is answered in the *stale style*: ``python`` (the SDK's own 404
``-32600 "Session not found"``), ``typescript`` (404 JSON ``-32001``), ``ts-example`` (400 JSON
``-32000 "Bad Request: No valid session ID provided"``), ``go`` (404 text), ``bare-404`` (404
HTML), ``gone-410`` (410, empty) or ``old-python`` (400 text, what mcp <= 1.25 answered). With
``python`` the answer is the installed SDK's own, so under mcp <= 1.25 it is the old 400.

``--post-idle-ttl S`` expires a session when no POST came for it for ``S`` seconds (what a gateway
with an idle TTL does; a standing GET stream does not keep it alive, unlike the SDK's own
``session_idle_timeout``); it is then answered in the stale style like any expired session.

``--legacy-only`` (for mcp 2.x, whose server also speaks the session-less 2026-07-28 protocol)
refuses that protocol as a pre-2026 server does: a request stamped with a non-handshake
``MCP-Protocol-Version`` gets 400 ``-32600 "Bad Request: Missing session ID"`` (the SDK's own
legacy answer), so an mcp 2.x client in ``mode="auto"`` falls back to ``initialize`` and holds a
``Mcp-Session-Id`` session. Under mcp 1.x it changes nothing: that server has no other protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, MutableMapping
from pathlib import Path
from typing import Any, NoReturn

import anyio

from mcp_hooks.testing.controller import COUNTER_URI, EXTRA_TOOL, HEALTH_PATH, STALE_STYLES, StateFiles

__all__ = ["STALE_RESPONSES", "FaultMiddleware", "FaultState", "main"]

logger = logging.getLogger("mcp_hooks.testing.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVER_NAME = "mcp-hooks-fault-server"
MCP_PATH = "/mcp"

# status, content type, body: the stale-session answers of other implementations (research/mcp_sdk.md §4)
STALE_RESPONSES: dict[str, tuple[int, str | None, bytes]] = {
    "typescript": (
        404,
        "application/json",
        b'{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}',
    ),
    "ts-example": (
        400,
        "application/json",
        b'{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}',
    ),
    "go": (404, "text/plain; charset=utf-8", b"session not found\n"),
    "bare-404": (404, "text/html; charset=utf-8", b"<html><body>Not Found</body></html>"),
    "gone-410": (410, None, b""),
    # mcp <= 1.25 sent exactly this: a 400 with a text body and no content type at all
    "old-python": (400, None, b"Bad Request: No valid session ID provided"),
}


# --------------------------------------------------------------------------- shared state


class FaultState:
    """What the tools and the middleware of one server process share."""

    def __init__(self, files: StateFiles, *, stale_style: str = "python") -> None:
        self.files = files
        self.default_style = stale_style
        self.pid = os.getpid()
        self._controls = ControlsCache(files.control)
        self.extra_tool = False  # whether this process offers the extra tool (decided at start)
        self.cancelled = 0  # tool runs cancelled by the client (notifications/cancelled)

    def controls(self) -> dict[str, Any]:
        """The control file as it is now (a ``stat`` per call; parsed again only when it changed)."""
        return self._controls.read()

    def stale_style(self, controls: dict[str, Any]) -> str:
        style = controls.get("stale_style")
        return style if isinstance(style, str) and style in STALE_STYLES else self.default_style

    @staticmethod
    def generation(controls: dict[str, Any]) -> int:
        try:
            return int(controls.get("expire_sessions", 0))
        except (TypeError, ValueError):
            return 0

    def _take_kill(self, tool: str) -> str | None:
        """Consume an armed kill matching ``tool`` (one-shot, persisted before acting on it)."""
        armed = self.controls().get("kill_next_call")
        if not _matches(armed, tool):
            return None
        taken: list[str] = []

        def change(controls: dict[str, Any]) -> None:
            current = controls.get("kill_next_call")
            if _matches(current, tool):
                assert isinstance(current, dict)
                taken.append("before" if current.get("when") == "before" else "after")
                del controls["kill_next_call"]

        self.files.update_controls(change)
        return taken[0] if taken else None

    def take_handshake_fault(self, name: str) -> bool:
        """Consume an armed handshake fault, ``kill_next_handshake`` or ``drop_next_handshake_answer``
        (one-shot, persisted before acting on it)."""
        if not self.controls().get(name):
            return False
        taken: list[bool] = []

        def change(controls: dict[str, Any]) -> None:
            if controls.pop(name, None):
                taken.append(True)

        self.files.update_controls(change)
        return bool(taken)

    def take_counted(self, name: str) -> dict[str, Any] | None:
        """Consume one use of an armed counted control (``throttle``, ``reject_call``), persisted before
        acting on it."""
        if not self.controls().get(name):
            return None
        taken: list[dict[str, Any]] = []

        def change(controls: dict[str, Any]) -> None:
            armed = controls.get(name)
            if not isinstance(armed, dict):
                return
            taken.append(dict(armed))
            if int(armed.get("count", 1)) <= 1:
                del controls[name]
            else:
                controls[name] = {**armed, "count": int(armed["count"]) - 1}

        self.files.update_controls(change)
        return taken[0] if taken else None

    def die(self, tool: str, when: str) -> NoReturn:
        logger.warning("SIGKILL: armed kill %s tool %r (pid %d)", when, tool, self.pid)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(self.pid, signal.SIGKILL)
        os._exit(137)  # pragma: no cover - not reached: SIGKILL cannot be caught

    async def begin(self, tool: str) -> bool:
        """Run the controls for one execution of ``tool``; returns True if it must die after it."""
        kill = self._take_kill(tool)
        if kill == "before":
            self.die(tool, "before")
        self.files.append_execution(tool, self.pid)
        delay = self.controls().get("delay")
        if _matches(delay, tool):
            assert isinstance(delay, dict)
            seconds = float(delay.get("seconds") or 0)
            if seconds > 0:
                await _sleep(seconds)
        return kill == "after"

    def finish(self, tool: str, kill_after: bool) -> None:
        if kill_after:
            self.die(tool, "after")


class ControlsCache:
    """``control.json``, read again only when the file changed: a ``stat`` per request instead of a parse.

    Every writer replaces the file (``os.replace`` of a new file), so a change is a new inode. The
    version last read is kept open, so its inode number cannot be reused by a later version while it
    is cached: comparing ``(st_dev, st_ino, st_size, st_mtime_ns)`` of the path with the kept file
    can never mistake a new version for the cached one. A change is therefore seen on the very next
    request, exactly as when the file was parsed every time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._key: tuple[int, int, int, int] | None = None
        self._value: dict[str, Any] = {}

    @staticmethod
    def _key_of(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self) -> dict[str, Any]:
        try:
            current = self._key_of(os.stat(self.path))
        except FileNotFoundError:
            self._forget()
            return {}
        if self._fd is not None and current == self._key:
            return self._value
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._forget()
            return {}
        try:
            key = self._key_of(os.fstat(fd))  # the version actually opened (maybe newer than the stat)
            chunks: list[bytes] = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except BaseException:
            os.close(fd)
            raise
        self._forget()
        self._fd, self._key = fd, key
        try:
            value = json.loads(b"".join(chunks))
        except ValueError:
            value = {}
        self._value = value if isinstance(value, dict) else {}
        return self._value

    def _forget(self) -> None:
        fd, self._fd, self._key, self._value = self._fd, None, None, {}
        if fd is not None:
            os.close(fd)


def _matches(entry: object, tool: str) -> bool:
    if not isinstance(entry, dict):
        return False
    wanted = entry.get("tool")
    return wanted is None or wanted == tool


async def _sleep(seconds: float) -> None:
    import anyio  # the SDK's own async layer, so this works under whatever loop runs the server

    await anyio.sleep(seconds)


# --------------------------------------------------------------------------- the MCP server


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


# --------------------------------------------------------------------------- the middleware


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _method(body: bytes) -> str | None:
    """The JSON-RPC method of a request body (one message), or ``None``."""
    try:
        message = json.loads(body)
    except ValueError:  # a partial or foreign body
        return None
    method = message.get("method") if isinstance(message, dict) else None
    return method if isinstance(method, str) else None


class FaultMiddleware:
    """ASGI middleware in front of the SDK's app: health check, session tracking, stale answers.

    Session ids are learnt from the ``mcp-session-id`` header of the SDK's responses, with the
    expiry generation in force when they were issued. A request carrying an id that this process
    did not issue, that belongs to an older generation, or that the SDK itself already answered
    404 for (idle expiry, DELETE) is answered in the configured stale style.
    """

    def __init__(
        self,
        app: ASGIApp,
        state: FaultState,
        *,
        token: str = "",
        stateless: bool = False,
        handshake_versions: Iterable[str] | None = None,
        idle_timeout: float | None = None,
        post_idle_ttl: float | None = None,
        legacy_only: bool = False,
    ) -> None:
        self.app = app
        self.state = state
        self.token = token
        self.stateless = stateless
        self.handshake_versions = None if handshake_versions is None else frozenset(handshake_versions)
        self.idle_timeout = idle_timeout  # only for SDKs without their own session idle timeout
        self.post_idle_ttl = post_idle_ttl  # gateway-like: counted from the session's last POST
        self.legacy_only = legacy_only
        self.issued: dict[str, int] = {}  # session id -> expiry generation when issued
        self.dead: set[str] = set()
        self.last_seen: dict[str, float] = {}
        self.in_flight: dict[str, int] = {}
        self.last_post: dict[str, float] = {}
        self.posts_in_flight: dict[str, int] = {}
        self.stale_answers = 0  # requests answered as carrying a stale session id
        self.throttled = 0  # requests refused by an armed throttle
        self.rejected_calls = 0  # tools/call answered with an armed reject_call error
        self.unauthorized = 0  # requests answered 401 (refuse_credentials, stale_401)
        self.modern_refused = 0  # 2026-07-28 requests refused (legacy_only)
        self.tools_listed = 0  # tools/list requests on a session (how often clients list the tools)
        self.listens = 0  # subscriptions/listen requests (2026-07-28) this process received

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == HEALTH_PATH:
            await self._health(send)
            return
        session_id = _header(scope, b"mcp-session-id")
        if path.rstrip("/") != MCP_PATH:
            await self.app(scope, receive, send)
            return
        modern = self._is_modern(scope)
        if modern and _header(scope, b"mcp-method") == "subscriptions/listen":
            self.listens += 1
        required = self.state.controls().get("require_token")
        if self.state.controls().get("refuse_credentials") or (
            isinstance(required, str) and _header(scope, b"authorization") != f"Bearer {required}"
        ):
            self.unauthorized += 1
            await self._drain(receive)
            await _respond(send, 401, "application/json", b'{"error":"invalid_token"}', _CHALLENGE)
            return
        if scope.get("method") == "POST" and (session_id is not None or modern):
            throttle = self.state.take_counted("throttle")
            if throttle is not None:
                self.throttled += 1
                await self._drain(receive)
                status = int(throttle.get("status", 429))
                retry_after = throttle.get("retry_after")
                logger.info("refusing a request with HTTP %d (Retry-After: %s)", status, retry_after)
                headers = [(b"retry-after", str(retry_after).encode())] if retry_after is not None else []
                body = json.dumps({"error": "slow down"}).encode()
                await _respond(send, status, "application/json", body, headers)
                return
        if (
            scope.get("method") == "POST"
            and (session_id is not None or modern)
            and self.state.controls().get("reject_call")
        ):
            body = await _read_body(receive)
            if await self._rejected_call(body, send):
                return
            receive = _replayed(body, receive)
        if self.stateless or (modern and not self.legacy_only):
            if modern and self.legacy_only:  # a pre-2026 stateless server checks only the version
                await self._refuse_modern(scope, receive, send, session_id, unsupported=True)
            else:
                await self.app(scope, receive, send)
            return
        controls = self.state.controls()
        style = self.state.stale_style(controls)
        if session_id is not None and self._is_stale(session_id, controls):
            self.stale_answers += 1
            logger.info("stale session %s (%s): answering in style %r", session_id[:64], scope["method"], style)
            if controls.get("stale_401"):  # a gateway that dropped the session answers as if the token were bad
                self.unauthorized += 1
                await self._drain(receive)
                await _respond(send, 401, "application/json", b'{"error":"invalid_token"}', _CHALLENGE)
            elif style == "python":
                # Make the SDK answer with its own bytes, as for any id it never issued.
                scope = dict(scope)
                scope["headers"] = [
                    (k, b"expired-" + bytes(v) if k.lower() == b"mcp-session-id" else v) for k, v in scope["headers"]
                ]
                await self.app(scope, receive, send)
            else:
                await self._drain(receive)
                await self._answer_stale(style, send)
            return
        if modern:
            await self._refuse_modern(scope, receive, send, session_id)
            return
        await self._forward(scope, receive, send, session_id, style)

    async def _refuse_modern(
        self, scope: Scope, receive: Receive, send: Send, session_id: str | None, *, unsupported: bool = False
    ) -> None:
        """Answer a 2026-07-28 request as a pre-2026 server does: a stateful one validates the session
        first (no session id: 400 "Missing session ID"), then the protocol version."""
        self.modern_refused += 1
        await self._drain(receive)
        if session_id is None and not unsupported:
            message = "Bad Request: Missing session ID"
        else:
            version = _header(scope, b"mcp-protocol-version")
            supported = ", ".join(sorted(self.handshake_versions or ()))
            message = f"Bad Request: Unsupported protocol version: {version}. Supported versions: {supported}"
        error = {"code": -32600, "message": message}
        body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}, separators=(",", ":"))
        await _respond(send, 400, "application/json", body.encode())

    def _is_modern(self, scope: Scope) -> bool:
        """A 2026-07-28 (session-less) request: the SDK ignores session ids there, and so do we unless
        ``legacy_only`` refuses it."""
        version = _header(scope, b"mcp-protocol-version")
        return self.handshake_versions is not None and version is not None and version not in self.handshake_versions

    def _is_stale(self, session_id: str, controls: dict[str, Any]) -> bool:
        issued = self.issued.get(session_id)
        if issued is None or session_id in self.dead:
            return True
        if issued < self.state.generation(controls):
            return True
        if self.post_idle_ttl is not None and not self.posts_in_flight.get(session_id):
            idle = time.monotonic() - self.last_post.get(session_id, time.monotonic())
            if idle > self.post_idle_ttl:
                logger.info("session %s: no POST for %.2f s (post idle TTL): expired", session_id[:64], idle)
                self.dead.add(session_id)
                return True
        if self.idle_timeout is not None and not self.in_flight.get(session_id):
            idle = time.monotonic() - self.last_seen.get(session_id, time.monotonic())
            if idle > self.idle_timeout:
                logger.info("session %s idle timeout (middleware)", session_id[:64])
                self.dead.add(session_id)
                return True
        return False

    async def _forward(self, scope: Scope, receive: Receive, send: Send, session_id: str | None, style: str) -> None:
        restyle = False
        post = scope.get("method") == "POST"
        handshake = session_id is None and post
        die_answering = handshake and self.state.take_handshake_fault("kill_next_handshake")
        drop_answer = handshake and not die_answering and self.state.take_handshake_fault("drop_next_handshake_answer")

        async def watch(message: Message) -> None:
            nonlocal restyle
            if restyle:
                return  # swallow the rest of the SDK's 404: our answer was sent instead
            if drop_answer and message["type"] == "http.response.start":
                # What a server shutting down gracefully does: the headers, then a clean end, no event.
                logger.warning("dropping the answer to a handshake (armed drop_next_handshake_answer)")
                restyle = True
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if message["type"] == "http.response.start":
                for key, value in message.get("headers") or ():
                    if bytes(key).lower() == b"mcp-session-id":
                        issued = bytes(value).decode("latin-1")
                        if issued not in self.issued:
                            self.issued[issued] = self.state.generation(self.state.controls())
                            self.last_seen[issued] = self.last_post[issued] = time.monotonic()
                if session_id is not None and message["status"] == 404:
                    # The SDK forgot the session (idle expiry, DELETE): stale from now on.
                    self.dead.add(session_id)
                    if style != "python":
                        restyle = True
                        await self._answer_stale(style, send)
                        return
            if die_answering and message["type"] == "http.response.body":
                await _sleep(0.05)  # the headers reach the client first
                self.state.die("initialize", "answering")
            await send(message)

        if session_id is not None:
            self.in_flight[session_id] = self.in_flight.get(session_id, 0) + 1
            if post:
                self.posts_in_flight[session_id] = self.posts_in_flight.get(session_id, 0) + 1
                self.last_post[session_id] = time.monotonic()

        async def peek() -> Message:
            message = await receive()
            body = message.get("body", b"") if message["type"] == "http.request" else b""
            if b"tools/list" in body and _method(body) == "tools/list":  # not a call whose arguments say it
                self.tools_listed += 1
            return message

        try:
            await self.app(scope, receive if session_id is None else peek, watch)
        finally:
            if session_id is not None:
                self.in_flight[session_id] -= 1
                self.last_seen[session_id] = time.monotonic()
                if post:
                    self.posts_in_flight[session_id] -= 1
                    self.last_post[session_id] = time.monotonic()
                if scope.get("method") == "DELETE":
                    self.dead.add(session_id)

    async def _health(self, send: Send) -> None:
        controls = self.state.controls()
        body = json.dumps(
            {
                "pid": self.state.pid,
                "token": self.token,
                "sessions": len(self.issued),
                "generation": self.state.generation(controls),
                "stale_style": self.state.stale_style(controls),
                "stale_answers": self.stale_answers,
                "throttled": self.throttled,
                "rejected_calls": self.rejected_calls,
                "unauthorized": self.unauthorized,
                "modern_refused": self.modern_refused,
                "tools_listed": self.tools_listed,
                "listens": self.listens,
                "legacy_only": self.legacy_only,
                "post_idle_ttl": self.post_idle_ttl,
                "extra_tool": self.state.extra_tool,
                "cancelled": self.state.cancelled,
            }
        ).encode()
        await _respond(send, 200, "application/json", body)

    async def _rejected_call(self, body: bytes, send: Send) -> bool:
        """Answer a ``tools/call`` with the armed ``reject_call`` JSON-RPC error (it never runs)."""
        try:
            message = json.loads(body)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            return False
        reject = self.state.take_counted("reject_call")
        if reject is None:
            return False
        self.rejected_calls += 1
        error = {"code": int(reject["code"]), "message": str(reject.get("message", ""))}
        if reject.get("data") is not None:
            error["data"] = reject["data"]
        logger.info("rejecting a tools/call with HTTP %s and JSON-RPC error %s", reject.get("status"), error["code"])
        answer = json.dumps({"jsonrpc": "2.0", "id": message.get("id"), "error": error}).encode()
        await _respond(send, int(reject.get("status", 400)), "application/json", answer)
        return True

    @staticmethod
    async def _drain(receive: Receive) -> None:
        for _ in range(10_000):  # bounded: a request body is a few messages
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return

    @staticmethod
    async def _answer_stale(style: str, send: Send) -> None:
        status, content_type, body = STALE_RESPONSES[style]
        await _respond(send, status, content_type, body)


_CHALLENGE = [(b"www-authenticate", b'Bearer error="invalid_token"')]


async def _read_body(receive: Receive) -> bytes:
    body = b""
    for _ in range(10_000):  # bounded: a request body is a few messages
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return body


def _replayed(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` (already read from ``receive``) once, then hands on to ``receive``
    (the server's own, which says when the client goes)."""
    given = False

    async def replay() -> Any:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(
    send: Send, status: int, content_type: str | None, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-length", str(len(body)).encode()), *(extra or [])]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# --------------------------------------------------------------------------- process plumbing


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def bind_socket(port: int) -> socket.socket:
    """A bound (not yet listening) socket on 127.0.0.1.

    With ``port == 0`` a free port *outside* the kernel's ephemeral range is preferred: while the
    server is down for a restart, no outgoing connection can then take its port (or connect to
    itself through it), so the restart can bind it again.
    """

    def make(p: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", p))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        return sock

    if port:
        return make(port)
    low, high = _ephemeral_range()
    candidates = [p for p in (*range(20000, min(low, 32768)), *range(high + 1, 65536)) if p >= 1024]
    for candidate in random.sample(candidates, min(50, len(candidates))):
        with contextlib.suppress(OSError):
            return make(candidate)
    return make(0)


def _setup_logging(files: StateFiles) -> None:
    handler = logging.FileHandler(files.log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)


def _run_http(sdk: _Sdk, state: FaultState, args: argparse.Namespace) -> int:
    import anyio
    import uvicorn

    server = build_mcp_server(sdk, state, args)
    native_idle = args.idle_timeout is not None and sdk.supports_idle_timeout()
    app = FaultMiddleware(
        build_http_app(sdk, server, args),
        state,
        token=args.instance_token,
        stateless=args.stateless,
        handshake_versions=sdk.handshake_versions,
        idle_timeout=None if native_idle else args.idle_timeout,
        post_idle_ttl=args.post_idle_ttl,
        legacy_only=args.legacy_only,
    )
    try:
        sock = bind_socket(args.port)
    except OSError as exc:
        logger.error("cannot bind 127.0.0.1:%s: %s", args.port, exc)
        return 2
    port = int(sock.getsockname()[1])
    files = state.files

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if self.started and not self.should_exit:
                _write_text_atomic(files.port, f"{port}\n")
                logger.info("listening on http://127.0.0.1:%d%s (pid %d)", port, MCP_PATH, os.getpid())

        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            # uvicorn re-raises the signal after its graceful shutdown, which would end the
            # process "killed by SIGTERM"; exit 0 instead, so a clean stop is visible as such.
            handlers = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=3,
        ws="none",
    )
    uv = Server(config)

    async def serve() -> None:
        async with anyio.create_task_group() as tg:
            if args.exit_with_parent:
                tg.start_soon(_watch_parent, args.exit_with_parent, uv)
            await uv.serve(sockets=[sock])
            tg.cancel_scope.cancel()

    anyio.run(serve)
    return 0 if uv.started else 1


async def _watch_parent(parent: int, server: Any) -> None:
    """Stop the server when the process that started it is gone (no orphans after a crash)."""
    while os.getppid() == parent:
        await _sleep(0.5)
    logger.warning("parent process %d is gone: shutting down", parent)
    server.should_exit = True


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _run_stdio(sdk: _Sdk, state: FaultState, args: argparse.Namespace) -> int:
    import anyio

    server = build_mcp_server(sdk, state, args)
    anyio.run(server.run_stdio_async)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mcp_hooks.testing.server", description="Fault-injecting MCP server for tests."
    )
    parser.add_argument("--state-dir", required=True, help="directory for control, counters, logs")
    parser.add_argument("--transport", choices=("http", "stdio"), default="http")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (written to <state-dir>/port)")
    parser.add_argument("--idle-timeout", type=float, default=None, help="session idle timeout in seconds")
    parser.add_argument("--stateless", action="store_true", help="no sessions (stateless_http)")
    parser.add_argument("--json-response", action="store_true", help="JSON responses instead of SSE")
    parser.add_argument(
        "--post-idle-ttl",
        type=float,
        default=None,
        metavar="S",
        help="expire a session when no POST came for it for S seconds (a gateway's idle TTL)",
    )
    parser.add_argument(
        "--legacy-only",
        action="store_true",
        help="refuse the session-less 2026-07-28 protocol like a pre-2026 server (mcp 2.x; no-op under 1.x)",
    )
    parser.add_argument("--stale-style", choices=STALE_STYLES, default="python")
    parser.add_argument("--instance-token", default="", help="echoed by the health check")
    parser.add_argument("--exit-with-parent", type=int, default=0, metavar="PID", help="exit when PID is gone")
    args = parser.parse_args(argv)
    if args.idle_timeout is not None and not args.idle_timeout > 0:
        parser.error("--idle-timeout must be positive")
    if args.post_idle_ttl is not None and not args.post_idle_ttl > 0:
        parser.error("--post-idle-ttl must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    root = Path(args.state_dir)
    root.mkdir(parents=True, exist_ok=True)
    files = StateFiles(root.resolve())
    _setup_logging(files)
    _write_text_atomic(files.pid, f"{os.getpid()}\n")
    state = FaultState(files, stale_style=args.stale_style)
    sdk = _Sdk()
    logger.info("starting (%s, mcp %d.x, pid %d, argv %s)", args.transport, sdk.major, os.getpid(), sys.argv[1:])
    try:
        if args.transport == "stdio":
            return _run_stdio(sdk, state, args)
        return _run_http(sdk, state, args)
    except Exception:
        logger.exception("the fault server crashed")
        raise
    finally:
        logger.info("stopped (pid %d)", os.getpid())


def _exit_now(code: int) -> None:
    """Flush and leave without tearing down the interpreter (a third of a second with mcp loaded)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    _exit_now(main())
