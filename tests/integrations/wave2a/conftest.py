"""Fixtures of the wave-2a framework tests (defined in ``wave2a_support``).

langchain-mcp-adapters, strands-agents, mcp-use and semantic-kernel run on mcp 1.x (``nox -s wave2a-mcp1``
installs them together); google-adk and agno on mcp 2.x (``nox -s wave2a-mcp2``). A test file whose
framework is missing is skipped.
"""

from __future__ import annotations

from wave2a_support import healing, no_healing, rebuilds

__all__ = ["healing", "no_healing", "rebuilds"]
