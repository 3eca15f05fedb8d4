"""A rebuilt session starts on new connections: before each rebuild the relay closes the connections the
HTTP client keeps alive but does not use (here: the one that carried the 404 of the refused call). A new
session's ``initialize`` sent on it was answered about 40 ms late: the first call after a lost session
(``benchmarks/sdk_healing.py``) took 55 ms, 1.72x a fresh connect, under mcp 2.3.

Real parts: the kit's server, the SDK's own HTTP client and transport, ``instrument("mcp")`` beneath a
raw ``ClientSession`` (mcp 1.x and 2.x)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_hooks.healing.watch import drop_idle_connections
from mcp_hooks.sdk import HTTPX

pytestmark = pytest.mark.timeout(60)


class Ports:
    """The client's local port of every request (an httpx response hook), with the JSON-RPC method sent."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    async def __call__(self, response: Any) -> None:
        request = response.request
        method = request.method
        if method == "POST":
            method = json.loads(request.content).get("method") or "answer"
        stream = response.extensions.get("network_stream")  # none for an answer the watcher gave itself
        if stream is not None:
            self.seen.append((method, stream.get_extra_info("client_addr")[1]))


async def test_a_rebuilt_session_does_not_reuse_the_idle_connections_of_the_lost_one(
    server: Any, healing: None, events: Any
) -> None:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    ports = Ports()
    async with (
        create_mcp_http_client() as client,
        streamable_http_client(server.url, http_client=client) as streams,
        ClientSession(streams[0], streams[1]) as session,
    ):
        client.event_hooks = {"request": [], "response": [ports]}
        await session.initialize()
        assert (await session.call_tool("echo", {"text": "a"})).content[0].text.startswith("a")
        lost_session = {port for _, port in ports.seen}
        ports.seen.clear()
        server.expire_sessions()  # the next call meets a 404 and the session is rebuilt
        assert (await session.call_tool("echo", {"text": "b"})).content[0].text.startswith("b")
        assert len(events.reconnects) == 1 and len(events.recovered) == 1
        methods = [method for method, _ in ports.seen]
        assert methods[:2] == ["tools/call", "initialize"], ports.seen
        # the 404 is a whole JSON answer: its connection went back to the pool, idle and kept alive
        refused, rebuilt = ports.seen[0][1], ports.seen[1][1]
        assert rebuilt not in lost_session | {refused}, ports.seen


async def test_a_client_without_a_pool_is_left_as_it_is() -> None:
    def answer(request: Any) -> Any:
        return HTTPX.Response(200, text="ok")

    async with HTTPX.AsyncClient(transport=HTTPX.MockTransport(answer)) as client:
        await drop_idle_connections(client)
        assert (await client.get("http://example.invalid/")).text == "ok"
