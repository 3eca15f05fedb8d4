"""What the patched SDK transports yield: the session's streams, healed by a :class:`~.relay.Relay`
that owns the real transport; and the credential-free key of the server each relay heals.

Both run the relay's logic in the session's own tasks: a message the session writes goes on in the
writer's task, and one the transport sends is taken, matched and passed on in the session's reading task.
No message waits for a task of the relay's in between (each such hop cost about 15 us per message)."""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pluggy
from anyio.streams.memory import MemoryObjectSendStream

from .. import telemetry
from .link import _close
from .relay import CLOSE_TIMEOUT, Relay

__all__ = ["healed_streams", "relay_streams", "server_key"]

log = logging.getLogger("mcp_hooks.healing")


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


class _SessionReader:
    """The stream the session reads: the messages of the link the relay reads from, taken in the session's
    own reading task and passed through the relay's logic there (no extra hop through a task of the
    relay's), and before them what the relay has for the session itself (its error answers, notifications).

    One task reads it (the session's). Its wait on a link is the link's own ``receive()``, with no cancel
    scope around it (a scope per message cost about a fifth of the relay's time). So nothing cuts that wait
    short: a link being given up ends it when its transport closes (every SDK transport ends its read
    stream then, or the SDK's own session would never end either), and what the relay has for the session
    meanwhile (after a rebuild, ``tools/list_changed``) is fetched by a ping of the relay's own on the link,
    whose answer ends the wait (:meth:`~.traffic._Traffic._poke`). Waiting for a link, it waits on an event."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay
        self._queue: deque[Any] = deque()
        self._wake = anyio.Event()
        self._ended = False  # the relay is done: the end of the stream, once the queue is read
        self._closed = False  # the session closed its end

    def put(self, item: Any) -> None:
        if not self._closed:
            self._queue.append(item)
            self.wake()

    def wake(self) -> None:
        """The reader has something new to look at (a message of the relay's, another link, its end). If it
        may be waiting on a link, the link is poked (a reader busy meanwhile finds the message itself)."""
        self._wake.set()
        link = self._relay._reading
        if link is not None and self._queue:
            self._relay._poke(link)

    def end(self) -> None:
        self._ended = True
        self.wake()

    async def __anext__(self) -> Any:
        """The next message (what the session's ``async for`` reads: no extra coroutine for ``receive``)."""
        relay = self._relay
        while True:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._queue:
                return self._queue.popleft()
            if self._ended:
                raise StopAsyncIteration
            link = relay._reading
            if link is None:
                self._wake = anyio.Event()
                await self._wake.wait()
                continue
            try:
                item = await link.read.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                relay._link_ended(link)
                continue
            try:
                item = relay._from_link(link, item)
            except Exception:  # a fault of the relay's must not end the session's reading: it gets the message
                log.exception(
                    "mcp_hooks: the healing relay of %s failed on a message; passed on as it came", relay.server
                )
            if item is not None:
                return item

    def receive_nowait(self) -> Any:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._queue:
            return self._queue.popleft()
        raise anyio.WouldBlock

    def __aiter__(self) -> _SessionReader:
        return self

    async def receive(self) -> Any:
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise anyio.EndOfStream from None

    def close(self) -> None:
        self._closed = True
        self._queue.clear()
        self.wake()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> _SessionReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class _SessionWriter:
    """The stream the session writes to: each message goes into the relay in the writer's own task (no
    extra hop through a task of the relay's), so a tracer's scope and the caller's context come along.
    The SDK's own stream beneath only carries the close (and ``send_nowait``, which cannot wait)."""

    def __init__(self, inner: MemoryObjectSendStream[Any], relay: Relay) -> None:
        self._inner = inner
        self._relay = relay
        self._closed = False

    def send(self, item: Any) -> Awaitable[None]:
        """What ``await stream.send(item)`` awaits: the relay's handling of the message, itself (a coroutine of
        this method's own around it would be one more frame on every message)."""
        if self._closed or self._relay._closing:
            return self._inner.send(item)  # the stream's own answer: closed, or read by the relay to the end
        return self._relay._from_session(item, telemetry.scope())

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
    session_read = relay._reader = _SessionReader(relay)
    session_write, from_session = anyio.create_memory_object_stream[Any](0)
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
        session_read.end()
        _close(session_write, from_session)
