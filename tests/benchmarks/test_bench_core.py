"""The core benchmark suite keeps working: a quick run writes every figure (speed is never asserted here)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.common import run_quick

EXPECTED = {
    "overhead.sync",
    "overhead.async",
    "overhead.attach_sync",
    "overhead.attach_async",
    "overhead.memory_call",
    "overhead.http_call",
    "overhead.http_connect",
    "classify.wide",
    "classify.deep",
    "classify.cyclic",
    "recovery.restart",
    "recovery.expiry",
    "healing.call",
    "storm.n1",
    "storm.n10",
    "storm.n100",
    "memory.sessions1",
    "memory.sessions10",
    "sdk_healing.http_call",
    "sdk_healing.stdio_call",
    "sdk_healing.memory_call",
    "sdk_healing.first_call",
    "sdk_healing.storm.n1",
    "sdk_healing.storm.n10",
    "sdk_healing.storm.n100",
    "sdk_healing.breaker.fail_fast",
    "sdk_healing.breaker.probe",
}


@pytest.mark.timeout(260)
def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "core.json"
    document = run_quick("benchmarks.core", out, timeout=250)
    figures = {f["id"]: f for f in document["figures"]}
    assert set(figures) == EXPECTED
    assert document["quick"] is True
    assert isinstance(document["seconds"], int) and 0 < document["seconds"] < 160
    assert document["versions"]["mcp"][0] in "12"
    for figure in figures.values():
        assert isinstance(figure["ours"], float) and math.isfinite(figure["ours"]) and figure["ours"] > 0, figure
        assert figure["result"], figure
    # What the figures say, beyond speed: every storm was one reconnect, and every call answered.
    for n in (1, 10, 100):
        assert figures[f"storm.n{n}"]["result"].startswith(f"1 reconnect(s), {n}/{n} answered"), figures[f"storm.n{n}"]
    assert figures["memory.sessions10"]["ours"] > figures["memory.sessions1"]["ours"]
    # The circuit breaker: 100 calls while the server is down cost one connection attempt.
    assert figures["sdk_healing.breaker.probe"]["result"].startswith("1 attempt(s)"), figures[
        "sdk_healing.breaker.probe"
    ]


def test_report_renders_the_table(tmp_path: Path) -> None:
    figure = {
        "id": "x",
        "group": "G",
        "label": "a | b",
        "ours": 1.0,
        "baseline": 2.0,
        "unit": "ms",
        "result": "0.50x",
        "target": "<= 1.1x",
        "met": True,
        "note": "why",
    }
    document = {
        "suite": "core-mcp2",
        "generated": "2026-11-23T00:00:00Z",
        "quick": False,
        "seconds": 125,
        "machine": {"cpu": "cpu", "cores": 2, "system": "Linux", "python": "CPython 3.11"},
        "versions": {"python": "3.11", "mcp": "2.3.0"},
        "figures": [figure],
    }
    (tmp_path / "core-mcp2.json").write_text(json.dumps(document))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmarks:start -->\nold\n<!-- benchmarks:end -->\nrest\n")
    table = report.render(report.load(tmp_path))
    assert "| a \\| b [1] | 0.50x | <= 1.1x | yes |" in table
    assert "1. why" in table
    assert "**core-mcp2**: mcp 2.3.0; 2026-11-23; 2 min 05 s" in table
    assert "measured for 2 min 05 s in all" in table
    report.update_readme(table, readme)
    text = readme.read_text()
    assert text.startswith("intro\n<!-- benchmarks:start -->\nMeasured on cpu, 2 cores")
    assert "old" not in text and text.endswith("<!-- benchmarks:end -->\nrest\n")
