"""The seam an observability integration plugs into (``mcp-hooks-opentelemetry`` does).

The core tells at most one installed :class:`Tracer` two things the hooks cannot: where one call
begins and ends across all of its attempts (``connect()``, ``with_mcp_recovery`` and ``attach`` keep
every attempt of a call in one *scope*), and which call a request belongs to when a healing relay
calls the hooks about it from its own task (the relay keeps the scope each request was sent in).
What happens inside a call (session lost, rebuild,
replay, outcome uncertain, gave up) reaches the tracer through the ordinary observer hooks, called
while :data:`current` holds that call's scope.

With no tracer installed every report here is one global read: the happy path stays as it was.
A tracer that raises is logged once and ignored; it can never change a call's outcome.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["INTERNAL", "Tracer", "current", "install", "installed", "note", "one_call", "scope", "uninstall", "within"]

log = logging.getLogger("mcp_hooks.telemetry")

#: The scope (the tracer's own object) of the call running in this context, or ``None``.
current: contextvars.ContextVar[Any] = contextvars.ContextVar("mcp_hooks_call_scope", default=None)
#: :data:`current` in a task of the core's own (``connect()``'s owner and keepalive): its requests (a
#: rebuild's handshake, the tool listing, pings) belong to no call and are not traced as calls.
INTERNAL = "mcp-hooks:internal"


class Tracer(Protocol):
    """What an observability integration implements. Scopes are the tracer's own objects."""

    def open_call(self) -> Any:
        """A new scope for one call, across all of its attempts (the span starts at its first request)."""

    def close_call(self, scope: Any, error: BaseException | None) -> None:
        """The call of ``scope`` is over: answered, or failed with ``error`` (what its caller receives)."""

    def note(self, scope: Any, server: str, session_id: str | None) -> None:
        """Which server (a credential-free key) and session the request of ``scope`` went to."""


_tracer: Tracer | None = None
_complained: set[str] = set()


def install(tracer: Tracer) -> None:
    """Make ``tracer`` the one the core reports to (replacing any other)."""
    global _tracer
    _tracer = tracer


def uninstall(tracer: Tracer) -> None:
    """Stop reporting to ``tracer`` (nothing happens when another one is installed)."""
    global _tracer
    if _tracer is tracer:
        _tracer = None


def installed() -> Tracer | None:
    """The installed tracer, or ``None``."""
    return _tracer


def _failed(what: str) -> None:
    if what not in _complained:
        _complained.add(what)
        log.exception("mcp_hooks: the tracer raised in %s; ignored (logged once)", what)


class _OneCall:
    __slots__ = ("_scope", "_token", "_tracer")

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._scope: Any = None
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> None:
        if current.get() is not None:
            return  # already inside a traced call (a wrapped function calling another): one scope
        try:
            self._scope = self._tracer.open_call()
        except Exception:
            _failed("open_call")
            return
        self._token = current.set(self._scope)

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if self._token is None:
            return
        current.reset(self._token)
        try:
            self._tracer.close_call(self._scope, error if isinstance(error, BaseException) else None)
        except Exception:
            _failed("close_call")


_NOTHING = contextlib.nullcontext()


def one_call() -> contextlib.AbstractContextManager[None]:
    """Keep every attempt of the call run inside in one scope (a no-op without a tracer)."""
    tracer = _tracer
    if tracer is None:
        return _NOTHING
    return _OneCall(tracer)


def scope() -> Any:
    """The scope of the call running in this context, when a tracer is installed (else ``None``)."""
    if _tracer is None:
        return None
    found = current.get()
    return None if found is INTERNAL else found


@contextlib.contextmanager
def within(scope: Any) -> Iterator[None]:
    """Hooks called inside are about the call of ``scope`` (a scope :func:`scope` gave earlier)."""
    if scope is None:
        yield
        return
    token = current.set(scope)
    try:
        yield
    finally:
        current.reset(token)


def note(scope: Any, server: str, session_id: str | None) -> None:
    """The request of ``scope`` goes to ``server`` (a credential-free key) in session ``session_id``."""
    tracer = _tracer
    if tracer is None or scope is None or scope is INTERNAL:
        return
    try:
        tracer.note(scope, server, session_id)
    except Exception:
        _failed("note")
