"""``WatchedBody``, the response body the HTTP watcher hands the SDK: how it ended is reported once, and the
iterator beneath is closed with its own (left open, the event loop finalizes it later in a task of its own,
one more task on every healed call than the SDK alone makes). Over a real HTTPX response body."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mcp_hooks.healing.watch import EventStreamEnd, WatchedBody, _httpx

pytestmark = pytest.mark.timeout(30)


class Body(_httpx.AsyncByteStream):  # type: ignore[misc]
    """A response body whose iterator says whether it was closed (``fail``: it breaks after its chunks)."""

    def __init__(self, chunks: list[bytes], fail: Exception | None = None) -> None:
        self.chunks = chunks
        self.fail = fail
        self.iterator_closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            for chunk in self.chunks:
                yield chunk
            if self.fail is not None:
                raise self.fail
        finally:
            self.iterator_closed = True

    async def aclose(self) -> None:
        pass


def _request(with_id: bool = True) -> Any:
    body = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "echo"}}
    if with_id:
        body["id"] = 7
    return _httpx.Request("POST", "http://127.0.0.1:9/mcp", content=json.dumps(body).encode())


def _watched(body: Body, *, events: bool, request: Any = None) -> tuple[Any, list[Exception | None]]:
    reports: list[Exception | None] = []
    request = request if request is not None else _request()
    response = _httpx.Response(200, stream=WatchedBody(body, request, events, reports.append), request=request)
    return response, reports


async def test_a_body_read_to_its_end_reports_it_whole_once() -> None:
    body = Body([b'{"jsonrpc": "2.0", ', b'"id": 7, "result": {}}'])
    response, reports = _watched(body, events=False)
    assert json.loads(await response.aread()) == {"jsonrpc": "2.0", "id": 7, "result": {}}
    assert reports == [None] and body.iterator_closed


async def test_an_event_stream_that_ends_before_any_event_reports_the_lost_answer() -> None:
    body = Body([b": ping\n\n"])
    response, reports = _watched(body, events=True)
    await response.aread()
    assert len(reports) == 1 and isinstance(reports[0], EventStreamEnd) and body.iterator_closed


async def test_a_body_that_breaks_reports_the_error_and_raises_it() -> None:
    broken = _httpx.ReadError("the connection broke (test)")
    body = Body([b"data: {}\n\n"], fail=broken)
    response, reports = _watched(body, events=True)
    with pytest.raises(_httpx.ReadError):
        await response.aread()
    assert reports == [broken] and body.iterator_closed


async def test_a_body_left_early_reports_nothing_and_closes_the_iterator_beneath() -> None:
    """What the SDK does once it has its answer: it stops reading and closes the response. ``httpx2`` then
    closes the body's iterator itself (and so the one beneath); ``httpx`` leaves it to be finalized, as it
    does its own, and the one beneath is closed with it then, not in a task of its own."""
    body = Body([b"event: message\ndata: {}\n\n", b"more\n\n", b"and more\n\n"])
    response, reports = _watched(body, events=True)
    chunks = response.aiter_raw()
    assert await chunks.__anext__() == b"event: message\ndata: {}\n\n"
    await chunks.aclose()
    await response.aclose()
    if _httpx.__name__ != "httpx2":
        del chunks, response
        gc.collect()
        for _ in range(10):  # the event loop's finalizer closes it in a task
            await asyncio.sleep(0)
    assert reports == [] and body.iterator_closed
