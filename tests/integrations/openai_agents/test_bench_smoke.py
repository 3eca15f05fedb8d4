"""The openai-agents benchmark suite (``python -m benchmarks.frameworks.openai_agents``) keeps working.

Runs it with ``--quick`` in a subprocess and checks what it wrote: the figures, numeric, and the answers
that do not depend on speed. No timing is asserted.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from oa_support import MCP_V2

from benchmarks.common import run_quick

pytestmark = pytest.mark.timeout(400)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_the_quick_suite_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "x.json"
    document = run_quick("benchmarks.frameworks.openai_agents", out, timeout=360)
    assert document["suite"] == ("openai-agents-mcp2" if MCP_V2 else "openai-agents")
    assert document["quick"] is True
    assert document["versions"]["openai-agents"].startswith("0.24")
    figures = {f["id"]: f for f in document["figures"]}
    expected = {
        "openai-agents.restart.answered",
        "openai-agents.restart.latency",
        "openai-agents.concurrent.20.answered",
        "openai-agents.concurrent.20.reconnects",
    }
    if not MCP_V2:
        expected.add("openai-agents.restart.alone_fails_after")
    assert expected <= set(figures), sorted(figures)
    for name in expected:
        figure = figures[name]
        assert _number(figure["ours"]) or figure["ours"] is None, figure
        assert _number(figure["baseline"]) or figure["baseline"] is None, figure
        assert figure["group"].startswith("Against openai-agents 0.24") and figure["result"], figure
        assert figure["met"] is None  # the issue sets no target for these
    answered = figures["openai-agents.restart.answered"]
    assert answered["ours"] == 2  # with the shim, the call after each restart answered
    assert _number(figures["openai-agents.restart.latency"]["ours"])
    if MCP_V2:
        assert answered["baseline"] == 3  # session-less: the restart is invisible
    else:
        assert answered["baseline"] == 0  # alone it never recovers
        assert figures["openai-agents.restart.alone_fails_after"]["baseline"] > 0
    # Calls in flight across a restart: the shim answers (nearly) all of them with its default options
    # (rebuilds that find the server still down are not counted); openai-agents alone about none.
    figure = figures["openai-agents.concurrent.20.answered"]
    assert _number(figure["ours"]) and _number(figure["baseline"])
    assert figure["ours"] >= 10 > figure["baseline"], figure
