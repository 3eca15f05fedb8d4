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
  multi-round-trip tool of the 2026-07-28 protocol (see :func:`~mcp_hooks.testing.mcp_server._add_confirm_tool`).

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
import logging
import os
import random
import signal
import socket
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

# COUNTER_URI, EXTRA_TOOL, HEALTH_PATH, ControlsCache, SERVER_NAME, STALE_RESPONSES and the ASGI types
# are re-exported: they were importable from this module before it was split.
from mcp_hooks.testing.controller import COUNTER_URI as COUNTER_URI
from mcp_hooks.testing.controller import EXTRA_TOOL as EXTRA_TOOL
from mcp_hooks.testing.controller import HEALTH_PATH as HEALTH_PATH
from mcp_hooks.testing.controller import STALE_STYLES
from mcp_hooks.testing.faults import ControlsCache as ControlsCache
from mcp_hooks.testing.faults import FaultState, _sleep
from mcp_hooks.testing.mcp_server import SERVER_NAME as SERVER_NAME
from mcp_hooks.testing.mcp_server import _Sdk, build_http_app, build_mcp_server
from mcp_hooks.testing.middleware import MCP_PATH, STALE_RESPONSES, FaultMiddleware
from mcp_hooks.testing.middleware import ASGIApp as ASGIApp
from mcp_hooks.testing.middleware import Message as Message
from mcp_hooks.testing.middleware import Receive as Receive
from mcp_hooks.testing.middleware import Scope as Scope
from mcp_hooks.testing.middleware import Send as Send
from mcp_hooks.testing.state_files import StateFiles

__all__ = ["STALE_RESPONSES", "FaultMiddleware", "FaultState", "main"]

logger = logging.getLogger("mcp_hooks.testing.server")


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
