"""``ResilientSession.listen()``: the SDK's own 2026-07-28 ``subscriptions/listen`` stream, across losses.

The protocol replays nothing: a stream that drops loses the events sent meanwhile, and the spec tells the
client to listen again and refetch. The healing relay beneath the session does both: it sends the
``subscriptions/listen`` again on the rebuilt transport and, once the new server acknowledges it, tells
the session one event per kind the stream honours (``ToolsListChanged()``, ``PromptsListChanged()``,
``ResourcesListChanged()``, ``ResourceUpdated(uri)`` per subscribed resource), so a consumer that refetches
on events refetches what it may have missed. A server that stays down ends the stream with the error the
relay answers once its deadline has passed; a graceful close by the server ends the iteration, as the
SDK's does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from ..healing.relay import Relay

__all__ = ["HealedSubscription"]


class HealedSubscription:
    """What ``async with session.listen(...) as sub`` gives: ``async for event in sub``, across losses.

    ``honored`` is the filter the server agreed to; ``reopened`` counts how often the relay opened this
    stream again after a loss (one a loss; another stream of the same session counts its own).
    """

    def __init__(self, sub: Any, relay: Relay | None) -> None:
        self._sub = sub
        self._relay = relay

    @property
    def honored(self) -> Any:
        return self._sub.honored

    @property
    def reopened(self) -> int:
        if self._relay is None:
            return 0
        return self._relay.listens_reopened.get(getattr(self._sub, "subscription_id", None), 0)

    def __aiter__(self) -> HealedSubscription:
        return self

    async def __anext__(self) -> Any:
        return await self._sub.__anext__()


@contextlib.asynccontextmanager
async def listen(api: Any, relay: Relay | None, filters: dict[str, Any]) -> AsyncIterator[HealedSubscription]:
    async with api.listen(**filters) as sub:
        yield HealedSubscription(sub, relay)
