"""hermes' own rebuild, driven by the shim: on hermes' MCP loop, the server's connection task is asked for
a new session (the signal hermes' own recovery sends) and the wait for it wakes on hermes' ready event
instead of polling; a server still down is waited for until it takes connections, so hermes' first
attempt succeeds instead of falling into its backoff and parking the server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
from typing import Any

log = logging.getLogger("mcp_hooks.hermes")


class ReconnectFailed(ConnectionError):
    """hermes could not give the server a new session in time (the server is down, or hermes parked it)."""


async def _rebuild(mod: Any, server: Any, timeout: float) -> bool:
    """On hermes' MCP loop: ask ``server``'s connection task for a new session and wait for it."""
    ready = server._ready
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    old = server.session
    parked = old is None and (server._error is not None or not server._registered_tool_names)
    if ready.is_set() and (old is not None or parked):
        # A live session, or a parked server. First wait until the server takes connections again:
        # hermes' first attempt then succeeds, instead of falling into its 1-2-4 s backoff, after
        # which it parks the server and drops its tools. A server still down is left alone (the next
        # call tries again). Then the signal hermes' own _signal_reconnect_and_wait sends.
        if not await _until_reachable(server, deadline):
            raise ReconnectFailed(
                f"MCP server {server.name!r} did not accept connections within {timeout:g} s; not reconnected"
            )
        old = server.session
        ready.clear()
        server._reconnect_event.set()
    else:
        # The connection task is connecting already (or sleeping before its next attempt, which does
        # not listen for the signal): wait for the session it makes.
        old = None
    while True:
        session = server.session
        if ready.is_set():
            if session is not None and session is not old:
                break
            if session is None and server._error is not None:
                raise ReconnectFailed(
                    f"hermes could not reconnect MCP server {server.name!r}: "
                    f"{type(server._error).__name__}: {server._error}"
                ) from server._error
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise ReconnectFailed(f"hermes did not reconnect MCP server {server.name!r} within {timeout:g} s")
        if not ready.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ready.wait(), remaining)
        else:
            await asyncio.sleep(min(0.02, remaining))
    _restore_tools(mod, server)
    return True


async def _until_reachable(server: Any, deadline: float) -> bool:
    """Wait (at most until ``deadline``) until the HTTP server of ``server`` accepts TCP connections.

    ``True`` at once for stdio servers and for URLs it cannot read: hermes then simply tries."""
    url = server._config.get("url") if isinstance(getattr(server, "_config", None), dict) else None
    if not isinstance(url, str):
        return True
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return True
    if not host:
        return True
    loop = asyncio.get_running_loop()
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), min(1.0, remaining))
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
            continue
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True


def _restore_tools(mod: Any, server: Any) -> None:
    """Publish the tools again when hermes dropped them while the server was parked.

    hermes deregisters a parked server's tools, and a revival through its initial-connection path
    never registers them again (``_register_discovered_tools_if_needed`` runs before ``_ready`` is
    set). Uses hermes' own ``_register_server_tools``.
    """
    if server._registered_tool_names or not server._tools:
        return
    try:
        server._registered_tool_names = mod._register_server_tools(server.name, server, server._config)
    except Exception:
        log.exception("mcp_hooks.hermes: could not register the tools of %r again", server.name)
        return
    log.info("mcp_hooks.hermes: registered %d tool(s) of %r again", len(server._registered_tool_names), server.name)


async def _await_session(server: Any, old: Any, timeout: float) -> bool:
    def usable() -> bool:
        ready = getattr(server, "_ready", None)
        session = getattr(server, "session", None)
        return session is not None and session is not old and (ready is None or ready.is_set())

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not usable():
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        ready = getattr(server, "_ready", None)
        if ready is not None and not ready.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ready.wait(), remaining)
        else:
            await asyncio.sleep(min(0.02, remaining))
    return True
