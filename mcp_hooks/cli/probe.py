"""``mcp-hooks probe URL``: how a server answers a lost session, and whether mcp-hooks recognises it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import warnings
from collections.abc import Sequence
from typing import Any

from ..classify import Loss, SessionLostMark, classify, mark_session_lost
from ..healing.sdk_patch import bypass
from ..healing.watch import read_body
from ..manager import is_session_expired, plugin_manager
from ..sdk import HTTPX, MCP_MAJOR
from .output import EXIT_FAILED, EXIT_OK, CliError, _error_text, _line

UNKNOWN_SESSION = "mcp-hooks-probe-unknown-session-0000"
#: Protocol versions of the initialize handshake, which have sessions; later ones (2026-07-28) have none.
HANDSHAKE_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
SESSIONLESS_PROBE_VERSION = "2026-07-28"


def _parse_headers(values: Sequence[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, content = value.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header must read 'Name: value', got {value.split(':')[0]!r}...")
        headers[name.strip()] = content.strip()
    return headers


def _rpc_body(raw: bytes, content_type: str) -> Any:
    text = raw.decode("utf-8", "replace")
    if "text/event-stream" in content_type:
        for line in text.splitlines():
            if line.startswith("data:"):
                with contextlib.suppress(ValueError):
                    return json.loads(line[5:].strip())
        return None
    with contextlib.suppress(ValueError):
        return json.loads(text)
    return None


def _rejects_session(status: int, body: bytes) -> bool:
    """What ``connect()`` and the healing layer take as the server refusing the session of a request that
    carried one (a 401 there is taken as the session dropped, once: a gateway that blames the token)."""
    return status in (401, 404, 410) or (status == 400 and b"session" in body.lower())


async def _post_refusable(client: Any, url: str, body: Any, headers: dict[str, str], report: dict[str, Any]) -> Any:
    """POST as mcp-hooks sends it (``watch.send_refusable``: a 429/503 sent again as the ``retry_refused`` hook
    decides), each refusal and the decision put in ``report["refused"]``; one not sent again ends the probe."""
    from ..healing.watch import send_refusable

    refused: list[dict[str, Any]] = report.setdefault("refused", [])

    def heard(status: int, header: str | None, wait: float | None) -> None:
        decision = f"sent again after {wait:g} s" if wait is not None else "not sent again"
        refused.append({"status": status, "retry_after": header, "decision": decision})

    request = client.build_request("POST", url, json=body, headers=headers)
    response = await send_refusable(client.send, request, url, plugin_manager(), on_refusal=heard)
    if refused and refused[-1]["decision"] == "not sent again":
        last = refused[-1]
        asked = f", Retry-After: {last['retry_after']}" if last["retry_after"] is not None else ""
        raise CliError(
            f"{url} refused the probe's request with HTTP {last['status']}{asked}; mcp-hooks would not send it "
            "again (the retry_refused hook: without a deadline the built-in retry-after plugin waits up to 10 s); "
            "try later"
        )
    if not refused:
        del report["refused"]
    return response


async def _sessionless_versions(client: Any, url: str, base: dict[str, str], report: dict[str, Any]) -> list[str]:
    """The session-less (2026-07-28 and later) protocol versions the server adopts, from ``server/discover``."""
    discover = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "server/discover",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": SESSIONLESS_PROBE_VERSION,
                "io.modelcontextprotocol/clientInfo": {"name": "mcp-hooks-probe", "version": "1"},
                "io.modelcontextprotocol/clientCapabilities": {},
            }
        },
    }
    headers = {**base, "mcp-protocol-version": SESSIONLESS_PROBE_VERSION, "mcp-method": "server/discover"}
    try:
        response = await _post_refusable(client, url, discover, headers, report)
    except CliError:
        raise
    except Exception:
        return []
    body = _rpc_body(response.content, response.headers.get("content-type", ""))
    result = body.get("result") if isinstance(body, dict) else None
    supported = result.get("supportedVersions") if isinstance(result, dict) else None
    if response.status_code != 200 or not isinstance(supported, list):
        return []
    return [v for v in supported if isinstance(v, str) and v not in HANDSHAKE_VERSIONS]


async def _probe(url: str, headers: dict[str, str], timeout: float) -> dict[str, Any]:
    httpx: Any = HTTPX
    report: dict[str, Any] = {"url": url}
    base = {"accept": "application/json, text/event-stream", "content-type": "application/json", **headers}
    sessionless_note = (
        "it also speaks the session-less protocol {versions}: mcp 2.x clients in their default "
        "mode='auto' hold no session there (nothing to lose); what follows is for clients on the "
        "initialize handshake (mcp 1.x, mode='legacy', other SDKs)"
    )
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "mcp-hooks-probe", "version": "1"},
        },
    }
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            response = await _post_refusable(client, url, init, base, report)
        except CliError:
            raise
        except Exception as exc:
            raise CliError(f"cannot reach {url}: {_error_text(exc)}") from None
        sessionless = await _sessionless_versions(client, url, base, report)
        report["sessionless_protocol"] = sessionless or None
        body = _rpc_body(response.content, response.headers.get("content-type", ""))
        if response.status_code >= 400 or not isinstance(body, dict) or "result" not in body:
            if sessionless:
                report["protocol_version"] = sessionless[-1]
                report["keeps_sessions"] = False
                report["verdict"] = (
                    f"session-less server: it speaks only {', '.join(sessionless)}, which has no sessions "
                    "(no initialize, no Mcp-Session-Id): there is no session to lose"
                )
                return report
            raise CliError(f"{url} does not answer like an MCP server (HTTP {response.status_code} to initialize)")
        result = body["result"]
        session_id = response.headers.get("mcp-session-id")
        report["protocol_version"] = result.get("protocolVersion")
        report["server"] = result.get("serverInfo")
        report["keeps_sessions"] = session_id is not None
        if session_id is None:
            report["verdict"] = "the server issues no session id: there is no session to lose"
            return report
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        stale = {**base, "mcp-session-id": UNKNOWN_SESSION, "mcp-protocol-version": str(report["protocol_version"])}
        answer = await _post_refusable(client, url, ping, stale, report)
        report["unknown_session_answer"] = {
            "status": answer.status_code,
            "content_type": answer.headers.get("content-type"),
            "body": answer.text[:300],
        }
        with contextlib.suppress(Exception):
            await client.delete(url, headers={**base, "mcp-session-id": session_id})
    error, answer = await _sdk_error_for_unknown_session(url, headers, timeout)
    if error is None:
        report["sdk_raises"] = None
        report["recognised"] = False
        report["verdict"] = "the installed SDK raised nothing for an unknown session (unexpected)"
        return report
    report["sdk_raises"] = _error_text(error)
    # The SDK's error alone is all that a decorated function or a framework without an HTTP watch sees.
    report["recognised_from_error_alone"] = is_session_expired(error)
    if answer is not None and _rejects_session(*answer):
        # connect() watches the HTTP layer: it saw this answer to a request carrying Mcp-Session-Id.
        mark_session_lost(
            error,
            SessionLostMark(
                Loss.REJECTED,
                status=answer[0],
                method="ping",
                detail=f"HTTP {answer[0]} to a request that carried Mcp-Session-Id",
            ),
        )
    verdict = classify(error)
    report["classification"] = {"loss": verdict.loss.value, "reason": verdict.reason}
    report["recognised"] = is_session_expired(error)
    report["verdict"] = (
        "mcp-hooks recognises this server's stale-session answer as session loss"
        if report["recognised"]
        else "mcp-hooks does NOT recognise this answer as session loss: add a plugin (should_reconnect)"
    )
    if report["unknown_session_answer"]["status"] == 401:
        report["verdict"] += (
            " (it answers a stale session with 401: mcp-hooks takes that as the session dropped and rebuilds"
            " it once; a 401 to the new session's handshake is then an auth failure, given at once)"
        )
    if report["recognised"] and not report["recognised_from_error_alone"]:
        report["verdict"] += (
            " (connect() sees the HTTP answer; the SDK's error alone does not say it, so a decorated"
            " function or a framework integration without an HTTP watch needs a plugin for it)"
        )
    if sessionless:
        report["verdict"] = sessionless_note.format(versions=", ".join(sessionless)) + ". " + report["verdict"]
    return report


async def _sdk_error_for_unknown_session(
    url: str, headers: dict[str, str], timeout: float
) -> tuple[BaseException | None, tuple[int, bytes] | None]:
    """Open a real SDK session whose session id is swapped for an unknown one after initialize, and
    return what the SDK raises for a ping, with the HTTP status and body the server answered it."""
    _httpx: Any = HTTPX

    class Swap(_httpx.AsyncBaseTransport):  # type: ignore[misc]
        def __init__(self) -> None:
            self.inner = _httpx.AsyncHTTPTransport()
            self.armed = False
            self.answer: tuple[int, bytes] | None = None

        async def handle_async_request(self, request: Any) -> Any:
            if self.armed and "mcp-session-id" in request.headers:
                if request.method == "DELETE":
                    return _httpx.Response(204, request=request)
                request.headers["mcp-session-id"] = UNKNOWN_SESSION
                response = await self.inner.handle_async_request(request)
                if request.method == "POST" and response.status_code >= 400 and self.answer is None:
                    body = await read_body(response)
                    self.answer = (response.status_code, body)
                    return _httpx.Response(
                        response.status_code,
                        headers=response.headers,
                        content=body,
                        request=request,
                        extensions=response.extensions,
                    )
                return response
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    swap = Swap()
    sdk: Any = importlib.import_module("mcp")
    from mcp.client.streamable_http import streamable_http_client

    caught: BaseException | None = None
    try:
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(_httpx.AsyncClient(headers=headers, timeout=timeout, transport=swap))
            with bypass():  # the probe reports the server's own answers
                transport = streamable_http_client(url, http_client=http)
            if MCP_MAJOR >= 2:
                api = await stack.enter_async_context(sdk.Client(transport, mode="legacy", cache=None))
            else:
                streams = await stack.enter_async_context(transport)
                api = await stack.enter_async_context(sdk.ClientSession(streams[0], streams[1]))
                await api.initialize()
            swap.armed = True
            try:
                with warnings.catch_warnings():  # 2.x: "ping is removed as of 2026-07-28" (this is legacy)
                    warnings.simplefilter("ignore", UserWarning)
                    await asyncio.wait_for(api.send_ping(), timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                caught = exc
    except Exception as exc:  # the transport crashed on the answer (mcp 1.x for a 400/410)
        if caught is None:
            caught = exc
    return caught, swap.answer


def cmd_probe(args: argparse.Namespace) -> int:
    url = args.url
    if not url.startswith(("http://", "https://")):
        raise CliError(f"probe needs an http:// or https:// URL, got {url!r}")
    headers = _parse_headers(args.header or [])
    # mcp 1.x logs its transport's crash on a 400/410 with a traceback: the report says it in one line.
    sdk_log = logging.getLogger("mcp")
    quiet = logging.NullHandler()
    sdk_log.addHandler(quiet)
    try:
        report = asyncio.run(_probe(url, headers, args.timeout))
    finally:
        sdk_log.removeHandler(quiet)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(f"probe {url}")
        print(_line("protocol version", str(report.get("protocol_version"))))
        print(_line("server", json.dumps(report.get("server"))))
        sessionless = report.get("sessionless_protocol")
        print(_line("session-less protocol", f"yes ({', '.join(sessionless)})" if sessionless else "no"))
        print(_line("keeps sessions", "yes" if report.get("keeps_sessions") else "no"))
        for refusal in report.get("refused", ()):
            asked = f", Retry-After: {refusal['retry_after']}" if refusal["retry_after"] is not None else ""
            print(_line("refused", f"HTTP {refusal['status']}{asked}: {refusal['decision']}"))
        answer = report.get("unknown_session_answer")
        if answer:
            print(_line("answer to an unknown session", f"HTTP {answer['status']} {answer['body'][:100]!r}"))
            print(_line("the installed SDK raises", str(report.get("sdk_raises"))))
            print(_line("recognised by mcp-hooks", "yes" if report.get("recognised") else "NO"))
            print(_line("from the SDK's error alone", "yes" if report.get("recognised_from_error_alone") else "no"))
        print(report["verdict"])
    if report.get("keeps_sessions") and not report.get("recognised"):
        return EXIT_FAILED
    return EXIT_OK
