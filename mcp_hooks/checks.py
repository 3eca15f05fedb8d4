"""The checks of the recovery options every entry point takes (``with_mcp_recovery``, ``attach``,
``connect()``, ``instrument("mcp", ...)``, ``mcp-hooks run``): a bad value raises at once, naming the
option (``option`` says how: ``"option 'deadline'"``, or a command-line flag) and where it was given.
Depends on nothing of the package."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["breaker_after", "deadline", "max_reconnects", "tool_names"]


def max_reconnects(where: str, value: Any, option: str = "option 'max_reconnects'") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{where}: {option} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{where}: {option} must be 0 or more, got {value}")
    return value


def deadline(where: str, value: Any, option: str = "option 'deadline'") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{where}: {option} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: {option} must be a positive, finite number of seconds, got {value}")
    return float(value)


def tool_names(where: str, value: Any, option: str = "option 'replay_safe_tools'") -> frozenset[str]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TypeError(f"{where}: {option} must be a collection of tool names (not a single string), got {value!r}")
    names = frozenset(value)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"{where}: {option} must hold tool names (str), got {bad!r}")
    return names


def breaker_after(where: str, value: Any, option: str = "option 'breaker_after'") -> float | None:
    """A positive number of seconds, or ``None`` (the breaker never opens)."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
        raise ValueError(f"{where}: {option} must be a positive number of seconds or None, got {value!r}")
    return None if value is None else float(value)
