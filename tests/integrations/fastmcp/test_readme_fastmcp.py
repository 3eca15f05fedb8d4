"""The README's framework quickstart (``mcp_hooks.instrument()``), run in the fastmcp environment: it
turns the fastmcp shim on, and a fastmcp ``Client`` then recovers its session in place across a real
server restart."""

from __future__ import annotations

from typing import Any

import mcp_hooks_fastmcp
import pytest
import readme_blocks
from fastmcp_helpers import rebuilds, session_client, text_of

import mcp_hooks
from mcp_hooks.testing import FaultServer

pytestmark = pytest.mark.timeout(90)


BLOCKS = readme_blocks.blocks_for("fastmcp")


def _pid_of(answer: str) -> int:
    return int(answer.rsplit("(pid ", 1)[1].rstrip(")"))


def test_every_fastmcp_block_is_one_this_file_runs() -> None:
    assert [b for b in BLOCKS if "mcp_hooks.instrument()" not in b.source] == [], "run the new block here"
    assert len(BLOCKS) == 1


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
async def test_instrument_quickstart(block: Any, srv: FaultServer) -> None:
    mcp_hooks.uninstrument()
    ran = srv.executions_from_now()
    try:
        assert await readme_blocks.run(block, {}) == [{"mcp": True, "fastmcp": True}]  # built-in "mcp" and this shim
        assert mcp_hooks_fastmcp.mcp_hooks_integration.enabled
        client = session_client(srv.url)
        async with client:
            first = text_of(await client.call_tool("echo", {"text": "before"}))
            srv.restart()
            second = text_of(await client.call_tool("echo", {"text": "after"}))
            assert rebuilds(client) == 1  # recovered in place by mcp-hooks
    finally:
        mcp_hooks.uninstrument()
    assert second.startswith("after (pid ")
    assert _pid_of(second) == srv.pid != _pid_of(first)
    assert ran("echo") == 2
