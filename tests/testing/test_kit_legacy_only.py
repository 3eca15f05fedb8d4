"""``FaultServer(legacy_only=True)``: under mcp 2.x the kit refuses the session-less 2026-07-28 protocol the
way a pre-2026 server does, so mcp 2.x clients in their default ``mode="auto"`` fall back to the
``initialize`` handshake and hold a session that can be lost. Under mcp 1.x it changes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from kit_helpers import (
    DISCOVER,
    MCP_MAJOR,
    MODERN_HEADERS,
    SESSIONLESS_VERSION,
    TOOLS_LIST,
    check_stale_answer,
    pid_of,
    raw_post,
    raw_session,
    text_of,
)

import mcp_hooks
from mcp_hooks.testing import FaultServer

pytest_plugins = ("pytester",)

needs_2x = pytest.mark.skipif(MCP_MAJOR < 2, reason="the session-less protocol and mode='auto' are mcp 2.x's")


@needs_2x
@pytest.mark.timeout(60)
@pytest.mark.parametrize("legacy_only", [True, False], ids=["legacy_only", "default"])
async def test_the_auto_client_of_2x_holds_a_session_only_with_the_switch(
    mcp_fault_server_factory: Callable[..., FaultServer], legacy_only: bool
) -> None:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    srv = mcp_fault_server_factory(legacy_only=legacy_only)
    sent: list[tuple[str, str | None, str | None]] = []

    async def record(request: Any) -> None:
        headers = request.headers
        sent.append((request.method, headers.get("mcp-session-id"), headers.get("mcp-protocol-version")))

    async with (
        httpx2.AsyncClient(event_hooks={"request": [record]}) as http,
        Client(streamable_http_client(srv.url, http_client=http), read_timeout_seconds=10) as client,  # mode="auto"
    ):
        assert pid_of(text_of(await client.call_tool("echo", {"text": "a"}))) == srv.pid
        version = client.protocol_version
    health = srv.health()
    session_ids = {session_id for _, session_id, _ in sent if session_id}
    # either way the client first tries the session-less protocol, with no session id
    assert sent[0] == ("POST", None, SESSIONLESS_VERSION)
    if legacy_only:
        # refused like a pre-2026 server: fallback to initialize, one Mcp-Session-Id on every later request
        assert version in HANDSHAKE_PROTOCOL_VERSIONS
        assert len(session_ids) == 1
        assert all(session_id in session_ids for _, session_id, _ in sent[2:])
        assert (health["modern_refused"], health["sessions"]) == (1, 1)
    else:
        # the current behaviour without the switch: session-less, so there is no session to lose
        assert version == SESSIONLESS_VERSION
        assert session_ids == set()
        assert (health["modern_refused"], health["sessions"]) == (0, 0)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("legacy_only", [True, False], ids=["legacy_only", "default"])
async def test_connect_in_its_default_mode_rebuilds_the_session_after_a_restart(
    mcp_fault_server_factory: Callable[..., FaultServer], legacy_only: bool
) -> None:
    srv = mcp_fault_server_factory(legacy_only=legacy_only)
    has_sessions = legacy_only or MCP_MAJOR < 2  # under mcp 1.x the switch is a no-op: always sessions
    async with mcp_hooks.connect(srv.url) as session:  # mode="auto" under mcp 2.x
        old_pid = srv.pid
        assert pid_of(text_of(await session.call_tool("echo", {"text": "a"}))) == old_pid
        first = session.session_id
        assert (first is not None) == has_sessions
        await asyncio.to_thread(srv.restart)
        assert pid_of(text_of(await session.call_tool("echo", {"text": "b"}))) == srv.pid != old_pid
        assert session.reconnects == (1 if has_sessions else 0)
        if has_sessions:
            assert session.session_id not in (None, first)
        if MCP_MAJOR >= 2:
            assert (session.protocol_version == SESSIONLESS_VERSION) == (not legacy_only)
    assert srv.health()["legacy_only"] is legacy_only


MISSING_SESSION = "Bad Request: Missing session ID"


@pytest.mark.timeout(60)
def test_the_refusal_is_what_a_pre_2026_server_answers(mcp_fault_server_factory: Callable[..., FaultServer]) -> None:
    srv = mcp_fault_server_factory(legacy_only=True, stale_style="go")
    # what the SDK's own session layer answers a request that is neither initialize nor in a session
    own_status, own_type, own_body, _ = raw_post(srv.url, TOOLS_LIST)
    assert (own_status, own_type) == (400, "application/json")
    assert json.loads(own_body)["error"] == {"code": -32600, "message": MISSING_SESSION}
    # a session-less server/discover gets the very same answer: the 2.x client's cue to fall back
    status, content_type, body, session_id = raw_post(srv.url, DISCOVER, extra_headers=MODERN_HEADERS)
    assert (status, content_type, json.loads(body)) == (own_status, own_type, json.loads(own_body))
    if MCP_MAJOR >= 2:
        assert session_id is None  # refused by the kit: no session opened for it
    # in a live session, the session-less version is refused as unsupported (as mcp 1.x servers do)
    live = raw_session(srv.url)
    status, content_type, body, _ = raw_post(srv.url, DISCOVER, session_id=live, extra_headers=MODERN_HEADERS)
    error = json.loads(body)["error"]
    assert (status, content_type, error["code"]) == (400, "application/json", -32600)
    assert error["message"].startswith(f"Bad Request: Unsupported protocol version: {SESSIONLESS_VERSION}.")
    # a stale session is checked first, and answered in the configured style
    srv.expire_sessions()
    check_stale_answer("go", *raw_post(srv.url, DISCOVER, session_id=live, extra_headers=MODERN_HEADERS)[:3])
    health = srv.health()
    assert health["modern_refused"] == (2 if MCP_MAJOR >= 2 else 0)  # under 1.x the SDK answered itself
    assert health["stale_answers"] == 1
    # a stateless pre-2026 server has no session to check: it refuses the version
    stateless = mcp_fault_server_factory(legacy_only=True, stateless=True)
    status, content_type, body, session_id = raw_post(stateless.url, DISCOVER, extra_headers=MODERN_HEADERS)
    error = json.loads(body)["error"]
    assert (status, content_type, error["code"], session_id) == (400, "application/json", -32600, None)
    assert error["message"].startswith(f"Bad Request: Unsupported protocol version: {SESSIONLESS_VERSION}.")


def test_the_ini_option_makes_every_fixture_legacy_only(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmcp_fault_legacy_only = true\n")
    pytester.makepyfile(
        """
        def test_fixtures(mcp_fault_server, mcp_shared_fault_server, mcp_fault_server_factory):
            assert mcp_fault_server.legacy_only and mcp_fault_server.health()["legacy_only"] is True
            assert mcp_shared_fault_server.legacy_only and mcp_shared_fault_server.health()["legacy_only"] is True
            explicit = mcp_fault_server_factory(legacy_only=False, transport="stdio")  # an argument wins
            assert explicit.legacy_only is False
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=1)
