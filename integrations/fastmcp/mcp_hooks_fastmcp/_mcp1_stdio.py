"""mcp 1.x: a request pending on a stdio session whose server died fails instead of hanging.

fastmcp 3.x runs a stdio session in a task of its own (``_stdio_transport_connect_task``), apart from
the client's session task that its calls watch. When the server process dies, mcp 1.x's ``stdio_client``
ends one of two ways, by a race:

- its stdout reader sees the end of the stream first: the session's receive loop ends and answers
  every pending request "Connection closed", and the shim rebuilds the session;
- its stdin writer fails first, writing a request to the dead process (``BrokenResourceError``, which
  it does not catch): the transport's task group fails and cancels the session, whose receive loop means
  to answer pending requests but awaits inside the scope being cancelled. The request then waits
  forever, and fastmcp never sees it: the task that died is not the one it watches.

This wrapper answers, when that task ends, every request still pending on its session with the SDK's own
"Connection closed" (:func:`mcp_hooks.healing.settle.fail_pending`), so both endings look the same to
the caller and the recovery engine: lost in flight, replayed only when safe.

Installed by the fastmcp integration under mcp 1.x only; ``remove()`` restores the original.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import mcp_hooks
from mcp_hooks.healing import settle

log = logging.getLogger("mcp_hooks.fastmcp")

MODULE = "fastmcp.client.transports.stdio"
FUNCTION = "_stdio_transport_connect_task"


async def _answer_when_done(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Wrapper of ``_stdio_transport_connect_task(..., session_future=...)``."""
    future = kwargs.get("session_future")
    try:
        return await wrapped(*args, **kwargs)
    finally:
        session = _session_of(future)
        if session is not None and (failed := settle.fail_pending(session)):
            log.debug("mcp_hooks: the stdio session ended with %d request(s) pending: answered", failed)


def _session_of(future: object) -> Any:
    """The ``ClientSession`` the task opened (its ``session_future``'s result), or ``None``."""
    if not isinstance(future, asyncio.Future) or not future.done() or future.cancelled():
        return None
    return None if future.exception() is not None else future.result()


#: The fix, wrapped in place by the fastmcp integration under mcp 1.x (not found elsewhere: skipped).
PATCH = mcp_hooks.Patch(MODULE, FUNCTION, _answer_when_done, required=False, owner="mcp_hooks.fastmcp")


def installed() -> bool:
    return PATCH.applied
