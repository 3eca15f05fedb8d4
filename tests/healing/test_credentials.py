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

import pytest
from healing_helpers import error_text, raw_session, text

import mcp_hooks
from mcp_hooks import CredentialsRefused

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
        assert server.executions("incr") == before
        refused = server.health()["unauthorized"]
        assert refused <= 4, f"{refused} requests answered 401: retried in a loop"
        # the credentials work again: the next call answers
        server.refuse_credentials(False)
        assert text(await asyncio.wait_for(session.call_tool("echo", {"text": "ok"}), 20)).startswith("ok")
    assert SECRET not in caplog.text
    assert SECRET not in repr(caught.value) and SECRET not in said
