"""A realistic session owner and a hook-counting plugin for the engine tests."""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from typing import Any

from core_helpers import session_lost_error

from mcp_hooks import hookimpl, with_mcp_recovery

WAIT_LIMIT = 10.0  # the longest any helper waits for other callers


class SessionOwner:
    """Owns an MCP-like session. Each reconnect starts a new generation; a call that started on a dead
    generation fails with the installed SDK's real session-loss error.

    ``expected_failures``: calls on a dead generation wait until that many have arrived before they
    fail, so every one of them really fails on the dead session.
    """

    def __init__(self, *, reconnect_delay: float = 0.05, expected_failures: int = 1) -> None:
        self.name = "owner-server"
        self.generation = 0
        self.dead: set[int] = set()
        self.lock = threading.Lock()
        self.reconnect_delay = reconnect_delay
        self.expected_failures = expected_failures
        self.arrived = 0
        self.failures = 0
        self.reconnects = 0  # completed rebuilds
        self.reconnects_started = 0
        self.reconnects_cancelled = 0
        self.active = 0
        self.max_active = 0
        self.leaders: list[Any] = []
        self.executions = 0

    def kill(self) -> None:
        """The server forgot the session (restart, redeploy, idle timeout)."""
        with self.lock:
            self.dead.add(self.generation)

    def _enter(self, call: Any) -> None:
        with self.lock:
            self.reconnects_started += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.leaders.append(None if call is None or call.arguments is None else call.arguments.get("i"))

    def _leave(self, healed: bool) -> None:
        with self.lock:
            self.active -= 1
            if healed:
                self.generation += 1
                self.reconnects += 1

    async def areconnect(self, call: Any = None) -> None:
        self._enter(call)
        healed = False
        try:
            await asyncio.sleep(self.reconnect_delay)
            healed = True
        except asyncio.CancelledError:
            with self.lock:
                self.reconnects_cancelled += 1
            raise
        finally:
            self._leave(healed)

    def reconnect(self, call: Any = None) -> None:
        self._enter(call)
        healed = False
        try:
            time.sleep(self.reconnect_delay)
            healed = True
        finally:
            self._leave(healed)

    def _arrive(self, generation: int) -> bool:
        with self.lock:
            self.executions += 1
            if generation not in self.dead:
                return False
            self.arrived += 1
            return True

    def _fail(self) -> None:
        with self.lock:
            self.failures += 1
        raise session_lost_error()

    async def _call_async(self, name: str, arguments: Any) -> tuple[str, int]:
        generation = self.generation
        if self._arrive(generation):
            limit = time.monotonic() + WAIT_LIMIT
            while self.arrived < self.expected_failures and time.monotonic() < limit:
                await asyncio.sleep(0.002)
            self._fail()
        await asyncio.sleep(0)
        return name, generation

    def _call_sync(self, name: str, arguments: Any) -> tuple[str, int]:
        generation = self.generation
        if self._arrive(generation):
            limit = time.monotonic() + WAIT_LIMIT
            while self.arrived < self.expected_failures and time.monotonic() < limit:
                time.sleep(0.002)
            self._fail()
        return name, generation


def owner_class(pm: Any, *, sync_reconnect: str = "sync", **options: Any) -> type[SessionOwner]:
    """A ``SessionOwner`` subclass whose calls are decorated with ``with_mcp_recovery`` using ``pm``."""

    def sync_rebuild(call: Any) -> Any:
        return call.owner.reconnect(call) if sync_reconnect == "sync" else call.owner.areconnect(call)

    class Owner(SessionOwner):
        @with_mcp_recovery(reconnect=lambda call: call.owner.areconnect(call), plugin_manager=pm, **options)
        async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> tuple[str, int]:
            return await self._call_async(name, arguments)

        @with_mcp_recovery(reconnect=sync_rebuild, plugin_manager=pm, **options)
        def call_tool_sync(self, name: str, arguments: dict[str, Any] | None = None) -> tuple[str, int]:
            return self._call_sync(name, arguments)

    return Owner


class HookCounter:
    """A plugin that implements every hook, counts the calls and has no opinion."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.errors: dict[str, list[BaseException]] = collections.defaultdict(list)
        self.lock = threading.Lock()

    def _hit(self, name: str, error: BaseException | None = None) -> None:
        with self.lock:
            self.calls[name] += 1
            if error is not None:
                self.errors[name].append(error)

    @hookimpl
    def on_tool_error(self, call, error):
        self._hit("on_tool_error", error)

    @hookimpl
    def should_reconnect(self, call, error):
        self._hit("should_reconnect", error)

    @hookimpl
    def is_replay_safe(self, call, error):
        self._hit("is_replay_safe", error)

    @hookimpl
    def reconnect(self, call):
        self._hit("reconnect")

    @hookimpl
    def on_reconnect(self, call, error):
        self._hit("on_reconnect", error)

    @hookimpl
    def on_recovered(self, call):
        self._hit("on_recovered")

    @hookimpl
    def on_giveup(self, call, error):
        self._hit("on_giveup", error)
