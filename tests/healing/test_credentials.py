"""HTTP 401 done right: a 401 to a request of an old session is the session dropped (a gateway that
garbage-collected it), rebuilt once; a 401 to the new session's handshake is an auth failure, given to
the caller at once, never retried in a loop, never with a credential in it. Under ``instrument("mcp")``
and ``connect()``, mcp 1.x and 2.x, against the kit's real server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import mcp
import pytest
from healing_helpers import error_text, outcome, raw_session, text
from mcp.client.streamable_http import streamable_http_client

import mcp_hooks
from mcp_hooks import CredentialsRefused, hookimpl
from mcp_hooks.healing.messages import MCP_MAJOR

if MCP_MAJOR >= 2:
    import httpx2 as httpx
else:
    import httpx

pytestmark = [pytest.mark.usefixtures("healing"), pytest.mark.timeout(90)]

SECRET = "s3cret-token-value"


@contextlib.asynccontextmanager
async def opened(how: str, url: str) -> AsyncIterator[Any]:
    if how == "healed":
        async with raw_session(url) as session:
            yield session
    else:
        headers = {"Authorization": f"Bearer {SECRET}"}
        async with mcp_hooks.connect(url, headers=headers, deadline=30.0) as session:
            yield session


HOW = pytest.mark.parametrize("how", ["healed", "connect"])


@HOW
async def test_a_401_to_an_old_session_is_the_session_dropped(server: Any, how: str) -> None:
    async with opened(how, server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        server.answer_stale_with_401()
        server.expire_sessions()
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "after"}), 20)).startswith("after")
        assert server.health()["unauthorized"] >= 1
        if how == "connect":
            assert session.reconnects == 1


@HOW
async def test_a_401_to_the_new_handshake_is_an_auth_failure_at_once(
    server: Any, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with opened(how, server.url) as session:
        text(await session.call_tool("echo", {"text": "warm"}))
        before = server.executions("incr")
        server.refuse_credentials()
        server.expire_sessions()
        with pytest.raises(Exception) as caught:
            # waiting out a rebuild deadline (15 s healed, 30 s connect()) would outlast this bound
            await asyncio.wait_for(session.call_tool("incr", {}), 10)
        if how == "connect":
            assert isinstance(caught.value, CredentialsRefused), repr(caught.value)
        said = error_text(caught.value)
        assert "refused the credentials (HTTP 401)" in said, said
        if how != "connect":
            assert outcome(caught.value) == ("not-run", "credentials-refused")
        assert server.executions("incr") == before
        refused = server.health()["unauthorized"]
        assert refused <= 4, f"{refused} requests answered 401: retried in a loop"
        # the credentials work again: the next call answers
        server.refuse_credentials(False)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "ok"}), 20)).startswith("ok")
    assert SECRET not in caplog.text
    assert SECRET not in repr(caught.value) and SECRET not in said


@HOW
async def test_a_401_to_the_first_handshake_is_an_auth_failure_at_once(server: Any, how: str) -> None:
    """Credentials refused before the session ever opened: the caller hears it at once, as an auth
    failure that did not run (never "outcome uncertain", never a hang), and nothing is sent in a loop."""
    server.refuse_credentials()
    with pytest.raises(BaseException) as caught:  # the SDK wraps it differently in each major
        async with asyncio.timeout(10), opened(how, server.url):
            pass
    assert not isinstance(caught.value, TimeoutError), "the refused handshake hung"
    error = caught.value
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    said = error_text(error)
    assert "refused the credentials (HTTP 401)" in said, repr(caught.value)
    if how == "connect":
        assert isinstance(error, CredentialsRefused), repr(error)
    else:
        assert outcome(error) == ("not-run", "credentials-refused"), repr(error)
    assert server.health()["unauthorized"] <= 2
    assert SECRET not in said


class RotatingAuth(httpx.Auth):  # type: ignore[misc]
    """What a user's ``httpx.Auth`` does: send the current token; on a 401, fetch a fresh one (here: the
    next of ``tokens``) and send the request again once."""

    def __init__(self, *tokens: str) -> None:
        self._tokens = list(tokens)
        self.token = self._tokens.pop(0)
        self.refreshes = 0

    def auth_flow(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        response = yield request
        if response.status_code == 401 and self._tokens:
            self.refreshes += 1
            self.token = self._tokens.pop(0)
            request.headers["Authorization"] = f"Bearer {self.token}"
            yield request


@contextlib.asynccontextmanager
async def with_auth(how: str, url: str, auth: Any) -> AsyncIterator[Any]:
    """A session whose credentials come from ``auth``: a raw SDK session (healed) or ``connect(auth=)``."""
    if how == "connect":
        async with mcp_hooks.connect(url, auth=auth, deadline=30.0) as session:
            yield session
        return
    async with (
        httpx.AsyncClient(auth=auth) as client,
        streamable_http_client(url, http_client=client) as streams,
        mcp.ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


@HOW
async def test_an_expired_token_is_refreshed_through_the_users_httpx_auth(
    server: Any, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The token expired while the gateway dropped the idle session: the 401 to the old session rebuilds
    it once, the new handshake's 401 reaches the user's ``httpx.Auth``, which refreshes the token, and
    the write runs once."""
    caplog.set_level(logging.DEBUG)
    old, new = "token-one-4f1c", "token-two-9b7e"
    auth = RotatingAuth(old, new)
    server.require_token(old)
    try:
        async with with_auth(how, server.url, auth) as session:
            text(await session.call_tool("echo", {"text": "warm"}))
            server.require_token(new)
            server.expire_sessions()
            answer = await asyncio.wait_for(session.call_tool("incr", {"key": "auth"}), 20)
            assert not getattr(answer, "isError", False) and not getattr(answer, "is_error", False), answer
            assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "next"}), 20)).startswith("next")
            if how == "connect":
                assert session.reconnects == 1
    finally:
        server.require_token(None)
    assert auth.refreshes == 1
    assert server.executions("incr") == 1
    assert server.health()["unauthorized"] >= 1
    assert old not in caplog.text and new not in caplog.text


class _NotMySession:
    """A plugin that says a 401 is never the session dropped on this server (its 401 means the token)."""

    def __init__(self) -> None:
        self.vetoed = 0

    @hookimpl
    def should_reconnect(self, call: Any, error: BaseException) -> bool | None:
        if getattr(getattr(error, "response", None), "status_code", None) == 401:
            self.vetoed += 1
            return False
        return None


@HOW
async def test_a_plugin_can_veto_taking_a_401_as_the_session_dropped(server: Any, how: str) -> None:
    """The 401 rule is the ``should_reconnect`` hook's: vetoed, the 401 goes on to the SDK as it is (what
    the SDK then does with it is its own), and nothing runs twice."""
    plugin = _NotMySession()
    pm = mcp_hooks.plugin_manager()
    pm.register(plugin, name="test-401-veto")
    try:
        async with opened(how, server.url) as session:
            text(await session.call_tool("echo", {"text": "warm"}))
            server.answer_stale_with_401()
            server.expire_sessions()
            outcome: BaseException | None = None
            try:
                await asyncio.wait_for(session.call_tool("incr", {}), 20)
            except Exception as exc:
                outcome = exc
            assert not isinstance(outcome, asyncio.TimeoutError), "the vetoed 401 left the call hanging"
    finally:
        pm.unregister(name="test-401-veto")
    assert plugin.vetoed >= 1, "the should_reconnect hook was not asked about the 401"
    assert server.executions("incr") <= 1
