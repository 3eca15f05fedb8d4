"""``connect()``: an MCP session that survives whatever happens to the session underneath.

The parts, each a file:

- :mod:`.session`: :class:`ResilientSession`, the ``ClientSession`` call surface; what the healing relay
  answers in place of a request it gave up, raised as the typed errors; keepalive;
- :mod:`.owner`: the owner task that opens the one SDK session over the healing relay
  (:mod:`mcp_hooks.healing`, which rebuilds beneath it after every loss) and holds it;
- :mod:`.silence`: ``call_timeout``, a call given up once silent for too long;
- :mod:`.listen`: ``listen()``, a 2026-07-28 ``subscriptions/listen`` stream, sent again by the relay.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import pluggy

from ..engine import DEFAULT_DEADLINE, DEFAULT_MAX_RECONNECTS
from ..healing.streams import server_key
from ..sdk import MCP_MAJOR
from .owner import BREAKER_AFTER, _Options
from .session import ResilientSession
from .silence import _check_call_timeout

__all__ = ["ResilientSession", "connect", "MCP_MAJOR"]


@contextlib.asynccontextmanager
async def connect(
    target: Any,
    *,
    headers: Mapping[str, str] | None = None,
    auth: Any = None,
    timeout: float = 30.0,
    sse_read_timeout: float = 300.0,
    read_timeout_seconds: float | None = None,
    mode: str = "auto",
    max_reconnects: int = DEFAULT_MAX_RECONNECTS,
    deadline: float = DEFAULT_DEADLINE,
    replay_safe_tools: Iterable[str] = (),
    heal: bool = True,
    keepalive: float | None = None,
    breaker_after: float | None = BREAKER_AFTER,
    call_timeout: float | None = None,
    client_info: Any = None,
    plugin_manager: pluggy.PluginManager | None = None,
    **session_kwargs: Any,
) -> AsyncIterator[ResilientSession]:
    """Open an MCP session that survives session loss.

    ``async with mcp_hooks.connect("http://127.0.0.1:8000/mcp") as session:
    await session.call_tool("echo", {"text": "hi"})``

    :param target: a streamable-HTTP URL, or an ``mcp.StdioServerParameters``.
    :param headers: HTTP headers for every request (for example authorization; never logged).
    :param auth: an ``httpx.Auth`` (``httpx2.Auth`` under mcp 2.x), passed to the HTTP client.
    :param timeout: HTTP connect/write timeout; ``sse_read_timeout`` the read timeout of streams, and how
        long a request may wait for one of the HTTP client's 100 pooled connections.
    :param read_timeout_seconds: the SDK's per-request timeout (none by default: a call lost in flight
        is settled by watching the connection, not by cutting slow tools short).
    :param mode: mcp 2.x only: ``"auto"`` (the session-less 2026-07-28 protocol where the server
        speaks it), ``"legacy"`` (always the initialize handshake), or a version.
    :param max_reconnects: how often one call may be sent again after losses (3); ``deadline``: seconds a
        call waits for the session to be rebuilt while the server cannot be reached (30).
    :param replay_safe_tools: tool names always safe to replay.
    :param heal: rebuild in the background as soon as the transport sees the session lost (default on).
    :param breaker_after: with ``heal``, once no session could be opened for this many seconds (15), calls
        fail at once with :class:`~mcp_hooks.CircuitOpen` ("unreachable since ...") instead of waiting
        their deadline, until the background heal reaches the server again; ``None``: never.
    :param call_timeout: seconds a tool call may stay silent (no answer, no progress notification for it)
        before it is given up with :class:`~mcp_hooks.CallTimeout`; every progress notification the server
        sends for the call starts the count again, so a slow tool that reports progress is never cut short.
        The session is kept and nothing is sent again. ``None`` (default): no limit. Per call:
        ``call_tool(..., call_timeout=...)``.
    :param keepalive: seconds between pings while idle (opt-in; below the server's idle timeout);
        falls back to ``list_tools`` when the server answers ping with -32601.
    :param session_kwargs: passed to ``ClientSession`` (1.x) or ``mcp.Client`` (2.x): callbacks etc.
    """
    if not isinstance(target, str):
        if type(target).__name__ != "StdioServerParameters":
            raise TypeError(
                f"connect: target must be a streamable-HTTP URL or mcp.StdioServerParameters, got {target!r}"
            )
    elif not target.startswith(("http://", "https://")):
        raise ValueError(f"connect: target URL must start with http:// or https://, got {server_key('http', target)!r}")
    if MCP_MAJOR < 2 and mode != "auto":
        raise ValueError("connect: option 'mode' needs mcp 2.x (mcp 1.x always uses the initialize handshake)")
    if keepalive is not None and (isinstance(keepalive, bool) or not keepalive > 0):
        raise ValueError(f"connect: option 'keepalive' must be a positive number of seconds, got {keepalive!r}")
    from .. import checks
    from ..options import build_policy

    checks.breaker_after("connect", breaker_after)
    if call_timeout is not None:
        _check_call_timeout("connect", call_timeout)

    build_policy(
        "connect",
        {
            "max_reconnects": max_reconnects,
            "deadline": deadline,
            "replay_safe_tools": replay_safe_tools,
            "plugin_manager": plugin_manager,
        },
    )
    options = _Options(
        headers=headers,
        auth=auth,
        timeout=timeout,
        sse_read_timeout=sse_read_timeout,
        read_timeout_seconds=read_timeout_seconds,
        mode=mode,
        heal=heal,
        keepalive=keepalive,
        breaker_after=breaker_after,
        call_timeout=call_timeout,
        client_info=client_info,
        session_kwargs=session_kwargs,
    )
    session = ResilientSession(
        target,
        options,
        max_reconnects=max_reconnects,
        deadline=deadline,
        replay_safe_tools=replay_safe_tools,
        plugin_manager=plugin_manager,
    )
    await session._start()
    try:
        yield session
    finally:
        await session._close()
