"""``instrument("mcp")`` / ``uninstrument("mcp")``: whatever the import order, idempotent, exactly undone,
and never stacked under ``connect()``, which heals by its own means."""

from __future__ import annotations

import asyncio
import importlib
import signal
import sys
import types
from typing import Any

import healing_helpers
import mcp.client.stdio
import mcp.client.streamable_http
import pytest
from healing_helpers import Events, error_text, raw_session, text

import mcp_hooks

pytestmark = pytest.mark.timeout(90)

# Held in a dict: instrument() replaces every module-level name bound to the SDK's function (aliases too).
SDK = {"http": mcp.client.streamable_http.streamable_http_client, "stdio": mcp.client.stdio.stdio_client}
ORIGINAL_HTTP = SDK["http"]  # an alias, as a framework might bind it


def _healed(function: Any) -> bool:
    return getattr(function, "__mcp_hooks_healed__", None) is not None


def test_instrument_reaches_names_bound_before_it_and_uninstrument_restores_them() -> None:
    assert healing_helpers._STREAMABLE_HTTP_CLIENT is SDK["http"]
    send_request = mcp.ClientSession.__dict__.get("send_request")  # wrapped too (healing/sdk_session.py)
    try:
        assert mcp_hooks.instrument("mcp") == {"mcp": True}
        assert mcp_hooks.instrument("mcp") == {"mcp": True}  # twice is harmless
        assert _healed(mcp.client.streamable_http.streamable_http_client)
        assert healing_helpers._STREAMABLE_HTTP_CLIENT is mcp.client.streamable_http.streamable_http_client
        assert mcp.client.streamable_http.streamable_http_client.__mcp_hooks_healed__ is SDK["http"]
        assert ORIGINAL_HTTP is mcp.client.streamable_http.streamable_http_client  # the alias too
        assert _healed(mcp.client.stdio.stdio_client)
        # mcp 1.x: ClientSession inherits BaseSession's
        original = send_request if send_request is not None else mcp.ClientSession.__mro__[1].send_request
        assert mcp.ClientSession.__dict__["send_request"].__wrapped__ is original
        assert mcp_hooks.integrations()["mcp"].enabled
    finally:
        mcp_hooks.uninstrument("mcp")
        mcp_hooks.uninstrument("mcp")
    assert mcp.client.streamable_http.streamable_http_client is SDK["http"]
    assert healing_helpers._STREAMABLE_HTTP_CLIENT is SDK["http"]
    assert ORIGINAL_HTTP is SDK["http"]
    assert mcp.client.stdio.stdio_client is SDK["stdio"]
    assert mcp.ClientSession.__dict__.get("send_request") is send_request
    assert not mcp_hooks.integrations()["mcp"].enabled


def test_instrument_without_names_includes_mcp_and_unknown_names_are_refused() -> None:
    try:
        assert mcp_hooks.instrument()["mcp"] is True
    finally:
        mcp_hooks.uninstrument()
    with pytest.raises(ValueError, match="'no-such-thing'"):
        mcp_hooks.instrument("no-such-thing")


def test_a_module_imported_while_on_follows_uninstrument() -> None:
    try:
        mcp_hooks.instrument("mcp")
        late = types.ModuleType("late_framework")
        exec("from mcp.client.streamable_http import streamable_http_client", late.__dict__)
        sys.modules["late_framework"] = late
        assert _healed(late.streamable_http_client)
    finally:
        mcp_hooks.uninstrument("mcp")
        sys.modules.pop("late_framework", None)
    # it still holds the replacement, which now hands every call to the SDK's own function
    sdk_module = importlib.import_module("mcp.client.streamable_http")
    assert sdk_module.streamable_http_client is SDK["http"]
    cm = late.streamable_http_client("http://127.0.0.1:9/mcp")
    assert cm.gen.__qualname__ == "streamable_http_client"  # the SDK's own generator, not the relay's


async def test_a_session_opened_after_uninstrument_is_the_sdks_own(mcp_fault_server_factory: Any) -> None:
    server = mcp_fault_server_factory(legacy_only=True)
    mcp_hooks.instrument("mcp")
    mcp_hooks.uninstrument("mcp")
    async with raw_session(server.url) as session:
        text(await session.call_tool("echo", {"text": "x"}))
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        with pytest.raises(Exception) as caught:
            await asyncio.wait_for(session.call_tool("echo", {"text": "y"}), 20)
        assert "session" in error_text(caught.value).lower()


async def test_connect_is_not_healed_twice(mcp_fault_server_factory: Any, events: Events) -> None:
    server = mcp_fault_server_factory(legacy_only=True)
    mode = {"mode": "legacy"} if healing_helpers.MCP_MAJOR >= 2 else {}
    try:
        mcp_hooks.instrument("mcp")
        async with mcp_hooks.connect(server.url, **mode) as session:
            text(await session.call_tool("echo", {"text": "x"}))
            await asyncio.to_thread(server.restart, signal.SIGKILL)
            assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "y"}), 20)).startswith("y")
            assert session.reconnects == 1
    finally:
        mcp_hooks.uninstrument("mcp")
    assert len(events.reconnects) == 1
    assert all(not isinstance(c.owner, mcp_hooks.healing.Relay) for c in events.reconnects)
