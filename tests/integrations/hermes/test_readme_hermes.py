"""The README's framework quickstart (``mcp_hooks.instrument()``), run in the hermes-agent environment:
it turns the hermes shim on, and hermes' own client then recovers a call across a real server restart
through mcp-hooks (no model involved: calls go through hermes' tool dispatcher, as its agent loop makes them)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hermes_helpers import Hermes, Observed, server_pid
from mcp_hooks_hermes import mcp_hooks_integration

import mcp_hooks

pytestmark = pytest.mark.timeout(90)


def _load_readme_blocks() -> ModuleType:
    """``tests/readme_blocks.py``, imported by path (the test folders are not packages)."""
    module = sys.modules.get("readme_blocks")
    if module is None:
        path = Path(__file__).resolve().parents[2] / "readme_blocks.py"
        spec = importlib.util.spec_from_file_location("readme_blocks", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["readme_blocks"] = module
        spec.loader.exec_module(module)
    return module


readme_blocks = _load_readme_blocks()
BLOCKS = readme_blocks.blocks_for("hermes")


def test_every_hermes_block_is_one_this_file_runs() -> None:
    assert [b for b in BLOCKS if "mcp_hooks.instrument()" not in b.source] == [], "run the new block here"
    assert len(BLOCKS) == 1


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_instrument_quickstart(block: Any, hermes: Hermes, mcp_shared_fault_server: Any, observed: Observed) -> None:
    srv = mcp_shared_fault_server
    mcp_hooks.uninstrument("hermes")
    try:
        assert readme_blocks.run_sync(block, {}) == [{"hermes": True}]  # every installed shim: this one
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
