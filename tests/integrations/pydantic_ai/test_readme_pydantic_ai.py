"""The README's framework quickstart (``mcp_hooks.instrument()``), run in the pydantic-ai environment: it
turns the shims on (pydantic-ai's and the fastmcp one it rides on), and a real ``Agent`` run then gets
its tool's answer while the server restarts under it (pydantic-ai's own ``FunctionModel`` plays the
model)."""

from __future__ import annotations

import asyncio
from typing import Any

import mcp_hooks_pydantic_ai
import pytest
import readme_blocks
from pydantic_ai import Agent
from pydantic_ai.messages import ToolCallPart
from pydantic_ai_helpers import ScriptedModel, rebuilds, session_toolset

import mcp_hooks
from mcp_hooks.testing import FaultServer

pytestmark = pytest.mark.timeout(90)


BLOCKS = readme_blocks.blocks_for("pydantic-ai")


def test_every_pydantic_ai_block_is_one_this_file_runs() -> None:
    assert [b for b in BLOCKS if "mcp_hooks.instrument()" not in b.source] == [], "run the new block here"
    assert len(BLOCKS) == 1


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
async def test_instrument_quickstart(block: Any, srv: FaultServer) -> None:
    mcp_hooks.uninstrument()
    ran = srv.executions_from_now()
    try:
        # every installed shim: pydantic-ai's, and the fastmcp one it brings
        assert await readme_blocks.run(block, {}) == [{"mcp": True, "fastmcp": True, "pydantic-ai": True}]
        assert mcp_hooks_pydantic_ai.mcp_hooks_integration.enabled

        async def restart_then_call() -> list[ToolCallPart]:
            await asyncio.to_thread(srv.restart)  # the server restarts while the agent's session is open
            return [ToolCallPart("echo", {"text": "hi"})]

        toolset = session_toolset(srv.url)
        script = ScriptedModel(restart_then_call)
        result = await Agent(script.model(), toolsets=[toolset]).run("say hi through the server")
    finally:
        mcp_hooks.uninstrument()
    assert result.output == f"hi (pid {srv.pid})"  # answered by the restarted server
    assert [p.outcome for p in script.returns] == ["success"]
    assert rebuilds(toolset) == 1  # recovered by mcp-hooks
    assert ran("echo") == 1
