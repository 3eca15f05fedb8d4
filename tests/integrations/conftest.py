"""Fixtures every integration's tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import mcp_hooks


@pytest.fixture
def sdk_healing() -> Iterator[None]:
    """``instrument("mcp")`` on for the test (beside the integration's own shim), off again afterwards."""
    assert mcp_hooks.instrument("mcp") == {"mcp": True}
    try:
        yield
    finally:
        mcp_hooks.uninstrument("mcp")
