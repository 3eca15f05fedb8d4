"""The patch kit: a function or method of someone else's module wrapped in place, and put back exactly.

Every integration patches the same way: ``Patch("package.module", "Class.method", wrapper)`` with
``wrapper(wrapped, instance, args, kwargs)`` (wrapt's signature), listed in the integration's
``patches`` table (:class:`~mcp_hooks.Integration`) or added and removed by hand:

- ``add()`` wraps the target now when its module is imported, else when it is (a post-import hook, so
  the kit never imports a framework itself); adding twice wraps once;
- ``remove()`` puts back exactly what was there: the class's own attribute, or nothing when the target
  was inherited. When someone else wrapped the target after us, their wrapper is kept (never dropped):
  ours stays beneath it and passes every call straight through until it is added again;
- a target that is missing is an error naming it when ``required`` (the framework changed: better to
  step aside loudly than to patch half of it), else it is skipped with one debug line.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any

import wrapt

__all__ = ["Patch"]

log = logging.getLogger("mcp_hooks.patch")
_MISSING: Any = object()


class Patch:
    """One target wrapped in place; see the module's docstring.

    :param module: the module that holds the target (``"tools.mcp_tool"``).
    :param qualname: the target in it (``"_make_tool_handler"``, ``"MCPServerTask._run_http"``).
    :param wrapper: ``wrapper(wrapped, instance, args, kwargs)``, called for every call while added.
    :param required: a missing target raises (from ``add()``; logged when its module is imported later).
    :param owner: who patches, for log lines and errors (``"mcp_hooks.hermes"``).
    """

    def __init__(
        self,
        module: str,
        qualname: str,
        wrapper: Callable[[Any, Any, Any, Any], Any],
        *,
        required: bool = True,
        owner: str = "mcp_hooks",
    ) -> None:
        if not module or not qualname or not all(part.isidentifier() for part in qualname.split(".")):
            raise ValueError(f"Patch: target must be a module and a qualified name, got {module!r}, {qualname!r}")
        if not callable(wrapper):
            raise TypeError(f"Patch: option 'wrapper' must be callable, got {wrapper!r}")
        self.module = module
        self.path = tuple(qualname.split("."))
        self.wrapper = wrapper
        self.required = required
        self.owner = owner
        #: whether calls go through ``wrapper`` (set by ``add()``, cleared by ``remove()``)
        self.wanted = False
        #: what was wrapped (the target as it was found), while wrapped
        self.original: Any = None
        self._lock = threading.RLock()
        self._parent: Any = None
        self._own: Any = _MISSING  # the parent's own attribute before (or _MISSING: it was inherited)
        self._installed: Any = None
        self._hooked = False

    @property
    def target(self) -> str:
        return f"{self.module}:{'.'.join(self.path)}"

    @property
    def applied(self) -> bool:
        """Whether the target is wrapped and the wrapper is active."""
        return self._installed is not None and self.wanted

    def __repr__(self) -> str:
        return f"<Patch {self.target} {'applied' if self.applied else 'wanted' if self.wanted else 'off'}>"

    def add(self) -> None:
        with self._lock:
            self.wanted = True
            if self._installed is not None:
                return  # wrapped already (or still beneath a wrapper added after ours): active again
            module = sys.modules.get(self.module)
            if module is not None:
                self._apply(module)
            elif not self._hooked:
                self._hooked = True
                wrapt.register_post_import_hook(self._on_import, self.module)

    def remove(self) -> None:
        with self._lock:
            self.wanted = False
            installed = self._installed
            if installed is None:
                return
            name = self.path[-1]
            if vars(self._parent).get(name) is not installed:
                # wrapped again by someone else since: keep theirs; ours stays beneath, passing calls through
                log.debug("%s: %s was wrapped again by someone else; left in place, inactive", self.owner, self.target)
                return
            if self._own is _MISSING:
                delattr(self._parent, name)
            else:
                setattr(self._parent, name, self._own)
            self.original = None
            self._parent, self._own, self._installed = None, _MISSING, None

    def _on_import(self, module: Any) -> None:
        # A post-import hook cannot be removed: it does nothing once the patch is no longer wanted.
        with self._lock:
            if not self.wanted or self._installed is not None:
                return
            try:
                self._apply(module)
            except Exception:  # never break the import of someone else's module
                log.exception("%s: could not patch %s when its module was imported", self.owner, self.target)

    def _apply(self, module: Any) -> None:
        parent: Any = module
        try:
            for part in self.path[:-1]:
                parent = getattr(parent, part)
            name = self.path[-1]
            own = vars(parent).get(name, _MISSING)
            current = own if own is not _MISSING else getattr(parent, name)
        except (AttributeError, TypeError) as missing:
            if self.required:
                raise RuntimeError(
                    f"{self.owner}: {self.target} not found; this version of {self.module.split('.')[0]} "
                    "is not supported"
                ) from missing
            log.debug("%s: %s not found; skipped", self.owner, self.target)
            return
        installed: Any = wrapt.FunctionWrapper(current, self._call)
        setattr(parent, name, installed)
        self.original = current
        self._parent, self._own, self._installed = parent, own, installed

    def _call(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not self.wanted:
            return wrapped(*args, **kwargs)
        return self.wrapper(wrapped, instance, args, kwargs)
