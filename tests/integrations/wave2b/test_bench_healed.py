"""The benchmark of the frameworks healed by ``instrument("mcp")`` (``python -m benchmarks.frameworks.healed``)
keeps working for the wave-2b frameworks installed in this environment (each wave-2b session has its own
subset): run with ``--quick`` in a subprocess; its figures are read back. What does not depend on speed is
checked (the healed calls answered, one rebuild); no timing is asserted."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.common import run_quick

pytestmark = pytest.mark.timeout(600)

#: the wave-2b distributions; each wave-2b session installs two or three of them
WAVE2B = {"autogen-ext", "smolagents", "camel-ai", "crewai-tools", "mcp-haystack", "llama-index-tools-mcp"}


def test_the_quick_suite_measures_every_installed_framework(tmp_path: Path) -> None:
    document = run_quick("benchmarks.frameworks.healed", tmp_path / "healed.json", timeout=540)
    assert document["suite"] == "healed"  # named after the file it wrote
    measured = set(document["versions"]) & WAVE2B  # the suite records each framework it found installed
    assert len(measured) >= 2, document["versions"]
    results = {f["id"]: f["result"] for f in document["figures"]}
    for name in measured:
        assert "/ 1/1;" in results[f"healed.{name}.restart"], results
        assert results[f"healed.{name}.concurrent"].endswith("/ 20/20 (1 rebuild)"), results
