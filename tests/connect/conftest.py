"""Fixtures for the ``connect()`` tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def server(mcp_fault_server_factory: Callable[..., Any]) -> Any:
    """A started streamable-HTTP fault server."""
    return mcp_fault_server_factory()
