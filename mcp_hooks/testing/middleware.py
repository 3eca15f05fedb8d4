"""The fault server's HTTP side: :class:`FaultMiddleware`, the ASGI middleware in front of the SDK's
streamable-HTTP app (health check, session tracking, stale-session answers in the style of other
implementations, throttling, rejected calls, refused credentials, the 2026-07-28 protocol refused
under ``legacy_only``, handshakes killed or dropped).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from mcp_hooks.testing.controller import HEALTH_PATH
from mcp_hooks.testing.faults import FaultState, _sleep

__all__ = ["MCP_PATH", "STALE_RESPONSES", "ASGIApp", "FaultMiddleware"]

# the server's one logger name (server.log names it on every line), whichever module logs
logger = logging.getLogger("mcp_hooks.testing.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MCP_PATH = "/mcp"

# status, content type, body: the stale-session answers of other implementations (research/mcp_sdk.md §4)
STALE_RESPONSES: dict[str, tuple[int, str | None, bytes]] = {
    "typescript": (
        404,
        "application/json",
        b'{"jsonrpc":"2.0","error":{"code":-32001,"message":"Session not found"},"id":null}',
    ),
    "ts-example": (
        400,
        "application/json",
        b'{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null}',
    ),
    "go": (404, "text/plain; charset=utf-8", b"session not found\n"),
    "bare-404": (404, "text/html; charset=utf-8", b"<html><body>Not Found</body></html>"),
    "gone-410": (410, None, b""),
    # mcp <= 1.25 sent exactly this: a 400 with a text body and no content type at all
    "old-python": (400, None, b"Bad Request: No valid session ID provided"),
}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _method(body: bytes) -> str | None:
    """The JSON-RPC method of a request body (one message), or ``None``."""
    try:
        message = json.loads(body)
    except ValueError:  # a partial or foreign body
        return None
    method = message.get("method") if isinstance(message, dict) else None
    return method if isinstance(method, str) else None


class FaultMiddleware:
    """ASGI middleware in front of the SDK's app: health check, session tracking, stale answers.

    Session ids are learnt from the ``mcp-session-id`` header of the SDK's responses, with the
    expiry generation in force when they were issued. A request carrying an id that this process
    did not issue, that belongs to an older generation, or that the SDK itself already answered
    404 for (idle expiry, DELETE) is answered in the configured stale style.
    """

    def __init__(
        self,
        app: ASGIApp,
        state: FaultState,
        *,
        token: str = "",
        stateless: bool = False,
        handshake_versions: Iterable[str] | None = None,
        idle_timeout: float | None = None,
        post_idle_ttl: float | None = None,
        legacy_only: bool = False,
    ) -> None:
        self.app = app
        self.state = state
        self.token = token
        self.stateless = stateless
        self.handshake_versions = None if handshake_versions is None else frozenset(handshake_versions)
        self.idle_timeout = idle_timeout  # only for SDKs without their own session idle timeout
        self.post_idle_ttl = post_idle_ttl  # gateway-like: counted from the session's last POST
        self.legacy_only = legacy_only
        self.issued: dict[str, int] = {}  # session id -> expiry generation when issued
        self.dead: set[str] = set()
        self.last_seen: dict[str, float] = {}
        self.in_flight: dict[str, int] = {}
        self.last_post: dict[str, float] = {}
        self.posts_in_flight: dict[str, int] = {}
        self.stale_answers = 0  # requests answered as carrying a stale session id
        self.throttled = 0  # requests refused by an armed throttle
        self.rejected_calls = 0  # tools/call answered with an armed reject_call error
        self.unauthorized = 0  # requests answered 401 (refuse_credentials, stale_401)
        self.modern_refused = 0  # 2026-07-28 requests refused (legacy_only)
        self.tools_listed = 0  # tools/list requests on a session (how often clients list the tools)
        self.listens = 0  # subscriptions/listen requests (2026-07-28) this process received

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == HEALTH_PATH:
            await self._health(send)
            return
        session_id = _header(scope, b"mcp-session-id")
        if path.rstrip("/") != MCP_PATH:
            await self.app(scope, receive, send)
            return
        modern = self._is_modern(scope)
        if modern and _header(scope, b"mcp-method") == "subscriptions/listen":
            self.listens += 1
        required = self.state.controls().get("require_token")
        if self.state.controls().get("refuse_credentials") or (
            isinstance(required, str) and _header(scope, b"authorization") != f"Bearer {required}"
        ):
            self.unauthorized += 1
            await self._drain(receive)
            await _respond(send, 401, "application/json", b'{"error":"invalid_token"}', _CHALLENGE)
            return
        if scope.get("method") == "POST" and (session_id is not None or modern):
            throttle = self.state.take_counted("throttle")
            if throttle is not None:
                self.throttled += 1
                await self._drain(receive)
                status = int(throttle.get("status", 429))
                retry_after = throttle.get("retry_after")
                logger.info("refusing a request with HTTP %d (Retry-After: %s)", status, retry_after)
                headers = [(b"retry-after", str(retry_after).encode())] if retry_after is not None else []
                body = json.dumps({"error": "slow down"}).encode()
                await _respond(send, status, "application/json", body, headers)
                return
        if (
            scope.get("method") == "POST"
            and (session_id is not None or modern)
            and self.state.controls().get("reject_call")
        ):
            body = await _read_body(receive)
            if await self._rejected_call(body, send):
                return
            receive = _replayed(body, receive)
        if self.stateless or (modern and not self.legacy_only):
            if modern and self.legacy_only:  # a pre-2026 stateless server checks only the version
                await self._refuse_modern(scope, receive, send, session_id, unsupported=True)
            else:
                await self.app(scope, receive, send)
            return
        controls = self.state.controls()
        style = self.state.stale_style(controls)
        if session_id is not None and self._is_stale(session_id, controls):
            self.stale_answers += 1
            logger.info("stale session %s (%s): answering in style %r", session_id[:64], scope["method"], style)
            if controls.get("stale_401"):  # a gateway that dropped the session answers as if the token were bad
                self.unauthorized += 1
                await self._drain(receive)
                await _respond(send, 401, "application/json", b'{"error":"invalid_token"}', _CHALLENGE)
            elif style == "python":
                # Make the SDK answer with its own bytes, as for any id it never issued.
                scope = dict(scope)
                scope["headers"] = [
                    (k, b"expired-" + bytes(v) if k.lower() == b"mcp-session-id" else v) for k, v in scope["headers"]
                ]
                await self.app(scope, receive, send)
            else:
                await self._drain(receive)
                await self._answer_stale(style, send)
            return
        if modern:
            await self._refuse_modern(scope, receive, send, session_id)
            return
        await self._forward(scope, receive, send, session_id, style)

    async def _refuse_modern(
        self, scope: Scope, receive: Receive, send: Send, session_id: str | None, *, unsupported: bool = False
    ) -> None:
        """Answer a 2026-07-28 request as a pre-2026 server does: a stateful one validates the session
        first (no session id: 400 "Missing session ID"), then the protocol version."""
        self.modern_refused += 1
        await self._drain(receive)
        if session_id is None and not unsupported:
            message = "Bad Request: Missing session ID"
        else:
            version = _header(scope, b"mcp-protocol-version")
            supported = ", ".join(sorted(self.handshake_versions or ()))
            message = f"Bad Request: Unsupported protocol version: {version}. Supported versions: {supported}"
        error = {"code": -32600, "message": message}
        body = json.dumps({"jsonrpc": "2.0", "id": None, "error": error}, separators=(",", ":"))
        await _respond(send, 400, "application/json", body.encode())

    def _is_modern(self, scope: Scope) -> bool:
        """A 2026-07-28 (session-less) request: the SDK ignores session ids there, and so do we unless
        ``legacy_only`` refuses it."""
        version = _header(scope, b"mcp-protocol-version")
        return self.handshake_versions is not None and version is not None and version not in self.handshake_versions

    def _is_stale(self, session_id: str, controls: dict[str, Any]) -> bool:
        issued = self.issued.get(session_id)
        if issued is None or session_id in self.dead:
            return True
        if issued < self.state.generation(controls):
            return True
        if self.post_idle_ttl is not None and not self.posts_in_flight.get(session_id):
            idle = time.monotonic() - self.last_post.get(session_id, time.monotonic())
            if idle > self.post_idle_ttl:
                logger.info("session %s: no POST for %.2f s (post idle TTL): expired", session_id[:64], idle)
                self.dead.add(session_id)
                return True
        if self.idle_timeout is not None and not self.in_flight.get(session_id):
            idle = time.monotonic() - self.last_seen.get(session_id, time.monotonic())
            if idle > self.idle_timeout:
                logger.info("session %s idle timeout (middleware)", session_id[:64])
                self.dead.add(session_id)
                return True
        return False

    async def _forward(self, scope: Scope, receive: Receive, send: Send, session_id: str | None, style: str) -> None:
        restyle = False
        post = scope.get("method") == "POST"
        handshake = session_id is None and post
        die_answering = handshake and self.state.take_handshake_fault("kill_next_handshake")
        drop_answer = handshake and not die_answering and self.state.take_handshake_fault("drop_next_handshake_answer")

        async def watch(message: Message) -> None:
            nonlocal restyle
            if restyle:
                return  # swallow the rest of the SDK's 404: our answer was sent instead
            if drop_answer and message["type"] == "http.response.start":
                # What a server shutting down gracefully does: the headers, then a clean end, no event.
                logger.warning("dropping the answer to a handshake (armed drop_next_handshake_answer)")
                restyle = True
                await send(message)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            if message["type"] == "http.response.start":
                for key, value in message.get("headers") or ():
                    if bytes(key).lower() == b"mcp-session-id":
                        issued = bytes(value).decode("latin-1")
                        if issued not in self.issued:
                            self.issued[issued] = self.state.generation(self.state.controls())
                            self.last_seen[issued] = self.last_post[issued] = time.monotonic()
                if session_id is not None and message["status"] == 404:
                    # The SDK forgot the session (idle expiry, DELETE): stale from now on.
                    self.dead.add(session_id)
                    if style != "python":
                        restyle = True
                        await self._answer_stale(style, send)
                        return
            if die_answering and message["type"] == "http.response.body":
                await _sleep(0.05)  # the headers reach the client first
                self.state.die("initialize", "answering")
            await send(message)

        if session_id is not None:
            self.in_flight[session_id] = self.in_flight.get(session_id, 0) + 1
            if post:
                self.posts_in_flight[session_id] = self.posts_in_flight.get(session_id, 0) + 1
                self.last_post[session_id] = time.monotonic()

        async def peek() -> Message:
            message = await receive()
            body = message.get("body", b"") if message["type"] == "http.request" else b""
            if b"tools/list" in body and _method(body) == "tools/list":  # not a call whose arguments say it
                self.tools_listed += 1
            return message

        try:
            await self.app(scope, receive if session_id is None else peek, watch)
        finally:
            if session_id is not None:
                self.in_flight[session_id] -= 1
                self.last_seen[session_id] = time.monotonic()
                if post:
                    self.posts_in_flight[session_id] -= 1
                    self.last_post[session_id] = time.monotonic()
                if scope.get("method") == "DELETE":
                    self.dead.add(session_id)

    async def _health(self, send: Send) -> None:
        controls = self.state.controls()
        body = json.dumps(
            {
                "pid": self.state.pid,
                "token": self.token,
                "sessions": len(self.issued),
                "generation": self.state.generation(controls),
                "stale_style": self.state.stale_style(controls),
                "stale_answers": self.stale_answers,
                "throttled": self.throttled,
                "rejected_calls": self.rejected_calls,
                "unauthorized": self.unauthorized,
                "modern_refused": self.modern_refused,
                "tools_listed": self.tools_listed,
                "listens": self.listens,
                "legacy_only": self.legacy_only,
                "post_idle_ttl": self.post_idle_ttl,
                "extra_tool": self.state.extra_tool,
                "cancelled": self.state.cancelled,
            }
        ).encode()
        await _respond(send, 200, "application/json", body)

    async def _rejected_call(self, body: bytes, send: Send) -> bool:
        """Answer a ``tools/call`` with the armed ``reject_call`` JSON-RPC error (it never runs)."""
        try:
            message = json.loads(body)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            return False
        reject = self.state.take_counted("reject_call")
        if reject is None:
            return False
        self.rejected_calls += 1
        error = {"code": int(reject["code"]), "message": str(reject.get("message", ""))}
        if reject.get("data") is not None:
            error["data"] = reject["data"]
        logger.info("rejecting a tools/call with HTTP %s and JSON-RPC error %s", reject.get("status"), error["code"])
        answer = json.dumps({"jsonrpc": "2.0", "id": message.get("id"), "error": error}).encode()
        await _respond(send, int(reject.get("status", 400)), "application/json", answer)
        return True

    @staticmethod
    async def _drain(receive: Receive) -> None:
        for _ in range(10_000):  # bounded: a request body is a few messages
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return

    @staticmethod
    async def _answer_stale(style: str, send: Send) -> None:
        status, content_type, body = STALE_RESPONSES[style]
        await _respond(send, status, content_type, body)


_CHALLENGE = [(b"www-authenticate", b'Bearer error="invalid_token"')]


async def _read_body(receive: Receive) -> bytes:
    body = b""
    for _ in range(10_000):  # bounded: a request body is a few messages
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    return body


def _replayed(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` (already read from ``receive``) once, then hands on to ``receive``
    (the server's own, which says when the client goes)."""
    given = False

    async def replay() -> Any:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _respond(
    send: Send, status: int, content_type: str | None, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-length", str(len(body)).encode()), *(extra or [])]
    if content_type is not None:
        headers.append((b"content-type", content_type.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
