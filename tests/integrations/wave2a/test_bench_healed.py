"""The benchmark of the frameworks healed by ``instrument("mcp")`` (``python -m benchmarks.frameworks.healed``)
keeps working in this environment: run with ``--quick`` in a subprocess; its figures are read back. What
does not depend on speed is checked (the healed calls answered, one rebuild); no timing is asserted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from benchmarks.common import run_quick

pytestmark = pytest.mark.timeout(400)

FRAMEWORKS = {
    "langchain-mcp-adapters": "langchain_mcp_adapters",
    "strands-agents": "strands",
    "mcp-use": "mcp_use",
    "semantic-kernel": "semantic_kernel",
    "agno": "agno",
    "google-adk": "google.adk.tools.mcp_tool",
}


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a dotted name whose parent package is missing
        return False


def test_the_quick_suite_measures_every_installed_framework(tmp_path: Path) -> None:
    present = [name for name, module in FRAMEWORKS.items() if installed(module)]
    if not present:
        pytest.skip("none of the frameworks is installed here")
    document = run_quick("benchmarks.frameworks.healed", tmp_path / "healed.json", timeout=360)
    results = {f["id"]: f["result"] for f in document["figures"]}
    for name in present:
        assert "/ 1/1;" in results[f"healed.{name}.restart"], results
        assert results[f"healed.{name}.concurrent"].endswith("/ 20/20 (1 rebuild)"), results
