"""Every private part of the SDK mcp-hooks touches (``mcp_hooks.sdk.PRIVATE``) exists in the installed
SDK, on a live session: a rename in a new SDK release fails here instead of silently turning a feature off."""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

import mcp
import pytest

from mcp_hooks import sdk

pytestmark = pytest.mark.timeout(60)

_STREAMABLE_HTTP: Any = getattr(importlib.import_module("mcp.client.streamable_http"), "streamable_http_client", None)
if _STREAMABLE_HTTP is None:  # mcp 1.x before streamable_http_client was added
    _STREAMABLE_HTTP = importlib.import_module("mcp.client.streamable_http").streamablehttp_client


def test_the_major_and_the_http_library_are_the_installed_ones() -> None:
    assert int(importlib.metadata.version("mcp").split(".")[0]) == sdk.MCP_MAJOR
    assert sdk.HTTPX.__name__ == ("httpx2" if sdk.MCP_MAJOR >= 2 else "httpx")
    assert callable(sdk.HTTPX.AsyncClient)


def test_every_entry_names_a_major_and_an_owner() -> None:
    assert sdk.PRIVATE
    for part in sdk.PRIVATE:
        assert part.major in (0, 1, 2), part
        assert part.name.startswith("_") or part.owner.split(".")[-1].startswith("_") or part.name.isupper(), part
        assert part.used_for, part


async def test_every_private_part_of_this_major_exists(mcp_fault_server: Any) -> None:
    mine = [part for part in sdk.PRIVATE if part.major in (0, sdk.MCP_MAJOR)]
    assert mine
    async with (
        _STREAMABLE_HTTP(mcp_fault_server.url) as streams,
        mcp.ClientSession(streams[0], streams[1]) as session,
    ):
        await session.initialize()
        missing = []
        for part in mine:
            if part.owner.split(".")[0] == "session":  # an attribute path from the live session
                owner: Any = session
                for step in part.owner.split(".")[1:]:
                    owner = getattr(owner, step, None)
            else:
                owner = importlib.import_module(part.owner)
            if not hasattr(owner, part.name):
                missing.append(f"{part.owner}.{part.name} ({part.used_for})")
    assert not missing, f"gone from mcp {importlib.metadata.version('mcp')}: {missing}"
