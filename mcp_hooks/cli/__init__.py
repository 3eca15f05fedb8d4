"""The command line: ``mcp-hooks demo``, ``mcp-hooks plugins``, ``mcp-hooks probe URL``,
``mcp-hooks run -- COMMAND [ARGS...]``.

Bad input gets one clear line on stderr and a non-zero exit (2), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import json
import logging
import os
import re
import signal
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

from ._bootstrap import ENV_INTEGRATIONS
from .classify import Loss, SessionLostMark, classify, mark_session_lost
from .connection import connect
from .healing.sdk_patch import bypass
from .hookspecs import DECISION_HOOKS, OBSERVER_HOOKS
from .manager import is_session_expired, plugin_manager
from .sdk import HTTPX, MCP_MAJOR, MCP_VERSION

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANNOT_EXECUTE = 126  # as a shell says of a command it found but could not run
EXIT_NOT_FOUND = 127  # as a shell says of a command it did not find

RAW_CALL_TIMEOUT = 5.0


class CliError(Exception):
    """One line for the user, exit code 2."""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _error_text(error: BaseException) -> str:
    from .connection.owner import _unwrap

    error = _unwrap(error)
    code = getattr(getattr(error, "error", None), "code", None)
    text = str(error) or repr(error)
    prefix = f"{type(error).__name__}" + (f" {code}" if isinstance(code, int) else "")
    return f"{prefix}: {text}"[:160]


def _line(label: str, value: str) -> str:
    return f"   {label} {'.' * max(3, 40 - len(label))} {value}"


# --- demo ------------------------------------------------------------------------------------------------


async def _raw_session(target: Any, stack: contextlib.AsyncExitStack) -> Any:
    sdk: Any = importlib.import_module("mcp")
    if MCP_MAJOR >= 2:
        return await stack.enter_async_context(sdk.Client(target, mode="legacy"))
    if isinstance(target, str):
        from mcp.client.streamable_http import streamable_http_client

        streams = await stack.enter_async_context(streamable_http_client(target))
    else:
        from mcp.client.stdio import stdio_client

        streams = await stack.enter_async_context(stdio_client(target))
    session = await stack.enter_async_context(sdk.ClientSession(streams[0], streams[1]))
    await session.initialize()
    return session


async def _timed(coro: Any, timeout: float | None = None) -> tuple[bool, Any, float]:
    started = time.monotonic()
    try:
        result = await (asyncio.wait_for(coro, timeout) if timeout else coro)
    except asyncio.TimeoutError:
        return False, TimeoutError(f"no answer after {timeout:g} s (hung)"), time.monotonic() - started
    except Exception as exc:
        return False, exc, time.monotonic() - started
    return True, result, time.monotonic() - started


def _text(result: Any) -> str:
    content = getattr(result, "content", None) or []
    return str(getattr(content[0], "text", content[0])) if content else str(result)


def _restart(srv: Any, stdio: bool) -> float:
    started = time.monotonic()
    if stdio:
        pid = srv.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            # the SDK reaps its own child; give the pipe a moment to close
            time.sleep(0.3)
    else:
        srv.restart(signal.SIGTERM)
    return time.monotonic() - started


async def _demo(transport: str, out: list[str], report: dict[str, Any]) -> bool:
    from .testing import FaultServer

    stdio = transport == "stdio"
    mode: dict[str, Any] = {"mode": "legacy"} if MCP_MAJOR >= 2 else {}
    with FaultServer(transport="stdio" if stdio else "http") as srv:
        target: Any = srv.stdio_server_parameters() if stdio else srv.url
        where = "stdio (a child process)" if stdio else f"streamable HTTP on {srv.url}"
        version = MCP_VERSION
        out.append(f"mcp-hooks demo: mcp {version}, {where}")
        report.update({"mcp": version, "transport": transport})

        # 1. The raw SDK.
        out.append("")
        out.append("1. The raw MCP SDK, one session")
        raw: dict[str, Any] = {}
        async with contextlib.AsyncExitStack() as stack:
            ok, value, took = await _timed(_raw_session(target, stack), 20)
            if not ok:
                raise CliError(f"could not start the demo server session: {_error_text(value)}")
            session = value
            ok, value, took = await _timed(session.call_tool("echo", {"text": "hello"}), RAW_CALL_TIMEOUT)
            out.append(_line("call echo", f"ok, {_text(value)} ({_ms(took)})" if ok else _error_text(value)))
            restart = _restart(srv, stdio)
            out.append(_line("server restarted" if not stdio else "server process killed", _ms(restart)))
            failures = []
            for label in ("call echo", "call echo again"):
                ok, value, took = await _timed(session.call_tool("echo", {"text": "hello"}), RAW_CALL_TIMEOUT)
                shown = f"ok ({_ms(took)})" if ok else f"{_error_text(value)} ({_ms(took)})"
                out.append(_line(label, shown))
                failures.append(not ok)
            raw["later_calls_failed"] = all(failures)
            if all(failures):
                out.append("   every later call on this session fails until the program is restarted")
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(stack.aclose(), 10)
        report["raw_sdk"] = raw
        if not stdio:
            srv.restart(signal.SIGTERM)

        # 2. Through mcp-hooks.
        out.append("")
        out.append("2. The same through mcp-hooks: async with mcp_hooks.connect(...)")
        hooks: dict[str, Any] = {}
        async with connect(target, deadline=20, **mode) as session:
            ok, value, took = await _timed(session.call_tool("echo", {"text": "hello"}))
            out.append(_line("call echo", f"ok, {_text(value)} ({_ms(took)})" if ok else _error_text(value)))
            restart = _restart(srv, stdio)
            out.append(_line("server restarted" if not stdio else "server process killed", _ms(restart)))
            ok, value, took = await _timed(session.call_tool("echo", {"text": "hello again"}), 25)
            hooks.update(answered=ok, recovery_seconds=round(took, 4), reconnects=session.reconnects)
            if ok:
                out.append(_line("call echo", f"ok, {_text(value)} in {_ms(took)}"))
                out.append(_line("sessions rebuilt", str(session.reconnects)))
            else:
                out.append(_line("call echo", f"FAILED: {_error_text(value)}"))

            # 3. A write lost in flight.
            out.append("")
            out.append("3. A write lost in flight: incr (not annotated safe to repeat), server killed mid-call")
            before = srv.executions("incr")
            srv.kill_during_next_call("incr", when="after")
            revive = None if stdio else srv.revive_when_dead(timeout=10)
            ok, value, took = await _timed(session.call_tool("incr", {"key": "demo"}), 25)
            if revive is not None:
                revive.join(15)
            ran = srv.executions("incr") - before
            from .calls import OutcomeUncertain

            uncertain = not ok and isinstance(value, OutcomeUncertain)
            hooks.update(write_refused_as_uncertain=uncertain, write_executions=ran, write_seconds=round(took, 4))
            shown = "OutcomeUncertain (the model is told to check first)" if uncertain else _error_text(value)
            out.append(_line("call incr", f"{shown if not ok else 'answered: ' + _text(value)} ({_ms(took)})"))
            out.append(_line("times incr ran on the server", f"{ran} (never twice)" if ran == 1 else str(ran)))
            ok2, value2, took2 = await _timed(session.call_tool("echo", {"text": "after"}), 25)
            out.append(_line("next call", f"ok ({_ms(took2)})" if ok2 else _error_text(value2)))
            hooks["next_call_answered"] = ok2
        report["mcp_hooks"] = hooks
        report["healed_sdk_session"] = healed = await _demo_healed(srv, target, stdio, out)
    recovered = bool(
        hooks.get("answered")
        and hooks.get("reconnects", 0) >= 1
        and hooks.get("write_refused_as_uncertain")
        and hooks.get("write_executions") == 1
        and hooks.get("next_call_answered")
        and healed.get("answered")
    )
    out.append("")
    out.append("Recovery verified." if recovered else "Recovery NOT verified: see above.")
    report["recovered"] = recovered
    return recovered


async def _demo_healed(srv: Any, target: Any, stdio: bool, out: list[str]) -> dict[str, Any]:
    """4. The raw SDK session of part 1 again, opened the SDK's own way, healed beneath itself."""
    from . import instrument, uninstrument

    out.append("")
    out.append('4. The raw SDK session again, with mcp_hooks.instrument("mcp") (what every framework gets)')
    healed: dict[str, Any] = {}
    instrument("mcp")
    try:
        async with contextlib.AsyncExitStack() as stack:
            ok, value, took = await _timed(_raw_session(target, stack), 20)
            if not ok:
                raise CliError(f"could not open the healed SDK session: {_error_text(value)}")
            session = value
            ok, value, took = await _timed(session.call_tool("echo", {"text": "hello"}), 25)
            out.append(_line("call echo", f"ok, {_text(value)} ({_ms(took)})" if ok else _error_text(value)))
            restart = _restart(srv, stdio)
            out.append(_line("server restarted" if not stdio else "server process killed", _ms(restart)))
            ok, value, took = await _timed(session.call_tool("echo", {"text": "hello again"}), 25)
            healed.update(answered=ok, recovery_seconds=round(took, 4))
            shown = f"ok, {_text(value)} in {_ms(took)}" if ok else f"FAILED: {_error_text(value)}"
            out.append(_line("same session, call echo", shown))
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(stack.aclose(), 10)
    finally:
        uninstrument("mcp")
    return healed


def cmd_demo(args: argparse.Namespace) -> int:
    out: list[str] = []
    report: dict[str, Any] = {}
    started = time.monotonic()
    recovered = asyncio.run(_demo(args.transport, out, report))
    report["seconds"] = round(time.monotonic() - started, 2)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(out))
        print(f"(demo took {report['seconds']:.1f} s)")
    return EXIT_OK if recovered else EXIT_FAILED


# --- plugins ---------------------------------------------------------------------------------------------


def cmd_plugins(args: argparse.Namespace) -> int:
    pm = plugin_manager()
    rows: list[dict[str, Any]] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        origin = pm.origins.get(name)
        hooks = sorted(caller.name for caller in (pm.get_hookcallers(plugin) or []))
        source = "registered"
        if origin is not None:
            source = origin.source
            if origin.distribution:
                source += f" ({origin.distribution} {origin.version or ''})".rstrip()
        rows.append({"name": name, "source": source, "hooks": hooks, "value": getattr(origin, "value", None)})
    blocked = [{"name": name, "why": why} for name, why in sorted(pm.not_loaded.items())]
    if args.json:
        print(json.dumps({"plugins": rows, "not_loaded": blocked}, indent=2))
        return EXIT_OK
    print(f"{len(rows)} plugin(s) registered (hooks: {', '.join(DECISION_HOOKS + OBSERVER_HOOKS)})")
    for row in rows:
        print(f"  {row['name']}: {row['source']}")
        print(f"      hooks: {', '.join(row['hooks']) or '(none)'}")
    for item in blocked:
        print(f"  {item['name']}: not loaded: {item['why']}")
    return EXIT_OK


# --- probe -----------------------------------------------------------------------------------------------

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
    from .healing.watch import send_refusable

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
                    body = b""
                    async for chunk in response.stream:
                        body += chunk
                        if len(body) > 65536:
                            break
                    await response.stream.aclose()
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


# --- run -------------------------------------------------------------------------------------------------

#: The directory whose ``sitecustomize`` turns the integrations on as the program's interpreter starts.
BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_bootstrap")
_INTEGRATION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RUN_USAGE = "mcp-hooks run [--only NAME[,NAME]] -- COMMAND [ARGS...]"


def _only_names(values: Sequence[str] | None) -> list[str] | None:
    """The integrations ``--only`` names (``None``: every installed one)."""
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise CliError("--only needs integration names, e.g. --only mcp")
    for name in names:
        if not _INTEGRATION_NAME.fullmatch(name):
            raise CliError(f"--only: {name!r} is not an integration name")
    return list(dict.fromkeys(names))


def run_environment(only: Sequence[str] | None, environ: dict[str, str]) -> dict[str, str]:
    """The program's environment: the start-up hook first on ``PYTHONPATH`` (the rest kept as it was),
    and the integrations it is to turn on."""
    env = dict(environ)
    current = env.get("PYTHONPATH", "")
    kept = [entry for entry in current.split(os.pathsep) if os.path.abspath(entry) != BOOTSTRAP_DIR] if current else []
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *kept])
    if only is None:
        env.pop(ENV_INTEGRATIONS, None)
    else:
        env[ENV_INTEGRATIONS] = ",".join(only)
    return env


def cmd_run(args: argparse.Namespace) -> int:
    command = list(args.program)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise CliError(f"no command to run; usage: {RUN_USAGE}")
    env = run_environment(_only_names(args.only), dict(os.environ))
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)  # replaces this process: returns only on failure
    except FileNotFoundError:
        print(f"mcp-hooks run: {command[0]}: command not found", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OSError as exc:
        print(f"mcp-hooks run: {command[0]}: cannot run it: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_EXECUTE


# --- entry -----------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcp-hooks", description="Survive MCP session loss: see it, prove it.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="restart a real local MCP server under a live session and recover")
    demo.add_argument("--json", action="store_true", help="print the figures as JSON")
    demo.add_argument("--transport", choices=("http", "stdio"), default="http")
    demo.set_defaults(func=cmd_demo)
    plugins = sub.add_parser("plugins", help="list the registered plugins and the hooks each implements")
    plugins.add_argument("--json", action="store_true")
    plugins.set_defaults(func=cmd_plugins)
    probe = sub.add_parser("probe", help="how a server answers a lost session, and whether it is recognised")
    probe.add_argument("url")
    probe.add_argument("--header", "-H", action="append", help="'Name: value' (sent, never printed)")
    probe.add_argument("--timeout", type=float, default=10.0)
    probe.add_argument("--json", action="store_true")
    probe.set_defaults(func=cmd_probe)
    run = sub.add_parser(
        "run",
        help="run a program with every installed integration on, without a code change",
        usage=RUN_USAGE,
        description="Run COMMAND with the mcp-hooks integrations on in its Python interpreter (through a "
        "sitecustomize put first on its PYTHONPATH; one the program had runs too).",
    )
    run.add_argument(
        "--only", action="append", metavar="NAME[,NAME]", help="turn on just these integrations (default: all)"
    )
    run.add_argument("program", nargs=argparse.REMAINDER, metavar="COMMAND [ARGS...]")
    run.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"mcp-hooks {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"mcp-hooks {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"mcp-hooks {args.command}: {_error_text(exc)}", file=sys.stderr)
        return EXIT_USAGE
