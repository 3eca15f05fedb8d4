"""The README's framework quickstart (``mcp_hooks.instrument()``), run in the hermes-agent environment:
it turns the hermes shim on, and hermes' own client then recovers a call across a real server restart
through mcp-hooks (no model involved: calls go through hermes' tool dispatcher, as its agent loop makes them)."""

from __future__ import annotations

from typing import Any

import pytest
import readme_blocks
from hermes_helpers import Hermes, Observed, server_pid
from mcp_hooks_hermes import mcp_hooks_integration

import mcp_hooks

pytestmark = pytest.mark.timeout(90)


BLOCKS = readme_blocks.blocks_for("hermes")


def test_every_hermes_block_is_one_this_file_runs() -> None:
    assert [b for b in BLOCKS if "mcp_hooks.instrument()" not in b.source] == [], "run the new block here"
    assert len(BLOCKS) == 1


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_instrument_quickstart(block: Any, hermes: Hermes, mcp_shared_fault_server: Any, observed: Observed) -> None:
    srv = mcp_shared_fault_server
    mcp_hooks.uninstrument("hermes")
    try:
        assert readme_blocks.run_sync(block, {}) == [{"mcp": True, "hermes": True}]  # built-in "mcp" and this shim
        assert mcp_hooks_integration.enabled
        hermes.connect(srv)
        first, _ = hermes.call("echo", {"text": "before"})
        srv.restart()
        second, _ = hermes.call("echo", {"text": "after"})
    finally:
        mcp_hooks.uninstrument()
    assert server_pid(second) == srv.pid != server_pid(first)
    assert len(observed.reconnects) == 1  # recovered by mcp-hooks, not by hermes alone
    assert [(call.tool, call.attempt) for call in observed.recovered] == [("echo", 2)]
    assert not observed.giveups
