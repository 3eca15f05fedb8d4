"""``mcp-hooks demo``: restart a real local MCP server under a live session, through the raw SDK and
through mcp-hooks, and show what each does."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import os
import signal
import time
from typing import Any

from ..connection import connect
from ..sdk import MCP_MAJOR, MCP_VERSION
from .output import EXIT_FAILED, EXIT_OK, CliError, _error_text, _line, _ms

RAW_CALL_TIMEOUT = 5.0


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
    from ..testing import FaultServer

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
            from ..calls import OutcomeUncertain

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
    from .. import instrument, uninstrument

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
