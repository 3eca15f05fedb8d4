"""Recovery put on a function: your own, with ``@with_mcp_recovery``, or someone else's, in place and
reversibly, with ``attach("package.module:Qualified.name")``. Both take the same options and run the
same way: the call, and on an error the engine's recovery of it.

``attach`` wraps its target with ``wrapt.FunctionWrapper`` (so methods, classmethods and staticmethods
bind as before and ``inspect.iscoroutinefunction`` still answers the same). Attaching the same target
twice returns the same handle and wraps once; ``detach()`` puts back exactly what was there (or removes
the attribute again when the target was inherited). A target whose module is not imported yet is
attached by a post-import hook when it is. Every wrapper checks that its handle is still attached,
because a post-import hook cannot be removed and bound methods made while attached keep the wrapper.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import wrapt

from . import telemetry
from .calls import ToolCall
from .engine import RecoveryPolicy, _monotonic, recover_async, recover_sync
from .options import CallDescriber, build_policy

__all__ = ["AttachHandle", "attach", "with_mcp_recovery"]

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger("mcp_hooks.attach")
_MISSING = object()

_handles: dict[str, AttachHandle] = {}
_lock = threading.RLock()


#: What a call was, from its arguments and owner (a :class:`~mcp_hooks.options.CallDescriber`'s).
Describe = Callable[[tuple[Any, ...], dict[str, Any], Any], ToolCall]


async def _recovered_async(
    policy: RecoveryPolicy,
    target: Callable[..., Awaitable[Any]],
    args: Any,
    kwargs: Any,
    describe: Describe,
    owner: Any,
    scoped: bool = False,
) -> Any:
    """``await target(*args, **kwargs)``, and on an error the engine's recovery of it (``describe`` says what
    the call was), every attempt in one tracer scope when a tracer is installed (``scoped``: entered). The
    happy path makes no closure and enters no context: one coroutine besides the wrapper's."""
    if not scoped and telemetry._tracer is not None:  # telemetry.installed(), without a call on this path
        with telemetry.one_call():
            return await _recovered_async(policy, target, args, kwargs, describe, owner, True)
    started = _monotonic()
    try:
        return await target(*args, **kwargs)
    except Exception as exc:
        error = exc
    return await recover_async(policy, lambda: target(*args, **kwargs), describe(args, kwargs, owner), error, started)


def _recovered_sync(
    policy: RecoveryPolicy,
    target: Callable[..., Any],
    args: Any,
    kwargs: Any,
    describe: Describe,
    owner: Any,
    scoped: bool = False,
) -> Any:
    """:func:`_recovered_async`'s twin for a sync ``target``."""
    if not scoped and telemetry._tracer is not None:
        with telemetry.one_call():
            return _recovered_sync(policy, target, args, kwargs, describe, owner, True)
    started = _monotonic()
    try:
        return target(*args, **kwargs)
    except Exception as exc:
        error = exc
    return recover_sync(policy, lambda: target(*args, **kwargs), describe(args, kwargs, owner), error, started)


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
    policy = build_policy("with_mcp_recovery", options)

    def decorate(target: Any) -> Any:
        if isinstance(target, (classmethod, staticmethod)):
            return type(target)(decorate(target.__func__))
        if not callable(target):
            raise TypeError(f"with_mcp_recovery: can only decorate a function or method, got {target!r}")
        if inspect.isasyncgenfunction(target) or inspect.isgeneratorfunction(target):
            raise TypeError(f"with_mcp_recovery: cannot decorate a generator function ({target!r}); decorate the call")
        describer = CallDescriber("with_mcp_recovery", target, policy, options)
        bound_owner = getattr(target, "__self__", None) if inspect.ismethod(target) else None
        describe = describer.describe

        if inspect.iscoroutinefunction(target):

            @functools.wraps(target)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if telemetry._tracer is not None:
                    return await _recovered_async(policy, target, args, kwargs, describe, bound_owner)
                # _recovered_async's happy path, inline: one coroutine fewer per call (about 100 ns)
                started = _monotonic()
                try:
                    return await target(*args, **kwargs)
                except Exception as exc:
                    error = exc
                call = describe(args, kwargs, bound_owner)
                return await recover_async(policy, lambda: target(*args, **kwargs), call, error, started)

            return async_wrapper

        @functools.wraps(target)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            if telemetry._tracer is not None:
                return _recovered_sync(policy, target, args, kwargs, describe, bound_owner)
            started = _monotonic()  # (as the async wrapper: _recovered_sync's happy path, inline)
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


class AttachHandle:
    """What :func:`attach` returns. ``status`` is ``"attached"``, ``"pending"`` (waiting for the module to
    be imported), ``"detached"``, or ``"failed"`` (the module was imported but the target could not be
    wrapped: see ``error``; the import itself went on); ``attached_on_import`` says the hook (not the
    call) attached it."""

    def __init__(self, target: str, module: str, path: tuple[str, ...], options: dict[str, Any]) -> None:
        self.target = target
        self.module = module
        self.path = path
        self.options = options
        self.status = "pending"
        self.attached_on_import = False
        #: why a pending attach could not be applied when its module was imported (``status == "failed"``)
        self.error: BaseException | None = None
        self._parent: Any = None
        self._original: Any = _MISSING  # what the parent's own __dict__ held, or _MISSING if inherited
        self._wrapper: Any = None

    @property
    def active(self) -> bool:
        return self.status == "attached"

    def __repr__(self) -> str:
        return f"<AttachHandle {self.target} {self.status}>"

    def _apply(self, module: Any) -> None:
        parent = module
        for part in self.path[:-1]:
            parent = getattr(parent, part)
        name = self.path[-1]
        own = vars(parent).get(name, _MISSING) if hasattr(parent, "__dict__") else _MISSING
        # An inherited attribute is taken raw from the class that defines it (a classmethod stays a
        # classmethod and binds to the class it is called on, not to ``parent`` forever).
        current: Any = own if own is not _MISSING else inspect.getattr_static(parent, name, _MISSING)
        if current is _MISSING:  # provided dynamically (a module's __getattr__, a metaclass)
            current = getattr(parent, name)
        if isinstance(current, wrapt.FunctionWrapper) and getattr(current, "_self_mcp_hooks_handle", None) is not None:
            raise RuntimeError(f"attach: {self.target} is already wrapped by another mcp_hooks handle")
        function = current.__func__ if isinstance(current, (classmethod, staticmethod)) else current
        if not callable(function):
            raise TypeError(f"attach: {self.target} is not a function or method ({current!r})")
        policy = build_policy("attach", self.options)
        describer = CallDescriber(f"attach({self.target})", function, policy, self.options)
        wrapper: Any = wrapt.FunctionWrapper(current, _make_wrapper(self, function, policy, describer))
        wrapper._self_mcp_hooks_handle = self
        setattr(parent, name, wrapper)
        self._parent, self._original, self._wrapper = parent, own, wrapper
        self.status = "attached"

    def detach(self) -> None:
        """Put the original back exactly. Safe to call twice."""
        with _lock:
            if self.status == "attached":
                name = self.path[-1]
                if self._original is _MISSING:
                    if vars(self._parent).get(name) is self._wrapper:
                        delattr(self._parent, name)
                else:
                    setattr(self._parent, name, self._original)
            self.status = "detached"
            self._parent = self._original = self._wrapper = None
            if _handles.get(self.target) is self:
                del _handles[self.target]


def _make_wrapper(handle: AttachHandle, function: Any, policy: Any, describer: CallDescriber) -> Any:
    describe = describer.describe

    if inspect.iscoroutinefunction(function):

        async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if handle.status != "attached":
                return await wrapped(*args, **kwargs)
            return await _recovered_async(policy, wrapped, args, kwargs, describe, instance)

        return async_wrapper

    def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if handle.status != "attached":
            return wrapped(*args, **kwargs)
        return _recovered_sync(policy, wrapped, args, kwargs, describe, instance)

    return sync_wrapper


def _parse(target: str) -> tuple[str, tuple[str, ...]]:
    if not isinstance(target, str) or ":" not in target:
        raise ValueError(f"attach: target must read 'package.module:Qualified.name', got {target!r}")
    module, _, qualname = target.partition(":")
    path = tuple(qualname.split("."))
    if not module or not all(part.isidentifier() for part in path):
        raise ValueError(f"attach: target must read 'package.module:Qualified.name', got {target!r}")
    return module, path


def attach(target: str, **options: Any) -> AttachHandle:
    """Wrap ``"package.module:Qualified.name"`` in place with the recovery of :func:`with_mcp_recovery`.

    Takes the same keyword options, checked now. Returns a handle whose ``.detach()`` restores the
    original exactly. If the module is not imported yet, the target is attached when it is imported
    (``handle.status == "pending"`` until then).
    """
    module_name, path = _parse(target)
    build_policy("attach", options)  # fail now, naming the option
    with _lock:
        existing = _handles.get(target)
        if existing is not None and existing.status != "detached":
            return existing
        handle = AttachHandle(target, module_name, path, dict(options))
        _handles[target] = handle
        module = sys.modules.get(module_name)
        if module is not None:
            try:
                handle._apply(module)
            except BaseException:
                del _handles[target]
                raise
            return handle

    def on_import(imported: Any) -> None:
        with _lock:
            if handle.status != "pending" or _handles.get(target) is not handle:
                return
            try:
                handle._apply(imported)
            except Exception as exc:  # never break the import of someone else's module
                handle.status, handle.error = "failed", exc
                del _handles[target]
                log.error("mcp_hooks: could not attach %s when its module was imported: %s", target, exc)
                return
            handle.attached_on_import = True

    wrapt.register_post_import_hook(on_import, module_name)
    return handle


def import_target(target: str) -> Any:
    """Import the module of ``target`` and return the object it names (for tests and diagnostics)."""
    module_name, path = _parse(target)
    obj: Any = importlib.import_module(module_name)
    for part in path:
        obj = getattr(obj, part)
    return obj
