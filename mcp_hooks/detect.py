"""``is_session_expired(error)``: the hooks' verdict, for code that handles errors itself."""

from __future__ import annotations

import pluggy

from .calls import ToolCall
from .classify import is_interrupted
from .manager import decide, plugin_manager


def is_session_expired(
    error: BaseException,
    *,
    call: ToolCall | None = None,
    plugin_manager_: pluggy.PluginManager | None = None,
) -> bool:
    """``True`` when the hooks (``should_reconnect``) say the session or its connection is gone and must
    be rebuilt. Every spelling the built-in plugin knows counts, and so does every installed plugin.
    Cancellation and an ``InterruptedError`` anywhere in the error graph are never session loss."""
    if not isinstance(error, Exception) or is_interrupted(error):
        return False
    pm = plugin_manager_ if plugin_manager_ is not None else plugin_manager()
    if call is None:
        call = ToolCall(server="unknown", framework="unknown")
    return decide(pm, "should_reconnect", call=call, error=error) is True
