"""What every benchmark suite shares: the figure record, the JSON file, the machine, timing helpers.

A suite (``python -m benchmarks.core``, ``python -m benchmarks.frameworks.hermes``, ...) measures its
figures against the raw SDK (or the unshimmed framework) *in the same run*, and writes
``benchmarks/results/<suite>.json``::

    {"suite": "core-mcp2", "generated": "2026-11-23T10:00:00Z", "quick": false,
     "machine": {...}, "versions": {"python": ..., "mcp": ..., ...},
     "figures": [{"id": "overhead.sync", "group": "Happy-path overhead", "label": "...",
                  "ours": 221.0, "baseline": 48.0, "unit": "ns", "result": "+173 ns",
                  "target": "<= 300 ns", "met": true, "note": "..."}]}

``python -m benchmarks.report`` prints every suite's figures as one table (and ``--readme`` puts
it in README.md). Speed is never asserted in the test suite; these numbers are for reading.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gc
import importlib.metadata
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclasses.dataclass
class Figure:
    """One measured figure. ``ours`` and ``baseline`` are in ``unit``; ``result`` is what the table shows."""

    id: str
    group: str
    label: str
    ours: float | None
    baseline: float | None
    unit: str
    result: str
    target: str = ""
    met: bool | None = None
    note: str = ""


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def versions(*distributions: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("mcp", "mcp-hooks", *distributions):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


class Suite:
    """Collects figures and writes them (the whole file is rewritten each run)."""

    def __init__(self, name: str, *, quick: bool, distributions: Iterable[str] = ()) -> None:
        self.name = name
        self.quick = quick
        self.distributions = tuple(distributions)
        self.figures: list[Figure] = []
        self.started = time.monotonic()

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        met = "" if figure.met is None else ("  (target met)" if figure.met else "  (TARGET MISSED)")
        print(f"  {figure.label}: {figure.result}{met}", flush=True)
        if figure.note:
            print(f"      {figure.note}", flush=True)
        return figure

    def document(self) -> dict[str, Any]:
        return {
            "suite": self.name,
            "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "quick": self.quick,
            "seconds": round(time.monotonic() - self.started),
            "machine": machine(),
            "versions": versions(*self.distributions),
            "figures": [dataclasses.asdict(f) for f in self.figures],
        }

    def write(self, out: Path | None = None) -> Path:
        path = out if out is not None else RESULTS / f"{self.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.document(), indent=2) + "\n")
        print(f"wrote {path}", flush=True)
        return path


def arguments(description: str) -> argparse.Namespace:
    """The options every suite takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="few rounds: checks the suite runs, not for reading")
    parser.add_argument("--out", type=Path, default=None, help="where to write the JSON (default benchmarks/results)")
    return parser.parse_args()


# --- timing ----------------------------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def ns_per_call(function: Callable[[], object], number: int, repeat: int) -> float:
    """Best of ``repeat`` runs of ``number`` calls, in ns per call (the least disturbed run)."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter_ns()
        for _ in range(number):
            function()
        best = min(best, (time.perf_counter_ns() - started) / number)
    return best


def ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline > 0 else float("inf")


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}x"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def fail(message: str) -> None:
    """A figure that could not be measured: the suite says so and exits non-zero."""
    print(f"benchmark failed: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def run_quick(module: str, out: Path, *, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a suite with ``--quick`` in a subprocess (for the smoke tests) and return the document it wrote.

    Raises ``AssertionError`` with the suite's output tail when it exits non-zero."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out)],
        cwd=RESULTS.parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document: dict[str, Any] = json.loads(out.read_text())
    return document
