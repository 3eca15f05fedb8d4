"""Options shared by ``with_mcp_recovery`` and ``attach``: validated once, and the ``ToolCall`` builder."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import pluggy

from . import checks
from .calls import ToolCall
from .engine import DEFAULT_DEADLINE, DEFAULT_MAX_RECONNECTS, RecoveryPolicy

OPTION_NAMES = frozenset(
    {
        "reconnect",
        "server",
        "framework",
        "max_reconnects",
        "deadline",
        "replay_safe_tools",
        "plugin_manager",
        "tool_param",
        "arguments_param",
    }
)

#: Parameter names searched for the tool's name and its arguments, in order.
TOOL_PARAMS = ("name", "tool_name", "tool")
ARGUMENT_PARAMS = ("arguments", "args", "tool_args", "tool_input", "params", "input")
_OWNER_PARAMS = ("self", "cls")


def build_policy(where: str, options: Mapping[str, Any]) -> RecoveryPolicy:
    """Check every option and build the policy; a bad option raises naming it."""
    unknown = sorted(set(options) - OPTION_NAMES)
    if unknown:
        raise TypeError(
            f"{where}: unknown option(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(OPTION_NAMES))}"
        )
    reconnect = options.get("reconnect")
    if reconnect is not None and not callable(reconnect):
        raise TypeError(
            f"{where}: option 'reconnect' must be a callable receiving the ToolCall (sync or async), got {reconnect!r}"
        )
    server = options.get("server")
    if server is not None and (not isinstance(server, str) or not server):
        raise TypeError(f"{where}: option 'server' must be a non-empty string, got {server!r}")
    framework = options.get("framework", "mcp")
    if not isinstance(framework, str) or not framework:
        raise TypeError(f"{where}: option 'framework' must be a non-empty string, got {framework!r}")
    max_reconnects = checks.max_reconnects(where, options.get("max_reconnects", DEFAULT_MAX_RECONNECTS))
    deadline = checks.deadline(where, options.get("deadline", DEFAULT_DEADLINE))
    names = checks.tool_names(where, options.get("replay_safe_tools", ()))
    pm = options.get("plugin_manager")
    if pm is not None and not isinstance(pm, pluggy.PluginManager):
        raise TypeError(f"{where}: option 'plugin_manager' must be a pluggy.PluginManager, got {pm!r}")
    return RecoveryPolicy(
        server=server,
        framework=framework,
        max_reconnects=max_reconnects,
        deadline=deadline,
        replay_safe_tools=names,
        reconnect=reconnect,
        plugin_manager=pm,
    )


class CallDescriber:
    """Builds the :class:`ToolCall` of a failed call from its arguments (only when a call fails)."""

    __slots__ = ("arguments_param", "default_server", "is_method", "policy", "signature", "tool_param")

    def __init__(
        self,
        where: str,
        function: Callable[..., Any],
        policy: RecoveryPolicy,
        options: Mapping[str, Any],
    ) -> None:
        self.policy = policy
        try:
            self.signature: inspect.Signature | None = inspect.signature(function)
        except (TypeError, ValueError):
            self.signature = None
        params = list(self.signature.parameters) if self.signature is not None else []
        self.is_method = bool(params) and params[0] in _OWNER_PARAMS
        self.tool_param = self._pick(where, "tool_param", options.get("tool_param"), TOOL_PARAMS, params)
        self.arguments_param = self._pick(
            where, "arguments_param", options.get("arguments_param"), ARGUMENT_PARAMS, params
        )
        self.default_server = policy.server or getattr(function, "__qualname__", None) or repr(function)

    @staticmethod
    def _pick(where: str, option: str, given: Any, candidates: tuple[str, ...], params: list[str]) -> str | None:
        if given is not None:
            if not isinstance(given, str):
                raise TypeError(f"{where}: option {option!r} must be a parameter name (str), got {given!r}")
            if params and given not in params:
                raise ValueError(
                    f"{where}: option {option!r} names {given!r}, which is not a parameter of the function "
                    f"(parameters: {', '.join(params)})"
                )
            return given
        return next((p for p in candidates if p in params), None)

    def describe(self, args: tuple[Any, ...], kwargs: Mapping[str, Any], owner: Any = None) -> ToolCall:
        bound: Mapping[str, Any] = {}
        if self.signature is not None:
            call_args = args
            if owner is not None and self.is_method and not (args and args[0] is owner):
                call_args = (owner, *args)
            try:
                binding = self.signature.bind_partial(*call_args, **kwargs)
                binding.apply_defaults()
                bound = binding.arguments
            except TypeError:
                bound = {}
            if owner is None and self.is_method and call_args:
                owner = call_args[0]
        tool = bound.get(self.tool_param) if self.tool_param else None
        arguments = bound.get(self.arguments_param) if self.arguments_param else None
        return ToolCall(
            server=self.server_for(owner),
            tool=tool if isinstance(tool, str) else None,
            arguments=arguments if isinstance(arguments, Mapping) else None,
            annotations=None,
            attempt=1,
            owner=owner,
            framework=self.policy.framework,
        )

    def server_for(self, owner: Any) -> str:
        if self.policy.server is not None or owner is None:
            return self.default_server
        for attr in ("url", "server_url", "server_name", "name"):
            value = getattr(owner, attr, None)
            if isinstance(value, str) and value:
                return value
        return f"{type(owner).__qualname__}@{id(owner):x}"
