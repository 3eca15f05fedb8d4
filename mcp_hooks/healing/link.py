"""What the relay tracks: one generation of the transport beneath a session (:class:`_Link`, which the
HTTP watcher reports to) and each request of the session's not answered yet (:class:`_Pending`)."""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import pluggy

from .. import redact
from ..classify import Loss
from .watch import current_link

try:  # mcp 2.x: the transport's write stream carries each sender's context to the transport
    _ContextSendStream: Any = importlib.import_module("mcp.shared._context_streams").ContextSendStream
except (ImportError, AttributeError):  # mcp 1.x
    _ContextSendStream = None

if TYPE_CHECKING:
    from .relay import Relay


class _Pending:
    """A request of the session's that has not been answered yet."""

    __slots__ = (
        "flow",
        "link",
        "lost",
        "may_have_run",
        "message",
        "method",
        "refusal",
        "request_id",
        "resends",
        "scope",
        "unreachable",
    )

    def __init__(self, message: Any, request_id: Any, method: str, scope: Any = None) -> None:
        self.message = message
        #: a round of a multi-round-trip flow this relay saw start: how often the flow was started again
        #: (``None``: not a flow, or one resumed from a ``requestState`` the relay never relayed)
        self.flow: int | None = None
        self.request_id = request_id
        self.method = method
        self.link: _Link | None = None  # the link it was sent on, None while queued
        self.lost: Loss | None = None  # what happened to it on that link
        self.may_have_run = False  # it was lost in flight once: the server may have run it
        self.resends = 0
        self.unreachable = False  # refused because the server could not be reached: not a failed replay
        self.scope = scope  # the tracer's scope of the call that sent it (telemetry), or None
        #: the server's error answer that lost it on its current link, when the hooks took it for session
        #: loss (``"-32022: Unsupported protocol version"``), else ``None``
        self.refusal: str | None = None


class _Link:
    """One generation: a transport opened by the owner task, and what was seen of it."""

    def __init__(self, relay: Relay, generation: int) -> None:
        self.relay = relay
        self.generation = generation
        self.read: Any = None
        self.write: Any = None
        self.put: Callable[[Any], None] | None = None  # hands ``write`` a message at once (put_at_once)
        self.get_session_id: Callable[[], str | None] | None = None
        self.session_id_seen: str | None = None  # the Mcp-Session-Id the server issued (seen by the watcher)
        self.gone = False  # loss seen: nothing new is sent on it
        self.trouble = anyio.Event()
        self.died = False
        self.answered = False  # the server sent something on it: it was reachable
        self.opened_at = time.monotonic()
        self.cause = ""
        self.evidence: BaseException | None = None
        self.waiters: dict[str, list[Any]] = {}
        self.change = anyio.Event()
        self.watched = False
        self.poked = False  # a ping of the relay's is out on it to end the session reader's wait (_poke)
        self.served = False  # the server answered a request of the session's on it
        self.refused_credentials: int | None = None  # 401/403 to the handshake on this link
        # how long a request may take, a 429/503 waited out included: the deadline its relay was given
        # (connect(deadline=...), instrument("mcp", deadline=...)); None: not given, the hook's own cap
        self.deadline: float | None = relay.settings.deadline

    @property
    def server(self) -> str:
        return self.relay.server

    @property
    def pm(self) -> pluggy.PluginManager:
        return self.relay.pm

    def changed(self) -> None:
        """Wake whoever waits for the requests out on this link to settle."""
        self.change.set()
        self.change = anyio.Event()

    # what the HTTP layer tells (watch.LinkEvents)
    def session_rejected(self, request_id: Any, status: int) -> None:
        self.relay._lost_on(self, request_id, Loss.REJECTED, f"HTTP {status} to a request carrying the session id")

    def request_lost(self, request_id: Any, error: BaseException, *, refused: bool) -> None:
        loss = Loss.REJECTED if refused else Loss.IN_FLIGHT
        self.relay._lost_on(self, request_id, loss, f"{type(error).__name__}: {error}"[:200], unreachable=refused)

    def standing_stream_ended(self) -> None:
        self.relay._suspect(self)

    def credentials_refused(self, status: int, request_id: Any = None) -> None:
        self.refused_credentials = status
        cause = f"the server refused the credentials (HTTP {status})"
        self.relay._lost_on(self, request_id, Loss.REJECTED, cause)  # it did not run

    def give_up(self, cause: str, evidence: BaseException | None = None) -> None:
        if not self.gone:
            self.gone = True
            self.cause = redact.text(cause)
            self.evidence = evidence
        self.trouble.set()
        for waiter in self.waiters.values():  # the relay's own requests on it will not be answered now
            waiter[0].set()


def _close(*streams: Any) -> None:
    """Close the ends of memory streams we hold (no ``ResourceWarning`` for an end nobody closed)."""
    for stream in streams:
        close = getattr(stream, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):
                close()


def put_at_once(link: _Link, watched: bool) -> Callable[[Any], None] | None:
    """How to hand ``link``'s transport a message without a loop turn (anyio's ``send()`` yields one
    first, even to a writer already waiting for it), or ``None``; the function raises
    ``anyio.WouldBlock`` when the transport is not waiting.

    mcp 2.x's stream carries the sender's context to the transport, which runs the request in it: the
    message goes in that envelope here, a copy of the sender's context, with the link in it for the
    HTTP watcher (``watched``) and the sender's own context left as it was."""
    write = link.write
    nowait = getattr(write, "send_nowait", None)
    if nowait is not None:
        return nowait  # type: ignore[no-any-return]
    if _ContextSendStream is None or not isinstance(write, _ContextSendStream):
        return None
    put = getattr(getattr(write, "_inner", None), "send_nowait", None)
    if put is None:  # the SDK changed it: its own send() is used
        return None
    if not watched:
        return lambda item: put((contextvars.copy_context(), item))

    def put_watched(item: Any) -> None:
        context = contextvars.copy_context()
        context.run(current_link.set, link)
        put((context, item))

    return put_watched
