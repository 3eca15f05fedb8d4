"""What the patched SDK transports yield: the session's streams, healed by a :class:`~.relay.Relay`
that owns the real transport; and the credential-free key of the server each relay heals."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pluggy
from anyio.streams.memory import MemoryObjectSendStream

from .. import telemetry
from .link import _close
from .relay import CLOSE_TIMEOUT, Relay

__all__ = ["healed_streams", "relay_streams", "server_key"]


def server_key(kind: str, target: Any) -> str:
    """A stable, credential-free key of the connection: the URL without user-info and query, or the command."""
    if kind == "stdio":
        command = getattr(target, "command", "stdio")
        args = " ".join(str(a) for a in getattr(target, "args", []) or [])
        return f"stdio:{command} {args}".strip()
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(str(target))
    except ValueError:
        return "<url>"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _SessionWriter:
    """The stream the session writes to: each message goes into the relay in the writer's own task (no
    extra hop through a task of the relay's), so a tracer's scope and the caller's context come along.
    The SDK's own stream beneath only carries the close (and ``send_nowait``, which cannot wait)."""

    def __init__(self, inner: MemoryObjectSendStream[Any], relay: Relay) -> None:
        self._inner = inner
        self._relay = relay
        self._closed = False

    async def send(self, item: Any) -> None:
        if self._closed or self._relay._closing:
            await self._inner.send(item)  # the stream's own answer: closed, or read by the relay to the end
            return
        await self._relay._from_session(item, telemetry.scope())

    def send_nowait(self, item: Any) -> None:
        self._inner.send_nowait(item)

    async def aclose(self) -> None:
        self._closed = True
        await self._inner.aclose()

    def close(self) -> None:
        self._closed = True
        self._inner.close()

    def clone(self) -> Any:
        return _SessionWriter(self._inner.clone(), self._relay)

    def statistics(self) -> Any:
        return self._inner.statistics()

    async def __aenter__(self) -> _SessionWriter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def healed_streams(
    open_transport: Callable[[], contextlib.AbstractAsyncContextManager[Any]],
    *,
    kind: str,
    server: str,
    with_session_id: bool,
    pm: pluggy.PluginManager | None = None,
) -> contextlib.AbstractAsyncContextManager[Any]:
    """The streams of an SDK transport, healed: what the patched transport functions yield."""
    return relay_streams(Relay(open_transport, kind=kind, server=server, pm=pm), with_session_id=with_session_id)


@contextlib.asynccontextmanager
async def relay_streams(relay: Relay, *, with_session_id: bool) -> AsyncIterator[Any]:
    """The streams a session reads and writes through ``relay`` (built by the caller, with its own bounds
    and owner), while the relay's owner task runs: ``(read, write)``, or with ``relay.session_id``."""
    to_session, session_read = anyio.create_memory_object_stream[Any](0)
    session_write, from_session = anyio.create_memory_object_stream[Any](0)
    relay._session_send = to_session
    try:
        async with anyio.create_task_group() as tg:
            relay._tg = tg
            await tg.start(relay.own)
            tg.start_soon(relay._up, from_session)
            try:
                writer = _SessionWriter(session_write, relay)
                if with_session_id:
                    yield session_read, writer, relay.session_id
                else:
                    yield session_read, writer
            finally:
                relay._closing = True
                await session_write.aclose()
                link = relay._link
                if link is not None:
                    link.trouble.set()
                relay._wanted.set()
                with anyio.move_on_after(CLOSE_TIMEOUT):
                    await relay.closed.wait()
                tg.cancel_scope.cancel()
    finally:
        # also when leaving the task group raises (a host task cancelled, an error in the transport's owner)
        _close(to_session, session_read, session_write, from_session)
