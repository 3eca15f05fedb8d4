"""Shared by the multi-round-trip tests of ``connect()`` and of the healing layer (2026-07-28 protocol)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any


def restarting_on(server: Any, times: int) -> tuple[Any, list[int]]:
    """An elicitation callback that restarts the server the first ``times`` times it is asked, then confirms
    (the kit's ``confirm_put``); the list counts how often it was asked."""
    import mcp_types

    asked: list[int] = []

    async def on_elicit(context: Any, params: Any) -> Any:
        asked.append(1)
        if len(asked) <= times:
            await asyncio.to_thread(server.restart, signal.SIGTERM)
        return mcp_types.ElicitResult(action="accept", content={"ok": True})

    return on_elicit, asked
