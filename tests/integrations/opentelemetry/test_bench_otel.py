"""The OpenTelemetry benchmark suite (``python -m benchmarks.otel``) keeps working: run with ``--quick``
in a subprocess; its figures are numbers and its span count was checked by the suite itself. No timing
is asserted."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.common import run_quick

pytestmark = pytest.mark.timeout(200)


def test_the_quick_suite_writes_its_figures(tmp_path: Path) -> None:
    document = run_quick("benchmarks.otel", tmp_path / "otel.json", timeout=180)
    assert document["suite"].startswith("opentelemetry-mcp")
    figures = {f["id"]: f for f in document["figures"]}
    assert set(figures) == {"otel.sdk", "otel.sdk_vs_bare", "otel.noop", "otel.context"}
    for figure in figures.values():
        assert math.isfinite(figure["ours"]) and math.isfinite(figure["baseline"]) and figure["baseline"] > 0
