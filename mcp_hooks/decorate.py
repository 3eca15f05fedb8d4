"""``@with_mcp_recovery``: put detection, single-flight reconnect and safe replay on your own function."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from . import telemetry
from .engine import _monotonic, recover_async, recover_sync
from .options import CallDescriber, build_policy

F = TypeVar("F", bound=Callable[..., Any])

_WHERE = "with_mcp_recovery"


@overload
def with_mcp_recovery(func: F, /) -> F: ...
@overload
def with_mcp_recovery(func: None = None, /, **options: Any) -> Callable[[F], F]: ...


def with_mcp_recovery(func: Any = None, /, **options: Any) -> Any:
    """Decorate a sync or async function (or method) that makes MCP calls.

    When it raises, the hooks decide whether the session was lost; if so the session is rebuilt once
    (shared by every concurrent caller of the same owner) and the call replayed when it is safe,
    within ``max_reconnects`` rebuilds and ``deadline`` seconds. Anything else is re-raised unchanged.

    Keyword-only options, checked here (a bad one raises ``TypeError``/``ValueError`` naming it):

    - ``reconnect``: a callable receiving the :class:`~mcp_hooks.ToolCall` (sync, or returning an
      awaitable); ``call.owner`` is the bound instance. Without it the ``reconnect`` hook is asked;
      with neither, the call is replayed as is (right for code that opens a session per call).
    - ``server``, ``framework``: what :class:`~mcp_hooks.ToolCall` reports.
    - ``max_reconnects`` (3), ``deadline`` (30 s, the whole call including recovery).
    - ``replay_safe_tools``: tool names always safe to replay.
    - ``plugin_manager``: a manager to use instead of the process-wide one.
    - ``tool_param``, ``arguments_param``: the parameters holding the tool's name and arguments
      (found by name otherwise: ``name``/``tool_name``/``tool`` and ``arguments``/``args``/...).

    Usable bare (``@with_mcp_recovery``) or with options (``@with_mcp_recovery(reconnect=...)``).
    """
    policy = build_policy(_WHERE, options)

    def decorate(target: Any) -> Any:
        if isinstance(target, (classmethod, staticmethod)):
            return type(target)(decorate(target.__func__))
        if not callable(target):
            raise TypeError(f"{_WHERE}: can only decorate a function or method, got {target!r}")
        if inspect.isasyncgenfunction(target) or inspect.isgeneratorfunction(target):
            raise TypeError(f"{_WHERE}: cannot decorate a generator function ({target!r}); decorate the call")
        describer = CallDescriber(_WHERE, target, policy, options)
        bound_owner = getattr(target, "__self__", None) if inspect.ismethod(target) else None
        describe = describer.describe

        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with telemetry.one_call():
                    started = _monotonic()
                    try:
                        return await target(*args, **kwargs)
                    except Exception as exc:
                        error = exc
                    return await recover_async(
                        policy, lambda: target(*args, **kwargs), describe(args, kwargs, bound_owner), error, started
                    )

            return async_wrapper

        @functools.wraps(target)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            with telemetry.one_call():
                started = _monotonic()
                try:
                    return target(*args, **kwargs)
                except Exception as exc:
                    error = exc
                return recover_sync(
                    policy, lambda: target(*args, **kwargs), describe(args, kwargs, bound_owner), error, started
                )

        return sync_wrapper

    if func is not None:
        return decorate(func)
    return decorate
