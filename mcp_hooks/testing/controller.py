"""Drive the fault-injecting MCP server from tests: start, stop, restart, kill and arm faults.

The controller is stdlib only. It talks to the server process through files in a *state
directory*: the server checks ``control.json`` on every request and tool call (a ``stat``; it is
parsed again when it changed), and writes ``executions.log`` (one JSON line per tool execution),
``requests.log`` (one JSON line per ``logging/setLevel``, ``resources/subscribe`` and
``resources/unsubscribe`` answered), ``counters.log`` and ``kv.log`` (append-only JSON lines, the
last record of a key wins), ``port``, ``pid`` and ``server.log``. The same files work for the HTTP
transport (the controller spawns the server) and for stdio (the MCP client spawns it from
:meth:`FaultServer.stdio_parameters`).

Nothing is fsync'd: data handed to the kernel with ``write`` survives a SIGKILL of the process that
wrote it (it is in the page cache), so counts stay exact across kills and restarts; fsync would only
protect against a crash of the operating system, at a millisecond per tool call.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal

from mcp_hooks.testing.state_files import StateFiles

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "COUNTER_URI",
    "EXTRA_TOOL",
    "HEALTH_PATH",
    "STALE_STYLES",
    "FaultServer",
    "FaultServerError",
    "StateFiles",
    "StdioParameters",
]

STALE_STYLES: tuple[str, ...] = (
    "python",
    "typescript",
    "ts-example",
    "go",
    "bare-404",
    "gone-410",
    "old-python",
)
"""How the server answers a request that carries a stale ``mcp-session-id`` (see the server module)."""

HEALTH_PATH = "/_fault/health"
"""Answered by the server's middleware itself (never by the MCP SDK): used to know it is up."""

COUNTER_URI = "kit://counter"
"""The server's one resource (the ``incr`` counter ``default``, as text): something to subscribe to."""

EXTRA_TOOL = "extra"
"""The read-only tool a server process offers when it starts with :meth:`FaultServer.offer_extra_tool` on."""

_SERVER_MODULE = "mcp_hooks.testing.server"


class FaultServerError(RuntimeError):
    """The fault server could not be started or controlled."""


# --------------------------------------------------------------------------- stdio parameters


@dataclass(frozen=True)
class StdioParameters:
    """What an MCP client needs to spawn the fault server over stdio."""

    command: str
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)


def _package_root() -> str | None:
    """The source tree holding ``mcp_hooks``, so a child finds it even where it is not installed.

    None for an installed copy: putting a ``site-packages`` on another interpreter's path would
    hand it this environment's ``mcp`` too.
    """
    root = Path(__file__).resolve().parents[2]
    return None if root.name in ("site-packages", "dist-packages") else str(root)


def _child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env: dict[str, str] = {} if base is None else dict(base)
    existing = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    root = _package_root()
    parts = existing if root is None else [root, *existing]
    if parts:
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(parts))
    return env


# --------------------------------------------------------------------------- controller


class _Leftovers:
    """What a forgotten FaultServer leaves behind, cleaned at garbage collection or interpreter exit."""

    def __init__(self, root: Path | None) -> None:
        self.root = root  # the temporary state dir this controller made, if any
        self.proc: subprocess.Popen[bytes] | None = None

    def __call__(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)


class FaultServer:
    """A fault-injecting MCP server process for tests (streamable HTTP or stdio).

    Usage::

        with FaultServer() as srv:          # started on a free port
            ...connect to srv.url, call tools...
            srv.restart()                    # same port, new process: every session is gone
            srv.kill_during_next_call("incr")
            assert srv.executions("incr") == 1

    Every wait is bounded; only the process this object started is ever signalled.

    The API is synchronous. In an async test, a plain ``srv.restart()`` holds the event loop for
    the restart (the client only notices afterwards); to let in-flight calls see the server go
    away while it happens, run it in a thread: ``await asyncio.to_thread(srv.restart)``.
    With ``python=`` another interpreter (another venv, another ``mcp`` major) runs the server.

    ``legacy_only=True`` makes an mcp 2.x server refuse the session-less 2026-07-28 protocol the way
    a pre-2026 server does, so mcp 2.x clients in ``mode="auto"`` fall back to the ``initialize``
    handshake and hold a session that can be lost (no-op under mcp 1.x, which has no other protocol).
    ``post_idle_ttl=s`` expires a session once no POST came for it for ``s`` seconds, like a gateway's
    idle TTL (the SDK's own ``idle_timeout`` never expires a session whose client holds its GET stream).

    What a client sets up on its session is recorded with the pid of the process that answered it, so a
    test can see whether a rebuilt session set it up again on the new process: :meth:`logging_levels`
    (``logging/setLevel``), :meth:`subscriptions` and :meth:`unsubscriptions` (``resources/subscribe`` /
    ``resources/unsubscribe``; the server offers one resource to subscribe to, :data:`COUNTER_URI`), each a
    list of ``(pid, level or uri)`` in order. :meth:`offer_extra_tool` makes every server process started
    from then on offer one more tool, ``extra`` (read-only), so a restart changes the tool list.
    """

    def __init__(
        self,
        *,
        transport: Literal["http", "stdio"] = "http",
        state_dir: str | os.PathLike[str] | None = None,
        idle_timeout: float | None = None,
        stateless: bool = False,
        json_response: bool = False,
        stale_style: str = "python",
        python: str = sys.executable,
        start_timeout: float = 20.0,
        port: int = 0,
        legacy_only: bool = False,
        post_idle_ttl: float | None = None,
    ) -> None:
        if transport not in ("http", "stdio"):
            raise ValueError(f"transport must be 'http' or 'stdio', not {transport!r}")
        if stale_style not in STALE_STYLES:
            raise ValueError(f"stale_style must be one of {STALE_STYLES}, not {stale_style!r}")
        if idle_timeout is not None and not idle_timeout > 0:
            raise ValueError("idle_timeout must be a positive number of seconds")
        if post_idle_ttl is not None and (isinstance(post_idle_ttl, bool) or not post_idle_ttl > 0):
            raise ValueError("post_idle_ttl must be a positive number of seconds")
        if post_idle_ttl is not None and transport != "http":
            raise ValueError("post_idle_ttl needs transport='http' (stdio has no sessions to expire)")
        if start_timeout <= 0:
            raise ValueError("start_timeout must be positive")
        self.transport = transport
        self.idle_timeout = idle_timeout
        self.stateless = stateless
        self.json_response = json_response
        self.stale_style = stale_style
        self.legacy_only = bool(legacy_only)
        self.post_idle_ttl = post_idle_ttl
        self.python = python
        self.start_timeout = start_timeout
        self._owns_dir = state_dir is None
        root = Path(tempfile.mkdtemp(prefix="mcp-fault-")) if state_dir is None else Path(state_dir)
        root.mkdir(parents=True, exist_ok=True)
        self._files = StateFiles(root.resolve())
        self._port: int | None = port or None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None
        self._token = ""
        self._closed = False
        self._leftovers = _Leftovers(self._files.root if self._owns_dir else None)
        self._finalizer = weakref.finalize(self, self._leftovers)

    # ------------------------------------------------------------------ properties
    @property
    def state_dir(self) -> Path:
        return self._files.root

    @property
    def files(self) -> StateFiles:
        return self._files

    @property
    def port(self) -> int:
        if self._port is None:
            raise FaultServerError("the server has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """The streamable-HTTP endpoint, ``http://127.0.0.1:PORT/mcp``."""
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def pid(self) -> int | None:
        """The server's pid: the process this object started (HTTP), or the last one to start (stdio)."""
        if self._proc is not None:
            return self._proc.pid
        try:
            return int(self._files.pid.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def running(self) -> bool:
        """True while the process this object started is alive (always False for stdio)."""
        return self._proc is not None and self._proc.poll() is None

    # ------------------------------------------------------------------ lifecycle
    def _command(self, port: int) -> list[str]:
        args = [self.python, "-m", _SERVER_MODULE, "--state-dir", str(self.state_dir)]
        if self.transport == "stdio":
            args += ["--transport", "stdio"]
        else:
            args += ["--port", str(port), "--exit-with-parent", str(os.getpid())]
            args += ["--instance-token", self._token]
        if self.idle_timeout is not None:
            args += ["--idle-timeout", repr(float(self.idle_timeout))]
        if self.stateless:
            args.append("--stateless")
        if self.json_response:
            args.append("--json-response")
        if self.stale_style != "python":
            args += ["--stale-style", self.stale_style]
        if self.legacy_only:
            args.append("--legacy-only")
        if self.post_idle_ttl is not None:
            args += ["--post-idle-ttl", repr(float(self.post_idle_ttl))]
        return args

    def start(self) -> Self:
        """Spawn the HTTP server and wait (at most ``start_timeout`` s) until it answers HTTP."""
        if self.transport != "http":
            raise FaultServerError("a stdio fault server is spawned by the MCP client: use stdio_parameters()")
        if self._closed:
            raise FaultServerError("this FaultServer was closed")
        if self.running:
            raise FaultServerError(f"the server is already running (pid {self.pid})")
        self._reap()
        self._token = secrets.token_hex(8)
        with contextlib.suppress(FileNotFoundError):
            self._files.port.unlink()
        self._log_fh = open(self._files.log, "ab")  # noqa: SIM115 - closed in _reap()
        self._proc = subprocess.Popen(
            self._command(self._port or 0),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log_fh,
            env=_child_env(dict(os.environ)),
        )
        self._leftovers.proc = self._proc
        try:
            self._wait_ready()
        except BaseException:
            self.stop(sig=signal.SIGKILL)
            raise
        return self

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.start_timeout
        last_error = "no answer yet"
        while True:
            code = proc.poll()
            if code is not None:
                raise FaultServerError(
                    f"the fault server exited with code {code} during start-up; "
                    f"tail of {self._files.log}:\n{self._files.tail_log()}"
                )
            port = self._read_port()
            if port is not None:
                health = self._health(port)
                if health is not None and health.get("token") == self._token:
                    self._port = port
                    return
                last_error = f"port {port} did not answer the health check"
            if time.monotonic() >= deadline:
                raise FaultServerError(
                    f"the fault server did not answer within {self.start_timeout} s ({last_error}); "
                    f"tail of {self._files.log}:\n{self._files.tail_log()}"
                )
            time.sleep(0.02)

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """The running server's own report: ``pid``, ``sessions`` (issued so far), ``generation``,
        ``stale_style``, ``stale_answers`` (requests answered as carrying a stale session id),
        ``modern_refused`` (2026-07-28 requests refused under ``legacy_only``), ``tools_listed``
        (``tools/list`` requests made on a session), ``legacy_only``, ``post_idle_ttl``, ``extra_tool``
        (whether this process offers the ``extra`` tool), ``throttled``, ``rejected_calls``, ``unauthorized``,
        ``listens`` (2026-07-28 ``subscriptions/listen`` requests), ``cancelled`` (``slow`` runs cancelled
        by the client's ``notifications/cancelled``). Counts are per process: a restart starts them again."""
        if self.transport != "http":
            raise FaultServerError("health() needs an HTTP fault server")
        health = self._health(self.port, timeout=timeout) if self.running else None
        if health is None:
            raise FaultServerError(f"the fault server (pid {self.pid}) did not answer its health check")
        return health

    def _read_port(self) -> int | None:
        try:
            return int(self._files.port.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _health(self, port: int, timeout: float = 1.0) -> dict[str, Any] | None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            conn.request("GET", HEALTH_PATH)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                return None
            value = json.loads(body)
            return value if isinstance(value, dict) else None
        except (OSError, ValueError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal the server (SIGTERM: graceful), wait up to ``timeout`` s, then SIGKILL.

        Returns the exit code (0 after a graceful shutdown, ``-9`` after SIGKILL), or None if
        nothing was running. Only the process started by this object is signalled.
        """
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                proc.wait(timeout=timeout)
        code = proc.returncode
        self._reap()
        return code

    def kill(self) -> int | None:
        """SIGKILL the server and wait for it: every session and in-flight call is lost."""
        return self.stop(sig=signal.SIGKILL)

    def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait until the server process ends on its own (e.g. after an armed kill); returns its code."""
        proc = self._proc
        if proc is None:
            raise FaultServerError("no server process was started")
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise FaultServerError(f"the server (pid {proc.pid}) was still running after {timeout} s") from None

    def restart(self, sig: int = signal.SIGTERM, down_for: float = 0.0) -> Self:
        """Stop the server (``sig``), stay down ``down_for`` s, and start a new process on the same port."""
        self.stop(sig=sig)
        if down_for > 0:
            time.sleep(down_for)
        return self.start()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        self._leftovers.proc = None
        if proc is not None and proc.poll() is None:  # pragma: no cover - only after a failed stop
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def close(self) -> None:
        """Stop the server and remove the state directory if this object made it."""
        if self._closed:
            return
        try:
            self.stop()
        finally:
            self._closed = True
            self._finalizer()  # removes the state dir if this object made it

    def __enter__(self) -> Self:
        if self.transport == "http" and not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f"port={self._port}" if self.transport == "http" else "stdio"
        return f"<FaultServer {where} pid={self.pid} state_dir={str(self.state_dir)!r}>"

    # ------------------------------------------------------------------ observations
    def executions(self, tool: str | None = None) -> int:
        """How many tool executions the server recorded (all processes, survives SIGKILL)."""
        records = self._files.execution_records()
        return sum(1 for r in records if tool is None or r.get("tool") == tool)

    def executions_from_now(self) -> Callable[[str | None], int]:
        """A counter of executions since this call: ``ran = srv.executions_from_now(); ...; ran("incr")``.

        For servers shared between tests, where the totals carry over."""
        base: dict[str, int] = {}
        for record in self._files.execution_records():
            name = str(record.get("tool"))
            base[name] = base.get(name, 0) + 1
        total = sum(base.values())

        def ran(tool: str | None = None) -> int:
            return self.executions(tool) - (total if tool is None else base.get(tool, 0))

        return ran

    def revive_when_dead(self, timeout: float = 30.0) -> threading.Thread:
        """Start the server again, from a thread, once it has died by itself (an armed
        ``kill_during_next_call``), so that a call waiting on it can recover. Bounded by ``timeout``;
        ``join()`` the thread to wait for the new process."""

        def run() -> None:
            deadline = time.monotonic() + timeout
            while self.running and time.monotonic() < deadline:
                time.sleep(0.02)
            if not self.running:
                self.start()

        thread = threading.Thread(target=run, name="mcp-fault-revive", daemon=True)
        thread.start()
        return thread

    def execution_pids(self, tool: str | None = None) -> list[int]:
        """The pid of the process behind each recorded execution, in order."""
        return [
            int(r["pid"])
            for r in self._files.execution_records()
            if (tool is None or r.get("tool") == tool) and isinstance(r.get("pid"), int)
        ]

    def counter(self, key: str = "default") -> int:
        """The current value of the ``incr`` counter ``key`` (0 if never incremented)."""
        return self._files.counter(key)

    def stored(self, key: str) -> str | None:
        """The value last written by the ``put`` tool under ``key``."""
        return self._files.get(key)

    def logging_levels(self) -> list[tuple[int, str]]:
        """Every ``logging/setLevel`` the server answered, in order: ``(pid of the process, level)``."""
        return self._requests("logging/setLevel")

    def subscriptions(self) -> list[tuple[int, str]]:
        """Every ``resources/subscribe`` the server answered, in order: ``(pid of the process, uri)``."""
        return self._requests("resources/subscribe")

    def unsubscriptions(self) -> list[tuple[int, str]]:
        """Every ``resources/unsubscribe`` the server answered, in order: ``(pid of the process, uri)``."""
        return self._requests("resources/unsubscribe")

    def _requests(self, method: str) -> list[tuple[int, str]]:
        return [
            (int(r["pid"]), str(r.get("value")))
            for r in self._files.request_records(method)
            if isinstance(r.get("pid"), int)
        ]

    def controls(self) -> dict[str, Any]:
        """The current control file (what the server will read on its next request)."""
        return self._files.read_controls()

    @property
    def kill_armed(self) -> bool:
        """True while a kill armed by :meth:`kill_during_next_call` has not been consumed."""
        return self._files.read_controls().get("kill_next_call") is not None

    # ------------------------------------------------------------------ controls
    def expire_sessions(self) -> int:
        """Expire every session issued so far (like an idle expiry); returns the new generation."""
        controls = self._files.update_controls(
            lambda c: c.__setitem__("expire_sessions", int(c.get("expire_sessions", 0)) + 1)
        )
        return int(controls["expire_sessions"])

    def kill_during_next_call(self, tool: str | None = None, when: Literal["after", "before"] = "after") -> None:
        """SIGKILL the server on the next execution of ``tool`` (any tool if None); one-shot.

        ``"after"``: the tool runs (execution recorded, side effect done), then the process dies
        before answering: the call is lost in flight and the write DID happen. ``"before"``: the
        process dies on arrival, before the tool runs.
        """
        if when not in ("after", "before"):
            raise ValueError(f"when must be 'after' or 'before', not {when!r}")
        self._files.update_controls(lambda c: c.__setitem__("kill_next_call", {"tool": tool, "when": when}))

    def kill_during_next_handshake(self) -> None:
        """SIGKILL the server as it answers the next ``initialize`` (HTTP only); one-shot.

        The response headers reach the client, the body never does: a client that was reconnecting
        has its handshake lost in flight (what a redeploy does to a client that reconnects too early).
        """
        if self.transport != "http":
            raise FaultServerError("kill_during_next_handshake() needs an HTTP fault server")
        self._files.update_controls(lambda c: c.__setitem__("kill_next_handshake", True))

    def drop_next_handshake_answer(self) -> None:
        """Answer the next ``initialize`` with the event stream's headers, then end it cleanly with no
        event (HTTP only); one-shot. The server lives on.

        What a server shutting down gracefully does to a client that reconnects too early: the
        handshake was accepted and its answer never comes, and nothing broke.
        """
        if self.transport != "http":
            raise FaultServerError("drop_next_handshake_answer() needs an HTTP fault server")
        self._files.update_controls(lambda c: c.__setitem__("drop_next_handshake_answer", True))

    def throttle(self, status: int = 429, retry_after: float | str | None = None, count: int = 1) -> None:
        """Refuse the next ``count`` requests that are not a handshake with HTTP ``status`` (429 or 503)
        and ``Retry-After: retry_after`` (seconds or an HTTP date; ``None``: no header). They never run.
        ``health()["throttled"]`` counts the refusals of this process."""
        if status not in (429, 503):
            raise ValueError(f"status must be 429 or 503, not {status!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, not {count!r}")
        if self.transport != "http":
            raise FaultServerError("throttle() needs an HTTP fault server")
        value = (
            None
            if retry_after is None
            else (f"{retry_after:g}" if isinstance(retry_after, (int, float)) else retry_after)
        )
        self._files.update_controls(
            lambda c: c.__setitem__("throttle", {"status": status, "retry_after": value, "count": count})
        )

    def reject_calls(self, code: int, message: str = "", data: Any = None, status: int = 400, count: int = 1) -> None:
        """Answer the next ``count`` ``tools/call`` requests that are not a handshake with HTTP ``status``
        and the JSON-RPC error ``code`` (``-32020`` HeaderMismatch, ``-32022`` UnsupportedProtocolVersion
        with ``data={"supported": [...]}``). They never run; ``health()["rejected_calls"]`` counts them."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, not {count!r}")
        if self.transport != "http":
            raise FaultServerError("reject_calls() needs an HTTP fault server")
        armed = {"status": status, "code": code, "message": message, "data": data, "count": count}
        self._files.update_controls(lambda c: c.__setitem__("reject_call", armed))

    def answer_stale_with_401(self, on: bool = True) -> None:
        """Answer stale sessions with 401 ``invalid_token`` instead of the stale style (a gateway that
        dropped an idle session and blames the credentials). ``health()["unauthorized"]`` counts them."""
        self._files.update_controls(lambda c: c.__setitem__("stale_401", True) if on else c.pop("stale_401", None))

    def refuse_credentials(self, on: bool = True) -> None:
        """Answer every request 401 ``invalid_token`` (bad credentials), until called with ``False``."""
        self._files.update_controls(
            lambda c: c.__setitem__("refuse_credentials", True) if on else c.pop("refuse_credentials", None)
        )

    def require_token(self, token: str | None) -> None:
        """Answer 401 ``invalid_token`` to every request whose ``Authorization`` is not ``Bearer <token>``
        (a token that expired or was rotated), until called with ``None``. Counted in
        ``health()["unauthorized"]``; the token is never logged."""
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("token must be a non-empty str or None")
        self._files.update_controls(
            lambda c: c.__setitem__("require_token", token) if token is not None else c.pop("require_token", None)
        )

    def set_stale_style(self, style: str) -> None:
        """Change how stale session ids are answered, at run time (see ``STALE_STYLES``)."""
        if style not in STALE_STYLES:
            raise ValueError(f"style must be one of {STALE_STYLES}, not {style!r}")
        self._files.update_controls(lambda c: c.__setitem__("stale_style", style))

    def delay(self, tool: str | None, seconds: float) -> None:
        """Make every execution of ``tool`` (any tool if None) wait ``seconds`` first (0 removes it)."""
        if seconds < 0:
            raise ValueError("seconds must be >= 0")

        def change(c: dict[str, Any]) -> None:
            if seconds:
                c["delay"] = {"tool": tool, "seconds": float(seconds)}
            else:
                c.pop("delay", None)

        self._files.update_controls(change)

    def offer_extra_tool(self, on: bool = True) -> None:
        """Make every server process started from now on offer one more tool, ``extra`` (read-only), or
        no longer (``on=False``). Read at start only: the running process keeps its tools, so the tool
        list changes across the next :meth:`restart` (over stdio: the next spawn)."""

        def change(c: dict[str, Any]) -> None:
            if on:
                c["offer_extra_tool"] = True
            else:
                c.pop("offer_extra_tool", None)

        self._files.update_controls(change)

    def offer_confirm_tool(self, on: bool = True) -> None:
        """Make every server process started from now on (mcp 2.x) offer ``confirm_put(key, value)``: its
        first round asks the client to confirm (the 2026-07-28 protocol's ``input_required`` with a
        ``requestState`` sealed by that process), the round with the answer stores the value. A restart
        between the rounds makes the answer's round fail ``-32602 "Invalid or expired requestState"``.
        ``counter("confirm_asked")`` counts first rounds. Read at start only, like :meth:`offer_extra_tool`."""
        self._files.update_controls(
            lambda c: c.__setitem__("offer_confirm_tool", True) if on else c.pop("offer_confirm_tool", None)
        )

    def clear_controls(self) -> None:
        """Disarm kills and delays, restore the start-up stale style and stop offering the extra tool
        (from the next start on).

        The expiry generation is kept: sessions expired once stay expired.
        """

        def change(c: dict[str, Any]) -> None:
            generation = c.get("expire_sessions")
            c.clear()
            if generation:
                c["expire_sessions"] = generation

        self._files.update_controls(change)

    # ------------------------------------------------------------------ stdio
    def stdio_parameters(self) -> StdioParameters:
        """The command, arguments and environment that spawn this server over stdio."""
        if self.transport != "stdio":
            raise FaultServerError("stdio_parameters() needs FaultServer(transport='stdio')")
        args = self._command(0)[1:]
        return StdioParameters(command=self.python, args=args, env=_child_env())

    def stdio_server_parameters(self) -> Any:
        """The same as an ``mcp.StdioServerParameters`` (imports ``mcp`` on call)."""
        import mcp

        params = self.stdio_parameters()
        return mcp.StdioServerParameters(command=params.command, args=list(params.args), env=dict(params.env))
