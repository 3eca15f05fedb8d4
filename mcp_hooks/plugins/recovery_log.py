"""The built-in ``recovery-log`` plugin: one INFO line per rebuild and per give-up, whoever led them.

Logger ``mcp_hooks.recovery``. A rebuild is logged when it ends (server, cause, generation, seconds);
a call given up is logged with why (an uncertain outcome, attempts or deadline spent, a server that
stays down). Every text passes :func:`mcp_hooks.redact.text`: no credential reaches the log. The
parts log what they do at DEBUG under their own loggers (``mcp_hooks.engine``, ``mcp_hooks.connect``,
``mcp_hooks.healing``, ...). Block it with ``MCP_HOOKS_DISABLE=recovery-log``.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ..classify import classify
from ..hookspecs import hookimpl
from ..redact import text

if TYPE_CHECKING:
    from ..calls import ToolCall

log = logging.getLogger("mcp_hooks.recovery")

_causes: dict[Any, str] = {}
_lock = threading.Lock()
_LIMIT = 1024


def _key(call: ToolCall) -> Any:
    return id(call.owner) if call.owner is not None else call.server


def _cause(error: BaseException) -> str:
    verdict = classify(error)
    return text(verdict.reason) if verdict.is_session_loss and verdict.reason else text(f"{type(error).__name__}")


@hookimpl
def on_reconnect(call: ToolCall, error: BaseException) -> None:
    with _lock:
        if len(_causes) >= _LIMIT:
            _causes.pop(next(iter(_causes)))
        _causes[_key(call)] = _cause(error)


@hookimpl
def on_rebuilt(call: ToolCall, error: BaseException | None, seconds: float) -> None:
    with _lock:
        cause = _causes.pop(_key(call), "unknown")
    generation = getattr(call.owner, "rebuilds", None)
    if not isinstance(generation, int):
        generation = getattr(call.owner, "reconnects", None)
    server = text(call.server)
    if error is None:
        log.info(
            "MCP session to %s rebuilt in %.2f s (generation %s; lost: %s)",
            server,
            seconds,
            generation if isinstance(generation, int) else "?",
            cause,
        )
    else:
        log.info("MCP session to %s not rebuilt after %.2f s (lost: %s): %s", server, seconds, cause, text(error))


@hookimpl
def on_giveup(call: ToolCall, error: BaseException) -> None:
    what = f"tool {call.tool!r}" if call.tool else "a request"
    log.info("gave up on %s to MCP server %s (attempt %d): %s", what, text(call.server), call.attempt, text(error))
