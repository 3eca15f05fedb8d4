"""``mcp_hooks.healing.settle``, the piece the framework shims stand on: a request the SDK would wait for
forever is answered in place with an error, against the kit's real server killed under a raw SDK session
(mcp 1.x and 2.x; ``instrument("mcp")`` is off here, as it is for a shim's own sessions)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import anyio
import mcp
import pytest
from healing_helpers import MCP_MAJOR, error_text, text, wait_for
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

import mcp_hooks
from mcp_hooks.healing import settle

pytestmark = pytest.mark.timeout(60)

REFUSED = "Connection refused: the request was not sent (test)"
IN_FLIGHT = "Connection closed: the answer was lost (test)"
LOST = "the answer stream ended without the answer (test)"


@contextlib.asynccontextmanager
async def session_over(url: str, http_client: Any) -> AsyncIterator[Any]:
    async with (
        http_client,
        streamable_http_client(url, http_client=http_client) as streams,
        mcp.ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        yield session


def answering_client() -> Any:
    factory = settle.answering_factory(create_mcp_http_client, refused=REFUSED, in_flight=IN_FLIGHT)
    assert getattr(factory, "__mcp_hooks_answering__", False)
    return factory()


async def test_a_write_lost_in_flight_is_answered_in_place_and_ran_once(server: Any) -> None:
    async with session_over(server.url, answering_client()) as session:
        assert text(await session.call_tool("echo", {"text": "before"})).startswith("before")
        server.kill_during_next_call("incr")
        with anyio.fail_after(20), pytest.raises(Exception) as raised:  # mcp 1.x alone would wait for ever
            await session.call_tool("incr", {"key": "settle"})
        assert error_text(raised.value).startswith(IN_FLIGHT), error_text(raised.value)
    assert server.executions("incr") == 1


async def test_a_request_never_sent_is_answered_refused(server: Any) -> None:
    async with session_over(server.url, answering_client()) as session:
        assert text(await session.call_tool("echo", {"text": "up"})).startswith("up")
        server.kill()
        with anyio.fail_after(20), pytest.raises(Exception) as raised:
            await session.call_tool("incr", {"key": "settle"})
        message = error_text(raised.value)
        assert message.startswith(REFUSED) and "ConnectError" in message, message
    assert server.executions("incr") == 0


def lost(exc: BaseException | None) -> Any:
    from mcp.types import ErrorData

    return ErrorData(code=settle.CONNECTION_CLOSED, message=LOST if exc is None else f"{LOST}: {exc!r}")


async def _watched(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    response, ctx, *rest = args
    return await settle.run_watched(lambda watched: wrapped(response, watched, *rest, **kwargs), ctx, lost)


async def test_an_answer_stream_that_ends_without_the_answer_is_answered_once(server: Any) -> None:
    """Around the SDK's own handler of an SSE answer: mcp 1.x leaves the request waiting (answered here);
    mcp 2.x answers it itself (seen by the watch: not answered twice)."""
    patch = mcp_hooks.Patch("mcp.client.streamable_http", "StreamableHTTPTransport._handle_sse_response", _watched)
    patch.add()
    try:
        async with session_over(server.url, create_mcp_http_client()) as session:
            server.kill_during_next_call("echo")
            with anyio.fail_after(20), pytest.raises(Exception) as raised:
                await session.call_tool("echo", {"text": "lost"})
            message = error_text(raised.value)
            if MCP_MAJOR < 2:
                assert message == LOST, message
            else:
                assert LOST not in message and "SSE stream" in message, message
    finally:
        patch.remove()
    assert server.executions("echo") == 1


async def test_fail_pending_answers_what_a_closing_mcp1_session_left_waiting(server: Any) -> None:
    async with session_over(server.url, create_mcp_http_client()) as session:
        call = asyncio.ensure_future(session.call_tool("slow", {"seconds": 1.5}))
        try:
            assert await wait_for(lambda: server.executions("slow") == 1)
            failed = settle.fail_pending(session)
            if MCP_MAJOR < 2:
                assert failed == 1
                with anyio.fail_after(5), pytest.raises(Exception) as raised:
                    await call
                assert error_text(raised.value) == "Connection closed"
            else:  # mcp 2.x answers its pending requests itself: nothing to do, and nothing done
                assert failed == 0
                with anyio.fail_after(20):
                    assert "1.5" in text(await call)
        finally:
            call.cancel()
