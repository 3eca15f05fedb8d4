"""Built-in plugin ``session-expiry``: is the session gone? Answers last, so any plugin can add or veto."""

from __future__ import annotations

from ..calls import ToolCall
from ..classify import Loss, classify
from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def should_reconnect(call: ToolCall, error: BaseException) -> bool | None:
    """``True`` for every spelling of session loss :func:`~mcp_hooks.classify` knows; ``False`` when
    the user interrupted; otherwise no opinion (which means: do not reconnect)."""
    verdict = classify(error)
    if verdict.loss is Loss.INTERRUPTED:
        return False
    if verdict.is_session_loss:
        return True
    return None
