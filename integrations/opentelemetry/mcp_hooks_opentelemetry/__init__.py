"""mcp-hooks for OpenTelemetry: every MCP request as a CLIENT span, and every recovery visible in it.

Turn it on with ``mcp_hooks.instrument("opentelemetry")`` (or ``mcp_hooks.instrument()``, or
``mcp-hooks run``). It uses the global tracer and meter providers unless :func:`configure` names others.

- One CLIENT span per MCP request of every SDK client session (``mcp.ClientSession`` of mcp 1.x and
  2.x, so ``mcp.Client``, ``connect()``, sessions healed by ``instrument("mcp")`` and every framework
  built on the SDK), named and attributed by the OpenTelemetry MCP semantic conventions
  (``{mcp.method.name} {target}``, ``mcp.method.name``, ``gen_ai.tool.name``, ``error.type``, ...);
  the trace context travels in ``params._meta`` (``traceparent``, ``tracestate``).
- A call that is rebuilt and replayed stays ONE span, with the events ``mcp_hooks.session_lost``,
  ``mcp_hooks.rebuild_started``, ``mcp_hooks.rebuilt`` / ``mcp_hooks.rebuild_failed``,
  ``mcp_hooks.replayed``, ``mcp_hooks.outcome_uncertain`` and ``mcp_hooks.gave_up``, and the
  attributes ``mcp_hooks.replayed``, ``mcp_hooks.reconnects`` and ``mcp_hooks.recovery``.
- One INTERNAL span ``mcp_hooks.rebuild {server}`` per rebuild, also for one that started on its own,
  linked to the call that led it.
- Metrics: ``mcp.client.operation.duration`` and ``mcp.client.session.duration`` of the conventions,
  and ``mcp_hooks.rebuilds`` (by server and cause), ``mcp_hooks.rebuild.duration``,
  ``mcp_hooks.recovery.duration`` (loss seen to call answered), ``mcp_hooks.replays``,
  ``mcp_hooks.uncertain`` and ``mcp_hooks.giveups``.

It never changes a call: an error of its own is logged once and the real result (or error) goes on.
It never records a credential: no header is read, URLs lose user-info and query, and tool arguments
and results are recorded only with ``configure(capture_content=True)``.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from mcp_hooks import Patch, ToolCall, hookimpl, telemetry
from mcp_hooks.integration import Integration

from ._tracer import OtelTracer, Scope, _method_and_params, field

__all__ = ["OpenTelemetryIntegration", "configure", "mcp_hooks_integration"]

log = logging.getLogger("mcp_hooks.opentelemetry")

_SESSION_MODULE = "mcp.client.session"
_OPTIONS = ("tracer_provider", "meter_provider", "capture_content")


class OpenTelemetryIntegration(Integration):
    """Spans and metrics for every MCP client session; steps aside without ``opentelemetry-api``."""

    name = "opentelemetry"
    distribution = "opentelemetry-api"
    min_version = "1.20"

    def __init__(self) -> None:
        super().__init__()
        self.options: dict[str, Any] = {"tracer_provider": None, "meter_provider": None, "capture_content": False}
        self.tracer: OtelTracer | None = None
        #: the SDK session's methods wrapped in place (they pass calls straight through while no tracer is set)
        self.patches = tuple(
            Patch(_SESSION_MODULE, f"ClientSession.{attribute}", wrapper, owner="mcp_hooks.opentelemetry")
            for attribute, wrapper in (
                ("send_request", self._send_request),
                ("__aenter__", self._session_enter),
                ("__aexit__", self._session_exit),
            )
        )
        self._complained: set[str] = set()

    def configure(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise TypeError(
                f"mcp_hooks_opentelemetry.configure: unknown option {', '.join(map(repr, unknown))}; "
                f"known: {', '.join(_OPTIONS)}"
            )
        if "capture_content" in options and not isinstance(options["capture_content"], bool):
            raise TypeError("mcp_hooks_opentelemetry.configure: capture_content must be True or False")
        with self._lock:
            self.options.update(options)
            if self.enabled:
                self.uninstrument()
                self.instrument()

    def _on(self) -> None:
        self.tracer = OtelTracer(**self.options)
        telemetry.install(self.tracer)

    def _off(self) -> None:
        if self.tracer is not None:
            telemetry.uninstall(self.tracer)
        self.tracer = None

    # ---------------------------------------------------------------- guards
    def _failed(self, where: str) -> None:
        if where not in self._complained:
            self._complained.add(where)
            log.exception("mcp_hooks: OpenTelemetry instrumentation failed in %s; ignored (logged once)", where)

    # ---------------------------------------------------------------- wrappers of the SDK session
    async def _send_request(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        tracer = self.tracer
        scope: Any = telemetry.current.get()
        if tracer is None or scope is telemetry.INTERNAL:
            return await wrapped(*args, **kwargs)
        token = None
        try:
            request = args[0] if args else kwargs["request"]
            if not isinstance(scope, Scope) or (scope.span is not None and not _same(scope, request)):
                scope = tracer.open_call()  # a request of its own (or a different one inside a wrapped call)
                token = telemetry.current.set(scope)
            sent = tracer.begin(scope, request, instance)
            if sent is not request:
                args, kwargs = ((sent, *args[1:]), kwargs) if args else (args, {**kwargs, "request": sent})
        except Exception:
            self._failed("send_request (start)")
        # Our span is the current one while the SDK sends: under mcp 2.x the SDK's own per-attempt span
        # ("MCP send ...") nests under it and the trace context it puts on the wire descends from it.
        attached = _attach(scope)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            _detach(attached)
            self._after(scope, token, None, exc)
            raise
        _detach(attached)
        self._after(scope, token, result, None)
        return result

    def _after(self, scope: Any, token: Any, result: Any, error: BaseException | None) -> None:
        tracer = self.tracer
        if token is not None:
            telemetry.current.reset(token)
        if tracer is None or not isinstance(scope, Scope):
            return
        try:
            tracer.answered(scope, result, error)
            if token is not None:
                tracer.finish(scope, result, error)
        except Exception:
            self._failed("send_request (end)")

    async def _session_enter(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        entered = await wrapped(*args, **kwargs)
        try:
            _opened[instance] = time.monotonic()
        except TypeError:
            pass
        return entered

    async def _session_exit(self, wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        try:
            return await wrapped(*args, **kwargs)
        finally:
            opened = _opened.pop(instance, None)
            tracer = self.tracer
            if opened is not None and tracer is not None:
                error = args[1] if len(args) > 1 and isinstance(args[1], BaseException) else None
                try:
                    tracer.session_closed(time.monotonic() - opened, error)
                except Exception:
                    self._failed("session duration")

    # ---------------------------------------------------------------- the observer hooks
    def observe(self, action: str, *args: Any) -> None:
        tracer = self.tracer
        if tracer is None:
            return
        try:
            scope = telemetry.current.get()
            getattr(tracer, action)(scope if isinstance(scope, Scope) else None, *args)
        except Exception:
            self._failed(action)


_opened: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def _attach(scope: Any) -> Any:
    span = scope.span if isinstance(scope, Scope) else None
    if span is None:
        return None
    try:
        return otel_context.attach(trace.set_span_in_context(span))
    except Exception:
        return None


def _detach(token: Any) -> None:
    if token is not None:
        try:
            otel_context.detach(token)
        except Exception:
            log.debug("mcp_hooks: could not restore the OpenTelemetry context", exc_info=True)


def _same(scope: Scope, request: Any) -> bool:
    """``request`` is the scope's request sent again (a replay), not another request."""
    method, params = _method_and_params(request)
    name = field(params, "name")
    target = name if isinstance(name, str) and scope.method in ("tools/call", "prompts/get") else None
    return method == scope.method and target == scope.target


mcp_hooks_integration = OpenTelemetryIntegration()


def configure(**options: Any) -> None:
    """Set ``tracer_provider``, ``meter_provider`` (default: the global ones) and ``capture_content``
    (record tool arguments and results; off by default, as they may hold user data). Takes effect at
    once when the integration is on. The same as ``mcp_hooks.instrument("opentelemetry", **options)``
    without turning it on."""
    mcp_hooks_integration.configure(**options)


@hookimpl
def on_tool_error(call: ToolCall, error: BaseException) -> None:
    mcp_hooks_integration.observe("lost", call, error)


@hookimpl
def on_reconnect(call: ToolCall, error: BaseException) -> None:
    mcp_hooks_integration.observe("rebuild_started", call, error)


@hookimpl
def on_rebuilt(call: ToolCall, error: BaseException | None, seconds: float) -> None:
    tracer = mcp_hooks_integration.tracer
    if tracer is not None:
        try:
            tracer.rebuild_ended(call, error, seconds)
        except Exception:
            mcp_hooks_integration._failed("rebuild_ended")


@hookimpl
def on_recovered(call: ToolCall) -> None:
    mcp_hooks_integration.observe("recovered", call)


@hookimpl
def on_giveup(call: ToolCall, error: BaseException) -> None:
    mcp_hooks_integration.observe("gave_up", call, error)
