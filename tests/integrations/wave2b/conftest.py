"""Fixtures of the wave-2b framework tests: the wave-2a support (``wave2a_support``, in the sibling folder)
made importable here without a copy.

Each test file is skipped when its framework is missing; ``noxfile.py`` installs them by mcp major.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "wave2a"))

from wave2a_support import healing, no_healing, rebuilds

__all__ = ["healing", "no_healing", "rebuilds"]
