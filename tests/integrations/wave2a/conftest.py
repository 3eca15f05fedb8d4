"""Fixtures of the wave-2a framework tests (defined in ``wave2a_support``).

The frameworks here (langchain-mcp-adapters, strands-agents, mcp-use, semantic-kernel) run on mcp 1.x;
``nox -s wave2a-mcp1`` installs them together. A test file whose framework is missing is skipped.
"""

from __future__ import annotations

from wave2a_support import healing, no_healing, rebuilds

__all__ = ["healing", "no_healing", "rebuilds"]
