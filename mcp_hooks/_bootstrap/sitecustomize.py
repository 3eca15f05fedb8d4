"""Run by Python at start-up in a program started by ``mcp-hooks run`` (this directory is first on its
``PYTHONPATH``): turns the mcp-hooks integrations on, then runs the ``sitecustomize`` this one shadows.

It never breaks the program: whatever goes wrong is logged once, at WARNING, and the program runs on.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys

_log = logging.getLogger("mcp_hooks")


def _instrument() -> None:
    """Every installed integration, or those named in ``MCP_HOOKS_RUN_INTEGRATIONS``; the healing layer
    with the options in ``MCP_HOOKS_RUN_HEALING_OPTIONS``."""
    import mcp_hooks
    from mcp_hooks import _bootstrap

    if _bootstrap.ran:
        return
    _bootstrap.ran = True
    options = json.loads(os.environ.get(_bootstrap.ENV_HEALING_OPTIONS) or "{}")
    if options:
        mcp_hooks.integrations()["mcp"].configure(**options)
    wanted = [name.strip() for name in os.environ.get(_bootstrap.ENV_INTEGRATIONS, "").split(",") if name.strip()]
    if not wanted:
        _bootstrap.enabled = mcp_hooks.instrument()
        return
    available = mcp_hooks.integrations()
    unknown = [name for name in wanted if name not in available]
    if unknown:
        _log.warning(
            "mcp-hooks run: --only: no integration named %s is installed (installed: %s); skipped",
            ", ".join(map(repr, unknown)),
            ", ".join(sorted(available)) or "none",
        )
    known = [name for name in wanted if name in available]
    if known:
        _bootstrap.enabled = mcp_hooks.instrument(*known)


def _load_shadowed() -> None:
    """Import the ``sitecustomize`` found on the path without this directory, if any."""
    here = os.path.dirname(os.path.abspath(__file__))
    mine = sys.modules.get(__name__)
    positions = [i for i, entry in enumerate(sys.path) if os.path.abspath(entry or os.curdir) == here]
    for i in reversed(positions):
        del sys.path[i]
    try:
        sys.modules.pop("sitecustomize", None)
        try:
            importlib.import_module("sitecustomize")
        except ModuleNotFoundError as exc:
            if exc.name != "sitecustomize":
                raise
            if mine is not None:  # no other one: this module stays the imported sitecustomize
                sys.modules["sitecustomize"] = mine
    finally:
        for i in positions:  # back where they were (the other one may have changed sys.path: kept)
            sys.path.insert(min(i, len(sys.path)), here)


def _main() -> None:
    try:
        _instrument()
    except Exception as exc:
        _log.warning("mcp-hooks run: the integrations could not be turned on (%s: %s)", type(exc).__name__, exc)
    try:
        _load_shadowed()
    except Exception as exc:
        _log.warning("mcp-hooks run: the program's own sitecustomize failed (%s: %s)", type(exc).__name__, exc)


if __name__ == "sitecustomize":  # run by Python at start-up, not imported as mcp_hooks._bootstrap.sitecustomize
    _main()
