"""Spans, events and metrics: one CLIENT span per MCP request, kept across every attempt of a call.

A *scope* is one call as its caller sees it. Its span starts at the call's first request (so it is
named and attributed by what was sent) and ends when the call is answered, or, inside ``connect()``,
``with_mcp_recovery`` and ``attach``, when the last attempt is over. Recovery arrives through the
observer hooks while :data:`mcp_hooks.telemetry.current` holds the scope (a healing relay keeps the
scope each request was sent in, and sets it when it calls the hooks from its own task).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import typing
import weakref
from collections.abc import Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from mcp_hooks import OutcomeUncertain, ToolCall
from mcp_hooks import redact as _redact
from mcp_hooks.classify import classify
from mcp_hooks.sdk import MCP_MAJOR

log = logging.getLogger("mcp_hooks.opentelemetry")

SCOPE_NAME = "mcp_hooks"
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 30, 60, 300)


class Scope:
    """One call across its attempts: its span (once started) and what happened to it."""

    __slots__ = (
        "__weakref__",
        "arguments",
        "carrier",
        "ended",
        "error_type",
        "lost_at",
        "method",
        "reconnects",
        "recovery",
        "replayed",
        "server",
        "session_id",
        "span",
        "started",
        "target",
        "tool",
    )

    def __init__(self) -> None:
        self.span: Any = None
        self.method: str | None = None
        self.target: str | None = None
        self.tool: str | None = None
        self.arguments: Any = None
        self.started = 0.0
        self.carrier: dict[str, str] = {}
        self.server: str | None = None
        self.session_id: str | None = None
        self.error_type: str | None = None
        self.lost_at: float | None = None
        self.replayed = False
        self.reconnects = 0
        self.recovery: str | None = None
        self.ended = False


#: mcp 2.x puts the current trace context into ``params._meta`` itself (and the span of a call is current
#: while the SDK sends it); mcp 1.x does not, so the span's context is put there here.
_SDK_INJECTS = MCP_MAJOR >= 2


@functools.lru_cache(maxsize=512)
def _not_a_field(cls: type, name: str) -> bool:
    """``name`` is neither a field nor a class attribute of the pydantic model ``cls``."""
    fields = getattr(cls, "model_fields", None)
    return isinstance(fields, dict) and name not in fields and not hasattr(cls, name)


def field(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)`` for the SDK's pydantic objects, without pydantic's slow way to a
    missing attribute (a few microseconds each, on every call: ``root`` is absent from mcp 2.x requests,
    ``isError`` from its results, ``uri`` from most params)."""
    if _not_a_field(obj.__class__, name):
        extra = getattr(obj, "__pydantic_extra__", None)  # a model that allows extra keys
        return extra.get(name) if isinstance(extra, dict) else None
    return getattr(obj, name, None)


def _method_and_params(request: Any) -> tuple[str | None, Any]:
    inner = field(request, "root") or request
    return field(inner, "method"), field(inner, "params")


def _meta_type(params_type: type) -> Any:
    """The pydantic class of ``params._meta`` (mcp 1.x), or ``None`` where it is a plain mapping (2.x)."""
    field = getattr(params_type, "model_fields", {}).get("meta")
    if field is None:
        return None
    for candidate in typing.get_args(field.annotation) or (field.annotation,):
        if isinstance(candidate, type) and hasattr(candidate, "model_validate"):
            return candidate
    return None


def with_meta(request: Any, carrier: Mapping[str, str]) -> Any:
    """A copy of the SDK request with ``carrier`` merged into ``params._meta`` (the request is not changed)."""
    root = getattr(request, "root", None)
    wrapped = root is not None
    inner: Any = root if wrapped else request
    params = getattr(inner, "params", None)
    if params is None or not hasattr(params, "model_copy"):
        return request
    meta = getattr(params, "meta", None)
    merged: dict[str, Any] = {}
    if meta is not None:
        merged.update(meta.model_dump(by_alias=True, exclude_none=True) if hasattr(meta, "model_dump") else meta)
    merged.update(carrier)
    meta_type = _meta_type(type(params))
    new_meta = meta_type.model_validate(merged) if meta_type is not None else merged
    new_inner = inner.model_copy(update={"params": params.model_copy(update={"meta": new_meta})})
    return request.model_copy(update={"root": new_inner}) if wrapped else new_inner


@functools.lru_cache(maxsize=256)
def _server_info(server: str) -> dict[str, Any]:
    """The span attributes of a server key (computed once per server): credential-free key, host, port."""
    info: dict[str, Any] = {"mcp_hooks.server": _redact.text(server)}
    host, port = _redact.address(server)
    if host:
        info["server.address"] = host
    if port:
        info["server.port"] = port
    return info


def _error_type(error: BaseException) -> str:
    """``error.type``: the JSON-RPC code of an SDK error, else the exception's type."""
    code = getattr(getattr(error, "error", None), "code", None)
    if isinstance(code, int):
        return str(code)
    return type(error).__qualname__


def _made_up(error: BaseException) -> Mapping[str, Any]:
    """What an error answer made up by mcp-hooks' healing layer says of the request (its
    ``data["mcp-hooks"]``: ``outcome``, ``reason``), or nothing."""
    data = getattr(getattr(error, "error", None), "data", None)
    ours = data.get("mcp-hooks") if isinstance(data, Mapping) else None
    return ours if isinstance(ours, Mapping) else {}


def _is_uncertain(error: BaseException) -> bool:
    return isinstance(error, OutcomeUncertain) or _made_up(error).get("outcome") == "uncertain"


class OtelTracer:
    """The :class:`mcp_hooks.telemetry.Tracer` of this integration."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None, capture_content: bool = False) -> None:
        self.capture_content = capture_content
        self.tracer = trace.get_tracer(SCOPE_NAME, tracer_provider=tracer_provider)
        meter = metrics.get_meter(SCOPE_NAME, meter_provider=meter_provider)
        buckets = {"explicit_bucket_boundaries_advisory": list(_DURATION_BUCKETS)}
        self.operation_duration = meter.create_histogram(
            "mcp.client.operation.duration", unit="s", description="Duration of MCP requests", **buckets
        )
        self.session_duration = meter.create_histogram(
            "mcp.client.session.duration", unit="s", description="Duration of MCP client sessions", **buckets
        )
        self.rebuilds = meter.create_counter(
            "mcp_hooks.rebuilds", unit="{rebuild}", description="MCP sessions rebuilt after a loss"
        )
        self.rebuild_duration = meter.create_histogram(
            "mcp_hooks.rebuild.duration",
            unit="s",
            description="From a loss announced to the rebuilt session",
            **buckets,
        )
        self.recovery_duration = meter.create_histogram(
            "mcp_hooks.recovery.duration",
            unit="s",
            description="From session loss seen to the call answered",
            **buckets,
        )
        self.replays = meter.create_counter("mcp_hooks.replays", unit="{call}", description="Calls sent again")
        self.uncertain = meter.create_counter(
            "mcp_hooks.uncertain", unit="{call}", description="Calls answered with an uncertain outcome"
        )
        self.giveups = meter.create_counter("mcp_hooks.giveups", unit="{call}", description="Recoveries given up")
        self._lock = threading.Lock()
        self._rebuilding: dict[Any, tuple[Any, float]] = {}  # owner key -> (rebuild span, started)
        self._waiting: dict[Any, weakref.WeakSet[Scope]] = {}  # owner key -> scopes that saw the loss

    # ---------------------------------------------------------------- the core's seam (telemetry.Tracer)
    def open_call(self) -> Scope:
        return Scope()

    def close_call(self, scope: Scope, error: BaseException | None) -> None:
        self.finish(scope, None, error)

    def note(self, scope: Scope, server: str, session_id: str | None) -> None:
        scope.server = server
        if session_id:
            scope.session_id = session_id
        if scope.span is not None:
            self._server_attributes(scope)

    # ---------------------------------------------------------------- a request of an SDK session
    def begin(self, scope: Scope, request: Any, session: Any) -> Any:
        """The request is about to be sent in ``scope``: start the span (first request) and return the
        request to send, with the span's trace context in ``params._meta``."""
        if scope.span is None:
            method, params = _method_and_params(request)
            scope.method = method if isinstance(method, str) else "unknown"
            name = field(params, "name")
            scope.target = name if isinstance(name, str) and scope.method in ("tools/call", "prompts/get") else None
            scope.tool = scope.target if scope.method == "tools/call" else None
            scope.arguments = field(params, "arguments")
            scope.started = time.monotonic()
            attributes: dict[str, Any] = {"mcp.method.name": scope.method}
            if scope.method == "tools/call":
                attributes["gen_ai.operation.name"] = "execute_tool"
                if scope.tool:
                    attributes["gen_ai.tool.name"] = scope.tool
            elif scope.method == "prompts/get" and scope.target:
                attributes["gen_ai.prompt.name"] = scope.target
            uri = field(params, "uri")
            if uri is not None:
                attributes["mcp.resource.uri"] = _redact.text(uri)
            request_id = getattr(session, "_request_id", None)  # mcp 1.x: the id this request gets
            if isinstance(request_id, int):
                attributes["jsonrpc.request.id"] = str(request_id)
            version = getattr(session, "_negotiated_version", None)  # mcp 2.x
            if isinstance(version, str):
                attributes["mcp.protocol.version"] = version
            if self.capture_content and scope.arguments is not None:
                attributes["gen_ai.tool.call.arguments"] = _dumps(scope.arguments)
            span_name = f"{scope.method} {scope.target}" if scope.target else scope.method
            scope.span = self.tracer.start_span(span_name, kind=SpanKind.CLIENT, attributes=attributes)
            if scope.server is not None:
                self._server_attributes(scope)
            if not _SDK_INJECTS:
                carrier: dict[str, str] = {}
                propagate.inject(carrier, context=trace.set_span_in_context(scope.span, otel_context.get_current()))
                scope.carrier = carrier
        return with_meta(request, scope.carrier) if scope.carrier else request

    def answered(self, scope: Scope, result: Any, error: BaseException | None) -> None:
        """One attempt of ``scope`` ended (the call may still go on)."""
        if error is not None:
            scope.error_type = _error_type(error)
        elif field(result, "isError") is True or field(result, "is_error") is True:  # 1.x, 2.x
            scope.error_type = "tool_error"
        else:
            scope.error_type = None
            if self.capture_content and scope.span is not None and scope.method == "tools/call":
                content = (
                    getattr(result, "structuredContent", None)
                    or getattr(result, "structured_content", None)
                    or getattr(result, "content", None)
                )
                scope.span.set_attribute("gen_ai.tool.call.result", _dumps(content))

    def finish(self, scope: Scope, result: Any, error: BaseException | None) -> None:
        """The call of ``scope`` is over: attributes, status, the duration metric, the span ended."""
        if scope.ended or scope.span is None:
            return
        scope.ended = True
        span = scope.span
        if error is not None:
            scope.error_type = _error_type(error)
            if _is_uncertain(error) and scope.recovery is None:
                scope.recovery = "uncertain"
        attributes: dict[str, Any] = {"mcp.method.name": scope.method or "unknown"}
        if scope.tool:
            attributes["gen_ai.tool.name"] = scope.tool
            attributes["gen_ai.operation.name"] = "execute_tool"
        if scope.server is not None:
            info = _server_info(scope.server)
            for key in ("server.address", "server.port"):
                if key in info:
                    attributes[key] = info[key]
        ending: dict[str, Any] = {}
        if scope.error_type is not None:
            attributes["error.type"] = scope.error_type
            ending["error.type"] = scope.error_type
            if scope.error_type.lstrip("-").isdigit():
                ending["rpc.response.status_code"] = scope.error_type
            span.set_status(Status(StatusCode.ERROR, _redact.text(error) if error is not None else scope.error_type))
            made_up = _made_up(error) if error is not None else {}
            for key in ("outcome", "reason"):
                if isinstance(made_up.get(key), str):
                    ending[f"mcp_hooks.{key}"] = made_up[key]
            if error is not None:
                span.add_event(
                    "exception",
                    {"exception.type": type(error).__qualname__, "exception.message": _redact.text(error)},
                )
        if scope.recovery is not None or scope.reconnects:
            ending["mcp_hooks.replayed"] = scope.replayed
            ending["mcp_hooks.reconnects"] = scope.reconnects
            ending["mcp_hooks.recovery"] = scope.recovery or "recovered"
        if ending:
            span.set_attributes(ending)
        self.operation_duration.record(time.monotonic() - scope.started, attributes)
        span.end()

    def _server_attributes(self, scope: Scope) -> None:
        span = scope.span
        if span is None or scope.server is None:
            return
        attributes = dict(_server_info(scope.server))
        if scope.session_id:
            attributes["mcp.session.id"] = scope.session_id
        span.set_attributes(attributes)

    def session_closed(self, seconds: float, error: BaseException | None) -> None:
        attributes = {"error.type": _error_type(error)} if error is not None else {}
        self.session_duration.record(seconds, attributes)

    # ---------------------------------------------------------------- recovery, from the observer hooks
    @staticmethod
    def _key(call: ToolCall) -> Any:
        return ("owner", id(call.owner)) if call.owner is not None else ("server", call.server)

    def lost(self, scope: Scope | None, call: ToolCall, error: BaseException) -> None:
        verdict = classify(error)
        if not verdict.is_session_loss or scope is None or scope.span is None:
            return
        if scope.lost_at is None:
            scope.lost_at = time.monotonic()
        scope.span.add_event(
            "mcp_hooks.session_lost",
            {
                "mcp_hooks.loss": verdict.loss.value,
                "mcp_hooks.cause": _redact.text(verdict.reason or type(error).__qualname__),
                "mcp_hooks.attempt": call.attempt,
            },
        )
        with self._lock:
            self._waiting.setdefault(self._key(call), weakref.WeakSet()).add(scope)

    def rebuild_started(self, scope: Scope | None, call: ToolCall, error: BaseException) -> None:
        verdict = classify(error)
        cause = verdict.loss.value if verdict.is_session_loss else "plugin"
        server = _redact.text(call.server)
        attributes: dict[str, Any] = {
            "mcp_hooks.server": server,
            "mcp_hooks.cause": cause,
            "mcp_hooks.reason": _redact.text(verdict.reason or type(error).__qualname__),
            "mcp_hooks.framework": call.framework,
        }
        host, port = _redact.address(call.server)
        if host:
            attributes["server.address"] = host
        if port:
            attributes["server.port"] = port
        links = []
        if scope is not None and scope.span is not None:
            links.append(Link(scope.span.get_span_context()))
            scope.span.add_event("mcp_hooks.rebuild_started", {"mcp_hooks.cause": cause})
        span = self.tracer.start_span(
            f"mcp_hooks.rebuild {server}",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            links=links,
            context=otel_context.Context(),  # its own operation, whoever led it
        )
        key = self._key(call)
        with self._lock:
            previous = self._rebuilding.pop(key, None)
            self._rebuilding[key] = (span, time.monotonic())
        if previous is not None:  # never left open: a rebuild is announced once and ended once
            previous[0].end()
        self.rebuilds.add(1, {"mcp_hooks.server": server, "mcp_hooks.cause": cause})

    def rebuild_ended(self, call: ToolCall, error: BaseException | None, seconds: float) -> None:
        key = self._key(call)
        with self._lock:
            entry = self._rebuilding.pop(key, None)
            waiting = list(self._waiting.pop(key, ()))
        outcome = "rebuilt" if error is None else "failed"
        generation = getattr(call.owner, "rebuilds", None)
        if not isinstance(generation, int):
            generation = getattr(call.owner, "reconnects", None)
        event: dict[str, Any] = {"mcp_hooks.seconds": round(seconds, 6), "mcp_hooks.outcome": outcome}
        if isinstance(generation, int):
            event["mcp_hooks.generation"] = generation
        for scope in waiting:
            if scope.span is not None and not scope.ended:
                scope.reconnects += 1
                scope.span.add_event("mcp_hooks.rebuilt" if error is None else "mcp_hooks.rebuild_failed", event)
        server = _redact.text(call.server)
        self.rebuild_duration.record(seconds, {"mcp_hooks.server": server, "mcp_hooks.outcome": outcome})
        if entry is None:
            return
        span = entry[0]
        span.set_attribute("mcp_hooks.outcome", outcome)
        if isinstance(generation, int):
            span.set_attribute("mcp_hooks.generation", generation)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, _redact.text(error)))
        span.end()

    def recovered(self, scope: Scope | None, call: ToolCall) -> None:
        if scope is None or scope.span is None or (call.tool is None and scope.method is None):
            return
        scope.replayed = True
        scope.recovery = "recovered"
        scope.span.add_event("mcp_hooks.replayed", {"mcp_hooks.attempt": call.attempt})
        attributes = {"mcp_hooks.server": _redact.text(call.server)}
        self.replays.add(1, attributes)
        if scope.lost_at is not None:
            self.recovery_duration.record(time.monotonic() - scope.lost_at, attributes)

    def gave_up(self, scope: Scope | None, call: ToolCall, error: BaseException) -> None:
        attributes = {"mcp_hooks.server": _redact.text(call.server)}
        if _is_uncertain(error):
            self.uncertain.add(1, attributes)
            name, recovery = "mcp_hooks.outcome_uncertain", "uncertain"
        else:
            self.giveups.add(1, attributes)
            name, recovery = "mcp_hooks.gave_up", "gave_up"
        if scope is None or scope.span is None:
            return
        scope.recovery = recovery
        scope.span.add_event(name, {"mcp_hooks.reason": _redact.text(error), "mcp_hooks.attempt": call.attempt})


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, default=_plain)[:4096]
    except (TypeError, ValueError):
        return repr(value)[:4096]


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True, mode="json") if callable(dump) else repr(value)
