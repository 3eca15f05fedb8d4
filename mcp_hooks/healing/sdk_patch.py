"""``instrument("mcp")``: every SDK client transport opened afterwards is healed beneath its session.

The SDK's transport functions (``streamable_http_client``, ``sse_client``, ``stdio_client``) are
replaced in their own modules and in every module already loaded that bound them by name (a framework
that did ``from mcp.client.streamable_http import streamable_http_client`` before ``instrument()``
ran), so the import order does not matter. Modules imported later take the replaced function. The
mcp 1.x ``streamablehttp_client`` calls its module's ``streamable_http_client`` and is covered by it;
mcp 2.x ``Client`` opens its transport through the same functions. ``ClientSession.send_request`` is
wrapped too (:mod:`.sdk_session`), for what lives in the session object: a request its caller abandoned
(mcp 1.x) and the protocol era (mcp 2.x).

``uninstrument("mcp")`` puts the original functions back wherever they were replaced.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ..integration import Integration
from ..sdk import MCP_MAJOR
from . import sdk_session, settings
from .streams import healed_streams, server_key
from .watch import drop_idle_connections, watch_client

__all__ = ["SdkIntegration", "bypass"]

log = logging.getLogger("mcp_hooks.healing")

#: (module, function, kind): the SDK transports that are healed.
TRANSPORTS: tuple[tuple[str, str, str], ...] = (
    ("mcp.client.streamable_http", "streamable_http_client", "http"),
    ("mcp.client.sse", "sse_client", "sse"),
    ("mcp.client.stdio", "stdio_client", "stdio"),
)

_bypass: contextvars.ContextVar[bool] = contextvars.ContextVar("mcp_hooks_bypass_healing", default=False)
_HEALED = "__mcp_hooks_healed__"
#: Whether healing is on: a module imported while it was on keeps the replacement after
#: ``uninstrument``, and the replacement then hands every call to the SDK's own function.
_on = [False]


@contextlib.contextmanager
def bypass() -> Iterator[None]:
    """Transports opened inside are the SDK's own (for code that heals by other means, as ``connect()``)."""
    token = _bypass.set(True)
    try:
        yield
    finally:
        _bypass.reset(token)


def _http_client_factory() -> Any:
    utils = importlib.import_module("mcp.shared._httpx_utils")
    return utils.create_mcp_http_client()


def _healing(original: Callable[..., Any], kind: str) -> Callable[..., Any]:
    """The replacement for one SDK transport function."""

    @functools.wraps(original)
    def healed(*args: Any, **kwargs: Any) -> Any:
        if not _on[0] or _bypass.get():
            return original(*args, **kwargs)
        target = args[0] if args else kwargs.get("url", kwargs.get("server"))
        if kind == "http":
            return _healed_http(original, target, args, kwargs)

        def open_transport() -> Any:
            return original(*args, **kwargs)

        return healed_streams(
            open_transport,
            kind=kind,
            server=server_key(kind, target),
            with_session_id=False,
        )

    setattr(healed, _HEALED, original)
    return healed


@contextlib.asynccontextmanager
async def _healed_http(original: Callable[..., Any], target: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Streamable HTTP: the SDK is handed an HTTP client whose transport is watched (the caller's own
    client, or one made as the SDK would make it), kept open across rebuilds."""
    async with contextlib.AsyncExitStack() as stack:
        client = kwargs.get("http_client")
        if client is None:
            client = await stack.enter_async_context(_http_client_factory())
            kwargs = {**kwargs, "http_client": client}
        watch_client(client)
        first = True

        @contextlib.asynccontextmanager
        async def open_transport() -> Any:
            nonlocal first
            if not first:  # a rebuild: its handshake on a new connection, not on one the lost session kept
                await drop_idle_connections(client)
            first = False
            async with original(*args, **kwargs) as streams:
                yield streams

        async with healed_streams(
            open_transport,
            kind="http",
            server=server_key("http", target),
            with_session_id=MCP_MAJOR < 2,
        ) as streams:
            yield streams


class SdkIntegration(Integration):
    """The built-in integration ``"mcp"``: heals every SDK client session beneath itself."""

    name = "mcp"
    distribution = "mcp"
    min_version = "1.24"
    max_version = "3"
    patches = (sdk_session.SEND_REQUEST,)

    def __init__(self) -> None:
        super().__init__()
        self._replaced: list[tuple[Any, str, Any]] = []  # (module, attribute, original)

    def configure(self, **options: Any) -> None:
        """``instrument("mcp", deadline=..., max_reconnects=..., breaker_after=..., replay_safe_tools=...)``:
        the healing layer's bounds for the sessions opened from then on (:mod:`.settings`)."""
        settings.configure(options)

    def _on(self) -> None:
        _on[0] = True
        for module_name, attribute, kind in TRANSPORTS:
            module = importlib.import_module(module_name)
            original = getattr(module, attribute)
            original = getattr(original, _HEALED, original)
            replacement = _healing(original, kind)
            self._replace_everywhere(original, replacement)

    def _replace_everywhere(self, original: Any, replacement: Any) -> None:
        for module in list(sys.modules.values()):
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            try:
                names = [name for name, value in namespace.items() if value is original]
            except RuntimeError:  # a module changing its namespace while we look
                continue
            for name in names:
                try:
                    setattr(module, name, replacement)
                except (AttributeError, TypeError):
                    continue
                self._replaced.append((module, name, original))

    def _off(self) -> None:
        _on[0] = False
        settings.reset()
        while self._replaced:
            module, name, original = self._replaced.pop()
            current = getattr(module, name, None)
            if getattr(current, _HEALED, None) is original:
                setattr(module, name, original)
