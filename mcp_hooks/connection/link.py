"""One generation of a ``connect()`` session (:class:`_Link`): its SDK session, and what the HTTP layer saw
of it.

Every HTTP request of a ``connect()`` session goes through the healing layer's watcher
(:class:`~mcp_hooks.healing.watch.WatchingTransport`), on an HTTP client made for one link over the
session's one connection pool, and the watcher tells that link what it saw:

- a 404 or 410 to a request that carried ``Mcp-Session-Id`` (or a 400 whose body names the session):
  the server forgot the session; errors of calls on that link are marked :data:`Loss.REJECTED`
  whatever their wording, and the link is rebuilt in the background at once;
- a response stream that breaks (the server died mid-answer) or a standing GET stream that ends: the
  link is rebuilt in the background; calls still waiting on it are given a moment to receive their
  answers and are then settled as lost in flight, instead of hanging (mcp 1.x never fails them).

The link passes what it hears to a :class:`LinkWatcher` (the session), which decides nothing here either:
the session gives the link up and the hooks decide what the calls on it do.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import pluggy

from ..classify import Loss, SessionLostMark, classify
from ..engine import RecoveryPolicy


class LinkWatcher(Protocol):
    """What a link reports to (the session that owns it)."""

    server: str
    _deadline: float
    _tool_policy: RecoveryPolicy

    def _session_rejected(self, link: _Link, status: int) -> None: ...
    def _answer_lost(self, link: _Link, loss: Loss, cause: str) -> None: ...
    def _standing_stream_ended(self, link: _Link) -> None: ...


def _uncancel(task: asyncio.Task[Any]) -> None:
    """Take back one cancellation of ``task`` that was turned into an error (Python 3.11+; a no-op before)."""
    uncancel = getattr(task, "uncancel", None)
    if uncancel is not None:
        uncancel()


class _Link:
    """One generation: a transport, its SDK session, and what the watcher saw of it."""

    def __init__(self, owner: LinkWatcher, generation: int) -> None:
        self.owner = owner
        self.generation = generation
        self.api: Any = None
        self.sdk_session: Any = None  # the SDK's ClientSession (under mcp 2.x, inside api)
        self.session_id_seen: str | None = None  # the Mcp-Session-Id the server issued
        self.stop = asyncio.Event()
        self.usable = False
        self.trouble: SessionLostMark | None = None  # why it is being given up
        self.rejected_status: int | None = None
        self.lost_in_flight = False
        self.callers: set[asyncio.Task[Any]] = set()
        self.cut: set[asyncio.Task[Any]] = set()
        self.death: BaseException | None = None
        self.drained = asyncio.Event()
        self.annotations: dict[str, Any] | None = None
        self.opening: asyncio.Task[Any] | None = None  # the owner task, while it opens this link
        self.aborted: str | None = None  # why its opening was cut short
        self.refused_credentials: int | None = None  # 401/403 to this link's handshake

    def abort_opening(self, why: str) -> None:
        """Cut short an opening that can no longer succeed (its handshake was lost, or it took too long)."""
        if self.opening is not None and self.aborted is None:
            self.aborted = why
            self.opening.cancel()

    def leave(self, task: asyncio.Task[Any]) -> None:
        self.callers.discard(task)
        if not self.callers:
            self.drained.set()

    # --- what the HTTP layer tells (healing.watch.LinkEvents) ------------------------------------------------

    @property
    def gone(self) -> bool:
        return self.trouble is not None

    @property
    def server(self) -> str:
        return self.owner.server

    @property
    def pm(self) -> pluggy.PluginManager:
        return self.owner._tool_policy.manager()

    @property
    def deadline(self) -> float | None:
        return self.owner._deadline

    def session_rejected(self, request_id: Any, status: int) -> None:
        if self.rejected_status is None:
            self.rejected_status = status
        self.owner._session_rejected(self, status)

    def request_lost(self, request_id: Any, error: BaseException, *, refused: bool) -> None:
        if refused and self.session_id_seen is None:
            return  # no session yet (its handshake could not be sent): the opening fails by itself
        loss = Loss.REJECTED if refused else classify(error).loss
        if loss is Loss.NONE:
            loss = Loss.IN_FLIGHT
        if loss is Loss.IN_FLIGHT:
            self.lost_in_flight = True
        self.owner._answer_lost(self, loss, f"{type(error).__name__}: {error}"[:200])

    def standing_stream_ended(self) -> None:
        self.owner._standing_stream_ended(self)

    def credentials_refused(self, status: int, request_id: Any = None) -> None:
        self.refused_credentials = status  # a new session's handshake: opening it fails as CredentialsRefused
