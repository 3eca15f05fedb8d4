"""Fixtures of the openai-agents shim's tests (defined in ``oa_support``)."""

from __future__ import annotations

from oa_support import _quiet_tracing, any_http_target, http_target, no_shim, rebuilds, shim, target

__all__ = ["_quiet_tracing", "any_http_target", "http_target", "no_shim", "rebuilds", "shim", "target"]
