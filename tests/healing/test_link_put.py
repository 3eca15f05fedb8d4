"""How the relay hands a request to the transport's writer at once (``healing.link.put_at_once``): what
arrives is what the SDK's own ``send()`` would have delivered. Under mcp 2.x that is the sender's context
with the message (OpenTelemetry and the caller's own context variables reach the transport), plus the link
for the HTTP watcher; the sender's own context is left as it was."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import anyio
import pytest

from mcp_hooks.healing.link import put_at_once
from mcp_hooks.healing.watch import current_link
from mcp_hooks.sdk import MCP_MAJOR

pytestmark = pytest.mark.timeout(30)

CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="unset")


class Link:
    """What ``put_at_once`` reads of a link: its transport's write stream."""

    def __init__(self, write: Any) -> None:
        self.write = write


async def reader_waits(stream: Any) -> None:
    """Until a task waits on the memory stream ``stream`` (bounded)."""
    for _ in range(100):
        if stream.statistics().tasks_waiting_receive:
            return
        await asyncio.sleep(0)
    raise AssertionError("the reader never waited")


async def test_a_plain_memory_stream_takes_the_message_when_its_reader_waits() -> None:
    send, receive = anyio.create_memory_object_stream[str](0)
    with send, receive:
        put = put_at_once(Link(send), watched=False)  # type: ignore[arg-type]
        assert put is not None
        with pytest.raises(anyio.WouldBlock):  # nobody waits: the relay awaits send() instead
            put("early")
        waiting = asyncio.ensure_future(receive.receive())
        await reader_waits(send)
        put("request")
        assert await asyncio.wait_for(waiting, 5) == "request"


async def test_a_stream_it_does_not_know_is_left_to_its_own_send() -> None:
    class Stream:
        async def send(self, item: Any) -> None:
            raise AssertionError("not called here")

    assert put_at_once(Link(Stream()), watched=True) is None  # type: ignore[arg-type]


@pytest.mark.skipif(MCP_MAJOR < 2, reason="mcp 2.x's streams carry the sender's context")
@pytest.mark.parametrize("watched", [True, False], ids=["http", "other"])
async def test_the_transport_gets_the_senders_context_and_the_link_in_it(watched: bool) -> None:
    from mcp.shared._context_streams import create_context_streams

    send, receive = create_context_streams[str](0)
    try:
        link = Link(send)
        put = put_at_once(link, watched=watched)  # type: ignore[arg-type]
        assert put is not None
        waiting = asyncio.ensure_future(receive.receive())
        await reader_waits(receive._inner)
        token = CALLER.set("the caller's span")
        try:
            put("request")
        finally:
            CALLER.reset(token)
        assert await asyncio.wait_for(waiting, 5) == "request"
        carried = receive.last_context
        assert carried is not None
        assert carried.get(CALLER) == "the caller's span"
        assert carried.get(current_link) is (link if watched else None)
        assert current_link.get() is None  # the sender's own context is as it was
    finally:
        send.close()
        receive.close()
