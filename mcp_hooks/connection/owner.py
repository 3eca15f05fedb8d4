"""The owner task of a ``connect()`` session: it opens each link (transport and SDK session, per SDK
major), holds it until it is given up, and closes it.

anyio context managers must be exited by the task that entered them, and under mcp 1.x a transport that
dies fails its task group: one task of the session's own holds them, so neither hurts a caller's task.
A link is opened with a fresh ``initialize`` and no stale session id, bounded in time, its tools listed
once before any call uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from .. import redact, telemetry
from ..classify import Loss, SessionLostMark
from ..engine import CredentialsRefused
from ..healing.relay import tools_digest
from ..healing.sdk_patch import bypass
from ..healing.watch import close_idle, watch_client
from ..sdk import HTTPX as _httpx
from ..sdk import MCP_MAJOR
from .link import _Link, _uncancel
from .rebuild import DRAIN_GRACE, _Rebuilding

log = logging.getLogger("mcp_hooks.connect")


class _Owning(_Rebuilding):
    """A session's owner task and the lifetime of its links."""

    # --- the owner task ------------------------------------------------------------------------------------

    async def _owner(self) -> None:
        telemetry.current.set(telemetry.INTERNAL)  # this task's own requests are no caller's
        while not self._closing:
            await self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                break
            build = self._build
            previous = self._link
            link = _Link(self, self._generation + 1)
            published = False
            try:
                async with contextlib.AsyncExitStack() as stack:
                    await self._open_bounded(stack, link)
                    if previous is not None:
                        _inherit_validators(previous.sdk_session, link.sdk_session)
                    self._generation = link.generation
                    if self._link is not None:
                        self.reconnects += 1
                    self._link = link
                    link.usable = True
                    published = True
                    if self._unreachable_since is not None:
                        log.info("mcp_hooks: %s answers again", self.server)
                        self._unreachable_since = None
                    if build is not None and not build.done():
                        build.set_result(None)
                    if self._build is build:
                        self._build = None
                    if previous is not None:
                        self._tell_if_tools_changed(previous, link)
                    await link.stop.wait()
                    link.usable = False
                    if link.callers:
                        with contextlib.suppress(asyncio.TimeoutError):
                            await asyncio.wait_for(link.drained.wait(), DRAIN_GRACE)
                    self._cut_callers(link)
            except Exception as exc:
                link.death = exc
                if not published and link.refused_credentials is not None:
                    exc = CredentialsRefused(
                        f"MCP server {self.server} refused the credentials (HTTP {link.refused_credentials}) "
                        "when a new session was opened"
                    )
                if not published:
                    log.info("mcp_hooks: could not open a session to %s: %s", self.server, _describe(exc))
                    if self._unreachable_since is None and self._link is not None:
                        self._unreachable_since = (time.monotonic(), time.time())
                    if build is not None and not build.done():
                        build.set_result(_unwrap(exc))
                    if self._build is build:
                        self._build = None
                else:
                    log.debug("mcp_hooks: the connection to %s died: %s", self.server, _describe(exc))
            finally:
                link.usable = False
                self._cut_callers(link)
            if published and not self._closing and link.trouble is None and self._options.heal:
                # The transport died by itself: heal now rather than at the next call.
                self._give_up_link(link, SessionLostMark(Loss.IN_FLIGHT, detail="the transport died"))

    def _cut_callers(self, link: _Link) -> None:
        for task in list(link.callers):
            if task not in link.cut and not task.done():
                link.cut.add(task)
                task.cancel()

    async def _open_bounded(self, stack: contextlib.AsyncExitStack, link: _Link) -> None:
        """``_open``, cut short (as a ``ConnectionError``) when the watcher gives the link up before it is
        open, or after ``deadline`` seconds: a build never hangs, not even a background one."""
        task = asyncio.current_task()
        assert task is not None
        link.opening = task
        timer = asyncio.get_running_loop().call_later(
            self._deadline, link.abort_opening, f"opening took longer than {self._deadline:g} s"
        )
        try:
            await self._open(stack, link)
            if self._link is not None:
                await self._set_up_again(link)
            await self._list_tools_first(link)
            if link.aborted is not None:  # cancelled as it returned: the cancellation lands here (or was
                await asyncio.sleep(0)  # swallowed on the way: the outcome is the same)
                raise asyncio.CancelledError
        except asyncio.CancelledError:
            if link.aborted is None or self._closing:
                raise
            _uncancel(task)
            raise ConnectionError(f"MCP session to {self.server}: {link.aborted}") from None
        finally:
            timer.cancel()
            link.opening = None

    async def _set_up_again(self, link: _Link) -> None:
        """On a rebuilt link, before any call uses it: the last logging level and every resource still
        subscribed, as the caller set them on the sessions before (the server forgot them with the lost
        session). One that fails is logged and left: the calls go on without it."""
        steps = [("set_logging_level", *self._level)] if self._level is not None else []
        steps += [("subscribe_resource", *step) for step in list(self._subscribed.values())[:1000]]
        for method, args, kwargs in steps:
            try:
                await getattr(link.api, method)(*args, **kwargs)
            except Exception as exc:
                log.info(
                    "mcp_hooks: %s: %s could not be set up again on the rebuilt session: %s",
                    self.server,
                    method,
                    _describe(exc),
                )

    def _tell_if_tools_changed(self, before: _Link, now: _Link) -> None:
        """``notifications/tools/list_changed`` to the caller's ``message_handler`` when the rebuilt
        session lists other tools (names or annotations) than the lost one, so a caller that caches the
        tools lists them again. Told from a task of its own: the handler may call the session."""
        handler = self._options.session_kwargs.get("message_handler")
        if handler is None or before.annotations is None or now.annotations is None:
            return
        if tools_digest(before.annotations) == tools_digest(now.annotations):
            return
        types: Any = importlib.import_module("mcp.types")
        notification = types.ToolListChangedNotification(method="notifications/tools/list_changed")
        if MCP_MAJOR < 2:
            notification = types.ServerNotification(notification)

        async def tell() -> None:
            try:
                await handler(notification)
            except Exception as exc:  # the caller's handler: its failure is not the session's
                log.warning("mcp_hooks: message_handler failed on tools/list_changed: %r", exc)

        self._notify_task = asyncio.get_running_loop().create_task(tell())

    async def _list_tools_first(self, link: _Link) -> None:
        """List the tools of a session just opened, before any call uses it.

        The SDK lists them itself before a session's first ``call_tool`` (to validate results), once per
        call until one listing has answered: after a reconnect, N calls replayed at once would send N
        listings (measured: 1,000 replays under mcp 1.x took 4x as long as 1,000 warm calls). One listing
        here fills the SDK's cache and gives the replay decisions their annotations. A failure leaves
        both to the calls, as without it; a lost session cuts it short like the handshake.
        """
        try:
            link.annotations = await _tool_annotations(link.api.list_tools)
        except Exception as exc:
            log.debug("mcp_hooks: listing the tools of %s after opening failed: %r", self.server, exc)

    async def _open(self, stack: contextlib.AsyncExitStack, link: _Link) -> None:
        opts = self._options
        if self._is_http:
            pool = self._pool
            if pool is None:  # one pool for every link: its TLS context is made once (about 18 ms each)
                pool = self._pool = _httpx.AsyncHTTPTransport()
            else:  # a rebuild: its handshake on a new connection, not on one the lost session kept
                await close_idle(pool)
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
            # Every request of this client is the link's (the SDK sends some from the caller's task).
            watch_client(http, link, owns_transport=False)
            await stack.enter_async_context(http)
            from mcp.client.streamable_http import streamable_http_client

            with bypass():  # connect() heals by its own means: the SDK transport must be its own
                transport = streamable_http_client(self._target, http_client=http)
        else:
            from mcp.client.stdio import stdio_client

            with bypass():
                transport = stdio_client(self._target)
        sdk: Any = importlib.import_module("mcp")
        if MCP_MAJOR >= 2:
            client = sdk.Client(
                transport,
                mode=opts.mode,
                read_timeout_seconds=opts.read_timeout_seconds,
                client_info=opts.client_info,
                cache=None,
                **opts.session_kwargs,
            )
            link.api = await stack.enter_async_context(client)
            link.sdk_session = getattr(client, "session", None)
            return
        streams = await stack.enter_async_context(transport)
        read_stream, write_stream = streams[0], streams[1]
        timeout = timedelta(seconds=opts.read_timeout_seconds) if opts.read_timeout_seconds else None
        session = sdk.ClientSession(
            read_stream,
            write_stream,
            read_timeout_seconds=timeout,
            client_info=opts.client_info,
            **opts.session_kwargs,
        )
        await stack.enter_async_context(session)
        await session.initialize()
        link.api = link.sdk_session = session

    async def _close(self) -> None:
        self._closing = True
        for task in (self._keepalive_task, self._heal_task, self._notify_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 5.0)
        build = self._build
        if build is not None and not build.done():
            build.set_result(RuntimeError(f"the MCP session to {self.server} is closed"))
        link = self._link
        if link is not None:
            link.stop.set()
        self._wanted.set()
        owner = self._owner_task
        if owner is not None and not owner.done():
            done, _ = await asyncio.wait({owner}, timeout=10.0)
            if not done:
                owner.cancel()
                await asyncio.wait({owner}, timeout=5.0)
        if owner is not None and owner.done() and not owner.cancelled():
            exc = owner.exception()
            if exc is not None:
                log.debug("mcp_hooks: owner task of %s ended with %r", self.server, exc)
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.aclose(), 5.0)
            except Exception as exc:  # closing what is left: nothing to report to a caller
                log.debug("mcp_hooks: closing the HTTP connections to %s failed: %r", self.server, exc)


async def _tool_annotations(list_page: Callable[..., Awaitable[Any]]) -> dict[str, Any]:
    """Every tool's annotations, ``list_page()`` then ``list_page(cursor)`` (at most 20 pages)."""
    known: dict[str, Any] = {}
    cursor: Any = None
    for _ in range(20):
        listed = await (list_page() if cursor is None else list_page(cursor))
        for tool in getattr(listed, "tools", []):
            known[tool.name] = tool.annotations
        cursor = getattr(listed, "nextCursor", None) or getattr(listed, "next_cursor", None)
        if not cursor:
            break
    return known


def _inherit_validators(old: Any, new: Any) -> None:
    """Give a rebuilt session the old one's compiled output-schema validators, for the tools whose listed
    schema is unchanged.

    mcp 2.x compiles a tool's validator on the session's first call of that tool (a meta-schema check,
    ~3 ms here, 60x a validation): without this, the first call of each tool after every reconnect pays
    it again (the healed call measured 1.8x a warm one). A compiled validator holds only its schema, so
    sharing it is safe; the schemas are compared as JSON, as the SDK does before reusing one itself.
    mcp 1.x keeps no compiled validators: nothing to do.
    """
    compiled = getattr(old, "_tool_output_validators", None)
    before = getattr(old, "_tool_output_schemas", None)
    now = getattr(new, "_tool_output_schemas", None)
    into = getattr(new, "_tool_output_validators", None)
    if not (
        isinstance(compiled, dict) and isinstance(before, dict) and isinstance(now, dict) and isinstance(into, dict)
    ):
        return
    for name, validator in list(compiled.items())[:1000]:
        if name in into or name not in now or name not in before:
            continue
        try:
            same = json.dumps(before[name], sort_keys=True) == json.dumps(now[name], sort_keys=True)
        except (TypeError, ValueError):
            continue
        if same:
            into[name] = validator


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


def _describe(error: BaseException) -> str:
    error = _unwrap(error)
    return redact.text(f"{type(error).__name__}: {error}")
