"""Shared by every test session: ``tests/`` (for ``readme_blocks``) and the project root (for ``benchmarks``)
are importable from any test folder (the folders are not packages)."""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
for _path in (TESTS, TESTS.parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
