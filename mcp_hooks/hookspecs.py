"""The hook specifications: what a plugin may decide and observe.

Decision hooks (``should_reconnect``, ``is_replay_safe``, ``reconnect``, ``retry_refused``,
``open_circuit``) are
``firstresult``: the first implementation that returns something other than ``None`` decides. They
are plain functions, free of side effects; the engine does the sleeping and the reconnecting.
Observer hooks (``on_*``) are called on every implementation, one at a time; an observer that raises
is logged and cannot change a call's
outcome. A decision hook that raises is logged and counts as no opinion.

Every hook receives the :class:`~mcp_hooks.ToolCall` of the failing call. Implementations may accept
any subset of the arguments, as usual with pluggy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .calls import ToolCall

PROJECT_NAME = "mcp_hooks"

#: Marks the hook specifications of this module.
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a plugin's implementation of a hook: ``@hookimpl`` or ``@hookimpl(tryfirst=True)``.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

#: Hooks whose first non-``None`` answer decides.
DECISION_HOOKS = ("should_reconnect", "is_replay_safe", "reconnect", "retry_refused", "open_circuit")
#: Hooks called on every implementation, for logs, metrics and traces.
OBSERVER_HOOKS = ("on_tool_error", "on_reconnect", "on_rebuilt", "on_recovered", "on_giveup")


@hookspec
def on_tool_error(call: ToolCall, error: BaseException) -> None:
    """Observe every failed attempt of a tool call, before anything is decided.

    Called once per failed attempt (``call.attempt`` counts them, from 1), including failures that
    are not session loss and will be re-raised unchanged. Not called for cancellation. All
    implementations run; one that raises is logged and skipped.

    Example::

        @hookimpl
        def on_tool_error(call, error):
            metrics.increment("mcp.tool_error", tags={"server": call.server, "tool": call.tool})
    """


@hookspec(firstresult=True)
def should_reconnect(call: ToolCall, error: BaseException) -> bool | None:
    """Decide whether ``error`` means the session (or its connection) is gone and must be rebuilt.

    Return ``True`` to reconnect and retry, ``False`` to veto, ``None`` for no opinion. The built-in
    ``session-expiry`` plugin answers last (``trylast``), so any plugin can add a case or veto one.
    When nobody answers ``True`` the error is re-raised unchanged. An ``InterruptedError`` anywhere in
    the error graph and cancellation are never recovered, whatever a plugin answers.

    Example::

        @hookimpl
        def should_reconnect(call, error):
            if "gateway lost your session" in str(error):
                return True
            return None
    """


@hookspec(firstresult=True)
def is_replay_safe(call: ToolCall, error: BaseException) -> bool | None:
    """Decide whether the call may be sent again after ``error``, once the session is rebuilt.

    Asked after a successful reconnect. The built-in ``replay-safety`` plugin (``trylast``) says yes
    when the server refused the request before running it (session not found or terminated,
    connection refused) and otherwise only for tools annotated ``readOnlyHint`` or ``idempotentHint``.
    When the answer is not ``True`` the engine raises :class:`~mcp_hooks.OutcomeUncertain` instead of
    replaying (the session stays healed for the next call). Tools named in the ``replay_safe_tools``
    option are replayed without asking.

    Example::

        @hookimpl
        def is_replay_safe(call, error):
            if call.tool in {"search", "fetch_page"}:
                return True
            return None
    """


@hookspec(firstresult=True)
def reconnect(call: ToolCall) -> Any:
    """Rebuild the session of ``call.owner`` (a framework's server or client object).

    Asked only when the wrapped function was given no ``reconnect`` option. Return something other
    than ``None`` (``True``, or an awaitable, which is awaited) when you handled it; return ``None``
    for objects you do not know. When nobody handles it the call is replayed as it is, which is right
    for frameworks that open a new session per call. Integrations implement this hook for their
    framework's objects; the engine makes it single-flight per owner.

    Example::

        @hookimpl
        def reconnect(call):
            if isinstance(call.owner, MyServer):
                return call.owner.restart()   # a coroutine: the engine awaits it
            return None
    """


@hookspec(firstresult=True)
def retry_refused(
    call: ToolCall, status: int, retry_after: float | None, remaining: float | None
) -> float | bool | None:
    """Decide whether a request the server refused with HTTP 429 or 503 is sent again, and when.

    The request never ran, so sending it again is always safe; the question is only whether it is worth
    waiting. ``retry_after`` is the server's ``Retry-After`` in seconds (an HTTP date is converted), or
    ``None`` without the header; ``remaining`` is how many seconds the request has left before whoever
    sent it gives up (``connect()``'s ``deadline``, counted from when the request was first sent), or
    ``None`` when that is not known (a plain SDK session); ``call.attempt`` is how many times it was
    sent. Return the seconds to wait before sending it again, ``False`` to hand the refusal to the caller
    now, ``None`` for no opinion. The built-in ``retry-after`` plugin (``trylast``) waits what the server
    asks when that fits in ``remaining`` (at most 10 s when ``remaining`` is unknown; otherwise it gives
    the refusal back at once, never waiting it out), jittered backoff without the header (never past
    ``remaining``), and at most 3 retries. An implementation may name only the arguments it needs.

    Example::

        @hookimpl
        def retry_refused(call, status, retry_after):
            if call.server.startswith("https://rate-limited.example"):
                return False     # let the caller decide
            return None
    """


@hookspec(firstresult=True)
def open_circuit(call: ToolCall, down_for: float, threshold: float | None) -> bool | None:
    """Decide whether calls to a server that could not be reached or rebuilt for ``down_for`` seconds fail
    at once (a circuit breaker) instead of each waiting out its deadline.

    Session loss alone never asks this: only a server that cannot be reached or rebuilt. ``call.server``
    is the server's key (``call.tool`` is ``None``); ``threshold`` is the configured wait
    (``connect(breaker_after=...)``, 15 s; ``instrument("mcp", breaker_after=...)``, by default the healing
    layer's rebuild deadline), or ``None`` where the user turned the breaker off. ``connect()`` asks each
    time a call would wait on the server; the healing layer asks when a rebuild has failed for its deadline.
    Return ``True`` to open it (calls fail at once with an error naming the server and since when; one
    probe at a time closes it), ``False`` to keep every call waiting for a rebuild, ``None`` for no opinion. The
    built-in ``circuit-breaker`` plugin (``trylast``) opens it once ``down_for`` reaches ``threshold``.

    Example::

        @hookimpl
        def open_circuit(call, down_for):
            if call.server == "http://batch-jobs.internal/mcp":
                return False     # these callers would rather wait
            return None
    """


@hookspec
def on_reconnect(call: ToolCall, error: BaseException) -> None:
    """Observe a session rebuild about to start, caused by ``error``.

    Called once per rebuild, by the call that leads it (concurrent calls that share the rebuild do
    not call it again). All implementations run; one that raises is logged and skipped.

    Example::

        @hookimpl
        def on_reconnect(call, error):
            log.warning("rebuilding MCP session to %s after %r", call.server, error)
    """


@hookspec
def on_rebuilt(call: ToolCall, error: BaseException | None, seconds: float) -> None:
    """Observe the end of a rebuild that ``on_reconnect`` announced: called exactly once for each.

    ``error`` is ``None`` when a new session answered, else why the rebuild was given up; ``seconds``
    is how long it took from ``on_reconnect``. ``call`` is the one ``on_reconnect`` received. All
    implementations run; one that raises is logged and skipped.

    Example::

        @hookimpl
        def on_rebuilt(call, error, seconds):
            metrics.histogram("mcp.rebuild.seconds", seconds, tags={"ok": error is None})
    """


@hookspec
def on_recovered(call: ToolCall) -> None:
    """Observe a call that failed and then succeeded after recovery.

    ``call.attempt`` is the attempt that succeeded (2 or more). All implementations run.

    Example::

        @hookimpl
        def on_recovered(call):
            metrics.increment("mcp.recovered", tags={"server": call.server})
    """


@hookspec
def on_giveup(call: ToolCall, error: BaseException) -> None:
    """Observe recovery giving up: attempts or deadline exhausted, or a replay refused as unsafe.

    ``error`` is what the caller is about to receive (the last real error, or an
    :class:`~mcp_hooks.OutcomeUncertain`). All implementations run.

    Example::

        @hookimpl
        def on_giveup(call, error):
            alerts.send(f"MCP server {call.server} did not recover: {error}")
    """
