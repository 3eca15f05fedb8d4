"""The owner task of a ``connect()`` session: it opens the session's one SDK session (mcp 1.x
``ClientSession``, mcp 2.x ``Client``) over the healing relay (:mod:`mcp_hooks.healing`) and holds it
until the session closes. The relay beneath rebuilds the transport after every loss, so the SDK session
is never replaced; a transport that dies never cancels the caller's task (the owner task is its own).

What it opens the relay with: the caller's HTTP options and one connection pool for every generation
(its idle connections closed before a rebuild), or the stdio child the SDK spawns.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import pluggy

from .. import telemetry
from ..engine import DEFAULT_DEADLINE
from ..healing.relay import Relay
from ..healing.sdk_patch import bypass
from ..healing.settings import HealSettings
from ..healing.streams import relay_streams, server_key
from ..healing.watch import close_idle, watch_client
from ..sdk import HTTPX as _httpx
from ..sdk import MCP_MAJOR

log = logging.getLogger("mcp_hooks.connect")

#: Circuit breaker: once no session could be opened for this long, calls fail at once with
#: :class:`~mcp_hooks.CircuitOpen` while the relay keeps probing the server in the background.
BREAKER_AFTER = 15.0
#: How long closing a session waits for its owner task (then it is cancelled, and waited for again).
CLOSE_WAIT = 10.0


@dataclasses.dataclass(frozen=True)
class _Options:
    headers: Mapping[str, str] | None
    auth: Any
    timeout: float
    sse_read_timeout: float
    read_timeout_seconds: float | None
    mode: str
    heal: bool
    keepalive: float | None
    breaker_after: float | None
    call_timeout: float | None
    client_info: Any
    session_kwargs: Mapping[str, Any]


class _Owning:
    """Opens, holds and closes the one SDK session of a ``connect()`` session (see the module)."""

    def __init__(self, target: Any, options: _Options, settings: HealSettings, pm: pluggy.PluginManager | None) -> None:
        self._target = target
        self._options = options
        self._settings = settings
        self._pm = pm
        self._is_http = isinstance(target, str)
        self.server = server_key("http" if self._is_http else "stdio", target)
        self._relay: Relay | None = None
        self._api: Any = None
        self._pool: Any = None  # the HTTP connection pool of every generation
        self._closing = False
        self._ready: asyncio.Future[BaseException | None] | None = None
        self._stop = asyncio.Event()
        self._owner_task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        """Open the session (bounded by the deadline); the error that kept it from opening, typed."""
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        self._owner_task = loop.create_task(self._owner(), name=f"mcp_hooks owner {self.server}")
        deadline = self._relay_deadline()
        try:
            error = await asyncio.wait_for(asyncio.shield(self._ready), deadline)
        except asyncio.TimeoutError:
            await self._close()
            raise TimeoutError(f"could not open an MCP session to {self.server} within {deadline:g} s") from None
        except BaseException:
            await self._close()
            raise
        if error is not None:
            await self._close()
            real = _unwrap(error)
            raise self._typed(real, None) if isinstance(real, Exception) else error

    def _relay_deadline(self) -> float:
        return self._settings.deadline if self._settings.deadline is not None else DEFAULT_DEADLINE

    def _typed(self, error: Exception, tool: str | None) -> Exception:
        return error

    async def _owner(self) -> None:
        telemetry.current.set(telemetry.INTERNAL)
        ready = self._ready
        assert ready is not None
        try:
            async with contextlib.AsyncExitStack() as stack:
                await self._open(stack)
                if not ready.done():
                    ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_result(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            log.debug("mcp_hooks: the session to %s ended with %r", self.server, exc)

    async def _open(self, stack: contextlib.AsyncExitStack) -> None:
        opts = self._options
        if self._is_http:
            pool = self._pool = _httpx.AsyncHTTPTransport()
            http = _httpx.AsyncClient(
                headers=dict(opts.headers or {}),
                auth=opts.auth,
                # A request waiting for one of the pool's connections waits behind requests that are
                # answered in turn: bounded like a stream read, not like a connect (under mcp 1.x a
                # PoolTimeout fails the whole transport, and every call in flight with it).
                timeout=_httpx.Timeout(
                    opts.timeout, read=opts.sse_read_timeout, pool=max(opts.timeout, opts.sse_read_timeout)
                ),
                transport=pool,
            )
            watch_client(http)
            await stack.enter_async_context(http)
            from mcp.client.streamable_http import streamable_http_client

            opened = [0]

            @contextlib.asynccontextmanager
            async def open_transport() -> Any:
                if opened[0]:  # a rebuild: its handshake on a new connection, not on one the lost session kept
                    await close_idle(pool)
                opened[0] += 1
                with bypass():  # the relay below is this session's own: instrument("mcp") must not add one
                    transport = streamable_http_client(self._target, http_client=http)
                async with transport as streams:
                    yield streams

            kind = "http"
        else:
            from mcp.client.stdio import stdio_client

            def open_transport() -> Any:
                with bypass():
                    return stdio_client(self._target)

            kind = "stdio"
        relay = Relay(open_transport, kind=kind, server=self.server, pm=self._pm, settings=self._settings, owner=self)
        self._relay = relay
        streams_cm = relay_streams(relay, with_session_id=False)
        sdk: Any = importlib.import_module("mcp")
        if MCP_MAJOR >= 2:
            client = sdk.Client(
                streams_cm,
                mode=opts.mode,
                read_timeout_seconds=opts.read_timeout_seconds,
                client_info=opts.client_info,
                cache=None,
                **opts.session_kwargs,
            )
            self._api = await stack.enter_async_context(client)
            return
        read_stream, write_stream = await stack.enter_async_context(streams_cm)
        timeout = timedelta(seconds=opts.read_timeout_seconds) if opts.read_timeout_seconds else None
        session = sdk.ClientSession(
            read_stream, write_stream, read_timeout_seconds=timeout, client_info=opts.client_info, **opts.session_kwargs
        )
        await stack.enter_async_context(session)
        await session.initialize()
        self._api = session

    async def _close(self) -> None:
        self._closing = True
        self._stop.set()
        owner = self._owner_task
        if owner is not None and not owner.done():
            done, _ = await asyncio.wait({owner}, timeout=CLOSE_WAIT)
            if not done:
                owner.cancel()
                await asyncio.wait({owner}, timeout=5.0)
        self._pool = None


def _unwrap(error: BaseException) -> BaseException:
    """The one real error inside nested single-member exception groups (the SDK's task groups)."""
    seen = 0
    while seen < 100:
        members = getattr(error, "exceptions", None)
        if not isinstance(members, tuple):
            break
        real = [m for m in members if not isinstance(m, asyncio.CancelledError)]
        if len(real) != 1:
            break
        error = real[0]
        seen += 1
    return error
