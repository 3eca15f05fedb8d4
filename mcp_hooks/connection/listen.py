"""``ResilientSession.listen()``: a 2026-07-28 ``subscriptions/listen`` stream that is opened again when lost.

The protocol replays nothing: a stream that drops loses the events sent meanwhile, and the spec tells the
client to listen again and refetch. This does both for the caller. After a loss it waits (backoff), listens
again on the current session (which ``connect()`` rebuilds when the server died) and then yields one event
per kind the new stream honours (``ToolsListChanged()``, ``PromptsListChanged()``,
``ResourcesListChanged()``, ``ResourceUpdated(uri)`` per subscribed resource), so a consumer that refetches
on events refetches what it may have missed. It gives up with the last error once it could not listen
again for the session's ``deadline``. A graceful close by the server ends the iteration, as the SDK's does.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from ..classify import classify

if TYPE_CHECKING:
    from .session import ResilientSession

__all__ = ["HealedSubscription", "LISTEN_BACKOFF_INITIAL", "LISTEN_BACKOFF_MAX"]

log = logging.getLogger("mcp_hooks.connect")

#: Seconds before listening again after the first loss, doubling up to :data:`LISTEN_BACKOFF_MAX`.
LISTEN_BACKOFF_INITIAL = 0.2
LISTEN_BACKOFF_MAX = 5.0
#: The most steps (a wait, an attempt to listen, an event) one ``__anext__`` takes: a bound, never reached.
_MAX_STEPS = 10_000


class HealedSubscription:
    """What ``async with session.listen(...) as sub`` gives: ``async for event in sub``, across losses.

    ``honored`` is the filter the current stream's server agreed to; ``reopened`` counts the streams opened
    again after a loss.
    """

    def __init__(self, session: ResilientSession, filters: dict[str, Any]) -> None:
        self._session = session
        self._filters = filters
        self._stack: contextlib.AsyncExitStack | None = None
        self._sub: Any = None
        self._missed: list[Any] = []
        self._lost_since: float | None = None
        self._failures = 0
        self.honored: Any = None
        self.reopened = 0

    def __aiter__(self) -> HealedSubscription:
        return self

    async def __anext__(self) -> Any:
        for _ in range(_MAX_STEPS):
            if self._missed:
                return self._missed.pop(0)
            if self._sub is None:
                await self._listen_again()
                continue
            try:
                return await self._sub.__anext__()
            except StopAsyncIteration:  # the server closed the stream gracefully: the end
                await self._drop()
                raise
            except Exception as exc:  # SubscriptionLost, the connection dying, ...
                log.info("mcp_hooks: %s: the subscriptions/listen stream was lost (%r)", self._session.server, exc)
                if self._lost_since is None:
                    self._lost_since = time.monotonic()
                await self._drop()
        raise RuntimeError("subscriptions/listen: too many steps")  # pragma: no cover - a bound, not a path

    async def _open(self) -> None:
        session = self._session
        link = await session._usable_link()
        stack = contextlib.AsyncExitStack()
        try:
            self._sub = await stack.enter_async_context(link.api.listen(**self._filters))
        except BaseException as exc:
            await stack.aclose()
            if isinstance(exc, Exception) and classify(exc).is_session_loss:
                with contextlib.suppress(Exception):  # the session is dead: rebuild it for the next attempt
                    await session._lead_rebuild(link.generation, time.monotonic() + session._deadline)
            raise
        self._stack = stack
        self.honored = self._sub.honored

    async def _listen_again(self) -> None:
        """Open the stream (the first time, or after a loss: with backoff, and the events maybe missed)."""
        try:
            await self._open()
        except Exception as exc:
            if self._lost_since is None or type(exc).__name__ == "ListenNotSupportedError":
                raise  # the first opening, or a protocol without listen: the caller's error
            if time.monotonic() - self._lost_since > self._session._deadline:
                raise
            self._failures += 1
            await asyncio.sleep(min(LISTEN_BACKOFF_MAX, LISTEN_BACKOFF_INITIAL * 2 ** (self._failures - 1)))
            return
        if self._lost_since is not None:
            self._missed = _events_of(self.honored)
            self.reopened += 1
            self._lost_since = None
            self._failures = 0
            log.info("mcp_hooks: %s: listening again after a lost stream", self._session.server)

    async def _drop(self) -> None:
        stack, self._stack, self._sub = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def aclose(self) -> None:
        await self._drop()


def _events_of(honored: Any) -> list[Any]:
    """One event per kind the stream honours: what a consumer refetches after events may have been missed."""
    kinds: Any = importlib.import_module("mcp.shared.subscriptions")  # mcp 2.x
    events: list[Any] = []
    if getattr(honored, "tools_list_changed", None):
        events.append(kinds.ToolsListChanged())
    if getattr(honored, "prompts_list_changed", None):
        events.append(kinds.PromptsListChanged())
    if getattr(honored, "resources_list_changed", None):
        events.append(kinds.ResourcesListChanged())
    events.extend(kinds.ResourceUpdated(uri) for uri in getattr(honored, "resource_subscriptions", None) or ())
    return events


@contextlib.asynccontextmanager
async def listen(session: ResilientSession, filters: dict[str, Any]) -> AsyncIterator[HealedSubscription]:
    subscription = HealedSubscription(session, filters)
    await subscription._open()
    try:
        yield subscription
    finally:
        await subscription.aclose()
