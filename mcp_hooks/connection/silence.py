"""``call_timeout``: a tool call given up once it has been silent (no answer, no progress notification
for it) for so long, and the server told so where the SDK does not tell it itself."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..sdk import MCP_MAJOR

log = logging.getLogger("mcp_hooks.connect")

#: The key under which ``call_tool(call_timeout=...)`` travels to ``_attempt`` (never passed to the SDK).
_CALL_TIMEOUT = "__mcp_hooks_call_timeout__"


def _check_call_timeout(where: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{where}: option 'call_timeout' must be a positive number of seconds, got {value!r}")


def _uncancel(task: asyncio.Task[Any]) -> None:
    """Take back the cancellation of ``task`` the silence limit made, turned into an error (Python 3.11+;
    a no-op before)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


class _Silence:
    """Cancels a call's task once the call has been silent (no answer, no progress notification for it)
    for ``limit`` seconds; every progress notification starts the count again."""

    def __init__(self, task: asyncio.Task[Any], limit: float) -> None:
        self.task = task
        self.limit = limit
        self.fired = False
        self.session: Any = None  # the SDK session the call is sent on, told when the call is given up
        self.callback: Any = None  # the progress callback handed to the SDK for this call
        self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(limit, self._fire)

    def _fire(self) -> None:
        self.fired = True
        if self.session is not None:
            _cancel_request(self.session, self.callback, f"no answer and no progress for {self.limit:g} s")
        self.task.cancel()

    def heard(self) -> None:
        if not self.fired:
            self._timer.cancel()
            self._timer = self._loop.call_later(self.limit, self._fire)

    def stop(self) -> None:
        self._timer.cancel()

    def listening(self, user: Callable[..., Awaitable[None]] | None) -> Callable[..., Awaitable[None]]:
        """A progress callback for the SDK that restarts the count, then calls the user's own."""

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            self.heard()
            if user is not None:
                await user(progress, total, message)

        self.callback = on_progress
        return on_progress


#: Courtesy ``notifications/cancelled`` being sent (kept so they are not collected half-way).
_cancelling: set[asyncio.Task[Any]] = set()


def _cancel_request(session: Any, callback: Any, reason: str) -> None:
    """Tell the server that a call given up for silence is no longer awaited, so it can stop the tool.

    mcp 2.x sends ``notifications/cancelled`` itself for a request its caller abandons; mcp 1.x sends
    nothing. Its request id is found by the call's progress callback (mcp 1.x keys them by the request
    id, which is also the progress token), read before the cancellation removes it."""
    if MCP_MAJOR >= 2:
        return
    callbacks = getattr(session, "_progress_callbacks", None)
    if not isinstance(callbacks, dict):
        return
    request_id = next((rid for rid, cb in callbacks.items() if cb is callback), None)
    if request_id is None:
        return
    types: Any = importlib.import_module("mcp.types")  # the mcp 1.x names (2.x returned above)
    note = types.ClientNotification(
        types.CancelledNotification(params=types.CancelledNotificationParams(requestId=request_id, reason=reason))
    )

    async def send() -> None:
        try:
            await asyncio.wait_for(session.send_notification(note), 2.0)
        except Exception:  # a courtesy: the call has its answer (CallTimeout) whatever happens here
            log.debug("mcp_hooks: could not send notifications/cancelled", exc_info=True)

    task = asyncio.ensure_future(send())
    _cancelling.add(task)
    task.add_done_callback(_cancelling.discard)
