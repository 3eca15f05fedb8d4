"""Functions the overhead benchmark attaches to with ``mcp_hooks.attach`` (it needs an importable path)."""

from __future__ import annotations


def sync_noop(x: int) -> int:
    return x


async def async_noop(x: int) -> int:
    return x
