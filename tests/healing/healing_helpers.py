"""Helpers for the healing tests: a raw SDK session opened the SDK's documented way, and a hook recorder."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import mcp
from mcp.client.streamable_http import streamable_http_client

import mcp_hooks
from mcp_hooks.healing.messages import MCP_MAJOR
from mcp_hooks.testing.events import RecoveryEvents as Events

__all__ = [
    "MCP_MAJOR",
    "Events",
    "alive",
    "down_for_a_deadline",
    "error_text",
    "outcome",
    "raw_session",
    "raw_stdio_session",
    "text",
    "wait_for",
]

# Bound before instrument() runs, as a framework module would: the healing must reach this name too.
_STREAMABLE_HTTP_CLIENT = streamable_http_client


@contextlib.asynccontextmanager
async def raw_session(url: str, **session_kwargs: Any) -> AsyncIterator[Any]:
    """A ``ClientSession`` over the SDK's streamable-HTTP transport, initialized: the SDK's documented way."""
    async with (
        _STREAMABLE_HTTP_CLIENT(url) as streams,
        mcp.ClientSession(streams[0], streams[1], **session_kwargs) as session,
    ):
        await session.initialize()
        yield session


def text(result: Any) -> str:
    assert not getattr(result, "isError", False) and not getattr(result, "is_error", False), result
    return str(result.content[0].text)


def error_text(error: BaseException) -> str:
    """The message of the SDK's error (``McpError`` / ``MCPError``) for a JSON-RPC error answer."""
    inner = getattr(error, "error", None)
    return str(getattr(inner, "message", None) or error)


def outcome(error: BaseException) -> tuple[str, str] | None:
    """``(outcome, reason)`` of an error answer mcp-hooks made up (its ``data["mcp-hooks"]``), else ``None``."""
    data = getattr(getattr(error, "error", None), "data", None)
    ours = data.get("mcp-hooks") if isinstance(data, dict) else None
    return (ours["outcome"], ours["reason"]) if isinstance(ours, dict) else None


async def wait_for(predicate: Any, timeout: float = 10.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())


@contextlib.asynccontextmanager
async def raw_stdio_session(params: Any, **session_kwargs: Any) -> AsyncIterator[Any]:
    """A ``ClientSession`` over the SDK's stdio transport (the child spawned by the SDK), initialized."""
    from mcp.client.stdio import stdio_client

    async with (
        stdio_client(params) as streams,
        mcp.ClientSession(streams[0], streams[1], **session_kwargs) as session,
    ):
        await session.initialize()
        yield session


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.contextmanager
def registered(plugin: Any, name: str) -> Iterator[None]:
    """``plugin`` on the process-wide plugin manager for the block (a veto the test needs)."""
    pm = mcp_hooks.plugin_manager()
    pm.register(plugin, name=name)
    try:
        yield
    finally:
        pm.unregister(name=name)


async def down_for_a_deadline(server: Any, session: Any, within: float = 20) -> None:
    """Warm ``session``, kill its server (it stays down) and wait out the first call, which is given up as
    unreachable once the rebuild deadline passes (the circuit breaker opens then)."""
    import pytest

    text(await session.call_tool("echo", {"text": "warm"}))
    server.kill()
    with pytest.raises(Exception) as caught:
        await asyncio.wait_for(session.call_tool("echo", {"text": "down"}), within)
    assert "unreachable" in error_text(caught.value), repr(caught.value)
