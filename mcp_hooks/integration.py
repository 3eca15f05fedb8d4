"""The shape every framework shim shares, and ``mcp_hooks.instrument()`` to turn them on.

A shim is a distribution (``mcp-hooks-<framework>``) whose entry point in group ``mcp_hooks`` names a
module holding ``@hookimpl`` functions (usually ``reconnect`` for the framework's objects) and an
attribute ``mcp_hooks_integration``: an :class:`Integration`. ``instrument()`` turns it on (safe to
call twice), ``uninstrument()`` undoes every wrap. A shim whose framework is missing or outside the
supported versions says so in one log line and steps aside.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from .attach import AttachHandle, attach
from .manager import plugin_manager
from .patch import Patch

__all__ = ["Integration", "instrument", "integrations", "uninstrument"]

log = logging.getLogger("mcp_hooks.integration")

INTEGRATION_ATTRIBUTE = "mcp_hooks_integration"


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group(0)))
    return tuple(parts)


class Integration:
    """Base class of a framework shim.

    Subclasses set ``name``, ``distribution`` (the framework's distribution on PyPI), ``min_version``
    (inclusive) and ``max_version`` (exclusive, or ``None``), and list what they change: ``patches``, a
    table of :class:`~mcp_hooks.Patch` (the framework's functions wrapped in place, added in order, removed
    in reverse), and/or :meth:`targets` (``"module:Qualified.name"`` targets given the engine's recovery
    by ``attach``); :meth:`_on` and :meth:`_off` for anything else (the framework's own rebuild, say).
    """

    name: str = ""
    distribution: str = ""
    #: distributions that ship the framework under other names, tried in this order (default: ``distribution``)
    distributions: tuple[str, ...] = ()
    min_version: str = "0"
    max_version: str | None = None
    #: the framework's functions this shim wraps in place
    patches: Sequence[Patch] = ()

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._handles: list[AttachHandle] = []
        self.enabled = False
        self.why_not: str | None = None

    def instrumentation_dependencies(self) -> list[str]:
        spec = f">={self.min_version}" + (f",<{self.max_version}" if self.max_version else "")
        return [f"{self.distribution}{spec}"]

    def framework_version(self) -> str | None:
        for distribution in self.distributions or (self.distribution,):
            try:
                return importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                continue
        return None

    def check(self) -> str | None:
        """Why this shim cannot run here, or ``None`` when it can."""
        version = self.framework_version()
        if version is None:
            return f"{self.distribution} is not installed"
        have = _version_tuple(version)
        if have < _version_tuple(self.min_version) or (
            self.max_version is not None and have >= _version_tuple(self.max_version)
        ):
            return (
                f"{self.distribution} {version} is outside the supported range {self.instrumentation_dependencies()[0]}"
            )
        return None

    def targets(self) -> Iterable[tuple[str, dict[str, Any]]]:
        """``(target, attach options)`` pairs to wrap; override in subclasses."""
        return ()

    def configure(self, **options: Any) -> None:
        """Set this integration's options (``instrument(name, **options)`` calls it first); a shim with
        options overrides it and raises ``TypeError`` naming an option it does not know."""
        if options:
            raise TypeError(f"integration {self.name!r} takes no options; got {', '.join(map(repr, sorted(options)))}")

    def instrument(self, **options: Any) -> bool:
        """Turn the shim on, with ``options`` set first (see :meth:`configure`); ``False`` (and one log
        line) when the framework is missing or out of range."""
        with self._lock:
            if options:
                self.configure(**options)
            if self.enabled:
                return True
            reason = self.check()
            if reason is not None:
                if self.why_not != reason:
                    log.info("mcp_hooks: integration %r steps aside: %s", self.name, reason)
                self.why_not = reason
                return False
            try:
                for target, options in self.targets():
                    self._handles.append(attach(target, **options))
                for patch in self.patches:
                    patch.add()
                self._on()
            except Exception:
                self._undo()
                raise
            self.enabled = True
            self.why_not = None
            return True

    def uninstrument(self) -> None:
        """Undo every wrap; safe to call twice."""
        with self._lock:
            self._undo()
            self.enabled = False

    def _undo(self) -> None:
        self._off()
        for patch in reversed(self.patches):
            patch.remove()
        while self._handles:
            self._handles.pop().detach()

    def _on(self) -> None:
        """Extra set-up beyond :meth:`targets`."""

    def _off(self) -> None:
        """Undo :meth:`_on`."""


_BUILT_IN: list[Integration] = []


def _built_in() -> list[Integration]:
    """The integrations that come with the core: ``"mcp"``, healing beneath every SDK session."""
    with _BUILT_IN_LOCK:
        if not _BUILT_IN:
            from .healing.sdk_patch import SdkIntegration

            _BUILT_IN.append(SdkIntegration())
    return _BUILT_IN


_BUILT_IN_LOCK = threading.Lock()


def integrations() -> dict[str, Integration]:
    """The built-in ``"mcp"`` integration and every shim registered through the entry-point group
    ``mcp_hooks``, by name."""
    found: dict[str, Integration] = {integration.name: integration for integration in _built_in()}
    for name, plugin in plugin_manager().list_name_plugin():
        integration = getattr(plugin, INTEGRATION_ATTRIBUTE, None)
        if isinstance(integration, Integration):
            found[integration.name or name] = integration
    return found


def instrument(*names: str, **options: Any) -> dict[str, bool]:
    """Turn on the named shims, or every installed one; returns name -> whether it is on.

    ``options`` go to each named shim's ``configure`` (``instrument("opentelemetry", tracer_provider=p)``);
    a shim that does not know one raises ``TypeError`` naming it, before anything is turned on."""
    if options and not names:
        raise TypeError(
            f"mcp_hooks.instrument: options ({', '.join(map(repr, sorted(options)))}) need the name of the "
            "integration they are for"
        )
    available = integrations()
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(
            f"mcp_hooks.instrument: no integration named {', '.join(map(repr, unknown))}; "
            f"installed: {', '.join(sorted(available)) or 'none'}"
        )
    chosen = names or tuple(available)
    if options:
        for name in chosen:
            available[name].configure(**options)
    return {name: available[name].instrument() for name in chosen}


def uninstrument(*names: str) -> None:
    """Turn off the named shims, or all of them."""
    available = integrations()
    for name in names or tuple(available):
        if name in available:
            available[name].uninstrument()
