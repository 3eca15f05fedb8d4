"""Figure 6, openai-agents 0.24: ``MCPServerStreamableHttp`` alone against it with mcp-hooks.

Run it where openai-agents and mcp-hooks-openai-agents are installed (``nox -s bench-openai-agents``)::

    python -m benchmarks.frameworks.openai_agents [--quick] [--out PATH]

Every call goes through ``MCPUtil.invoke_mcp_tool``, the function an agent's MCP ``FunctionTool`` runs
(it calls ``server.call_tool`` in a task of its own), against the testing kit's fault server (streamable
HTTP on loopback). "Alone" is openai-agents as shipped (``mcp_hooks.uninstrument("openai-agents")``);
"with mcp-hooks" is ``mcp_hooks.instrument("openai-agents")`` before the server connects. Both run in the
same process, against the same server, by the same procedure (a new ``MCPServerStreamableHttp`` per
round, connected, one call, then the server is restarted with SIGKILL while the client's event loop
keeps running), and the figures are medians over rounds:

- the first call after the restart: answered or not, and does the next call answer; how long until
  openai-agents alone fails, with its default ``max_retry_attempts=0`` and with retries on
  (``max_retry_attempts=3``: backoff 1 + 2 + 4 s); with mcp-hooks, the latency as a ratio to a
  brand-new raw-SDK connect + initialize + call to the same restarted server, measured in the same round;
- N concurrent calls across a SIGKILL restart: how many are answered, and sessions rebuilt.

Under mcp 2.x on both sides openai-agents negotiates the session-less protocol, a restart is invisible
and nothing is rebuilt; the suite then says so in its notes (its file is ``openai-agents-mcp2.json``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import mcp_hooks
from benchmarks.common import Figure, Suite, arguments, fail, ratio
from benchmarks.frameworks import MCP_MAJOR, fresh_call, log_to_file, med, ms, spread_ms, switch_shim, times
from mcp_hooks.testing import FaultServer

GROUP = "Against openai-agents 0.24" + (" (mcp 2.x)" if MCP_MAJOR >= 2 else "")
FRAMEWORK = "openai-agents"

#: openai-agents' retries as a user would turn them on to survive restarts (its backoff base: 1 s).
RETRIES = 3
#: Every call is bounded: the slowest expected path (retries' backoff, 7 s) fits well inside.
CALL_BOUND = 60.0
#: Each concurrent call is ``slow(SLOW)``; the server is SIGKILLed ``KILL_AFTER`` s after they start.
SLOW = 0.1
KILL_AFTER = 0.15


def _server(url: str, **options: Any) -> Any:
    from agents.mcp import MCPServerStreamableHttp

    options.setdefault("cache_tools_list", True)
    return MCPServerStreamableHttp({"url": url}, **options)


async def invoke(server: Any, tool: str, **arguments: Any) -> Any:
    """Call a tool the way an agent's ``FunctionTool`` does: ``MCPUtil.invoke_mcp_tool``."""
    from agents import RunContextWrapper
    from agents.mcp.util import MCPUtil

    tools = server.cached_tools
    if tools is None:
        tools = await server.list_tools()
    spec = next(t for t in tools if t.name == tool)
    return await MCPUtil.invoke_mcp_tool(server, spec, RunContextWrapper(None), json.dumps(arguments))


@dataclass
class Outcome:
    kind: str  # "ok", "error" or "cancelled" (mcp 1.x may cancel the task that connected a transport)
    value: Any
    seconds: float

    @property
    def ok(self) -> bool:
        return self.kind == "ok"

    def describe(self) -> str:
        if self.ok:
            return "answered"
        return f"{type(self.value).__name__}: {str(self.value)[:160]}"


async def outcome(call: Awaitable[Any], bound: float = CALL_BOUND) -> Outcome:
    started = time.perf_counter()
    try:
        value = await asyncio.wait_for(call, bound)
    except asyncio.CancelledError as exc:
        uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        return Outcome("cancelled", exc, time.perf_counter() - started)
    except Exception as exc:
        return Outcome("error", exc, time.perf_counter() - started)
    return Outcome("ok", value, time.perf_counter() - started)


def text(output: Any) -> str:
    return str(output["text"]) if isinstance(output, dict) else str(output)


def set_shim(on: bool) -> None:
    import mcp_hooks_openai_agents

    switch_shim("openai-agents", mcp_hooks_openai_agents.mcp_hooks_integration, on)


def label(on: bool) -> str:
    return "with mcp-hooks" if on else "openai-agents alone"


async def restart(srv: FaultServer) -> None:
    """SIGKILL and start again on the same port, while the client's event loop keeps running."""
    await asyncio.to_thread(srv.restart, signal.SIGKILL)


async def with_server(
    srv: FaultServer,
    on: bool,
    body: Callable[[Any], Awaitable[Any]],
    **options: Any,
) -> Any:
    """A new ``MCPServerStreamableHttp`` (shim on or off before it connects, default options), one warm
    call, then ``body``; in a task of its own, so that whatever mcp 1.x cancels stays there.
    Closing a broken server may fail: that is not measured."""
    import mcp_hooks_openai_agents

    integration = mcp_hooks_openai_agents.mcp_hooks_integration
    done: list[Any] = []

    async def round_() -> None:
        saved = dict(integration.options)
        set_shim(on)
        server = _server(srv.url, **options)
        try:
            await asyncio.wait_for(server.connect(), 30)
            warm = await outcome(invoke(server, "echo", text="before"))
            if not warm.ok:
                raise RuntimeError(f"the first call failed ({label(on)}): {warm.describe()}")
            done.append(await body(server))
        finally:
            with contextlib.suppress(BaseException):  # a broken session may not close cleanly: not measured
                await asyncio.wait_for(server.cleanup(), 30)
            mcp_hooks.uninstrument("openai-agents")
            integration.options = saved

    task = asyncio.create_task(round_())
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait({task}, timeout=4 * CALL_BOUND)
    if not task.done():
        task.cancel()
        fail(f"a round ({label(on)}) did not end within {4 * CALL_BOUND:g} s")
    if not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]
    if not done:
        fail(f"a round ({label(on)}) was cancelled before it measured anything")
    return done[0]


# --- 1. the first call after a restart --------------------------------------------------------------------


@dataclass
class RestartRound:
    first: Outcome
    second: Outcome
    fresh: float | None
    reconnects: int


async def restart_round(srv: FaultServer, on: bool, *, retries: int = 0, reference: bool = True) -> RestartRound:
    import mcp_hooks_openai_agents

    async def body(server: Any) -> RestartRound:
        await restart(srv)
        await fresh_call(srv.url, arguments={"text": "warm-up"})  # the new process serves its first request
        first = await outcome(invoke(server, "echo", text="after"))
        fresh = await fresh_call(srv.url) if reference else None
        second = await outcome(invoke(server, "echo", text="again"))
        return RestartRound(first, second, fresh, mcp_hooks_openai_agents.reconnect_count(server))

    options: dict[str, Any] = {"max_retry_attempts": retries} if retries else {}
    found: RestartRound = await with_server(srv, on, body, **options)
    extra = f", max_retry_attempts={retries}" if retries else ""
    print(
        f"    restart ({label(on)}{extra}): first call {found.first.describe()} in {ms(found.first.seconds)}, "
        f"next call {found.second.describe()}"
        + (f"; fresh connect {ms(found.fresh)}" if found.fresh is not None else "")
        + (f"; {found.reconnects} rebuild(s)" if on else ""),
        flush=True,
    )
    return found


def restart_figures(
    suite: Suite, alone: list[RestartRound], retried: list[RestartRound], ours: list[RestartRound]
) -> None:
    def answered(rounds: list[RestartRound]) -> int:
        return sum(r.first.ok for r in rounds)

    def next_answered(rounds: list[RestartRound]) -> int:
        return sum(r.second.ok for r in rounds)

    def errors(rounds: list[RestartRound]) -> str:
        return "; ".join(sorted({r.first.describe() for r in rounds if not r.first.ok})) or "none"

    invisible = MCP_MAJOR >= 2
    session_less = (
        " Under mcp 2.x both sides speak the session-less protocol: the restart is invisible to the client, "
        "so there is nothing to recover (0 rebuilds)."
        if invisible
        else ""
    )
    suite.add(
        Figure(
            id="openai-agents.restart.answered",
            group=GROUP,
            label="First call after a server restart, through MCPServerStreamableHttp: answered",
            ours=float(answered(ours)),
            baseline=float(answered(alone) + answered(retried)),
            unit="calls",
            result=(
                f"openai-agents alone {answered(alone) + answered(retried)}/{len(alone) + len(retried)} "
                f"(the next call: {next_answered(alone) + next_answered(retried)}/{len(alone) + len(retried)}), "
                f"with mcp-hooks {answered(ours)}/{len(ours)} (the next call: {next_answered(ours)}/{len(ours)})"
            ),
            note=(
                f"a new server object per round, SIGKILL restart; alone {len(alone)} rounds with the default "
                f"max_retry_attempts=0 and {len(retried)} with max_retry_attempts={RETRIES}. Errors alone: "
                f"{errors(alone + retried)}.{session_less}"
            ),
        )
    )
    if not invisible or not answered(alone):
        suite.add(
            Figure(
                id="openai-agents.restart.alone_fails_after",
                group=GROUP,
                label=f"openai-agents alone, first call after a restart: until it fails (max_retry_attempts={RETRIES})",
                ours=None,
                baseline=med(r.first.seconds for r in retried),
                unit="s",
                result=(
                    f"never recovers: fails after {med(r.first.seconds for r in retried):.1f} s "
                    f"with max_retry_attempts={RETRIES} (its backoff: 1 + 2 + 4 s), after "
                    f"{ms(med(r.first.seconds for r in alone))} with the default 0"
                ),
                note=(
                    "every retry is sent on the dead session; "
                    f"default retries: {spread_ms(r.first.seconds for r in alone)}, "
                    f"max_retry_attempts={RETRIES}: {spread_ms(r.first.seconds for r in retried)}"
                ),
            )
        )
    ok = [r for r in ours if r.first.ok and r.fresh is not None]
    ours_ms = med(r.first.seconds for r in ok)
    fresh = [r.fresh for r in ours + alone if r.fresh is not None]
    ours_x = med(ratio(r.first.seconds, r.fresh) for r in ok if r.fresh is not None)
    procedure = (
        "the call is made once the new process has served one untimed raw-SDK connection, the fresh connect "
        "right after it"
    )
    if invisible:
        alone_ms = med(r.first.seconds for r in alone if r.first.ok)
        suite.add(
            Figure(
                id="openai-agents.restart.latency",
                group=GROUP,
                label="First call after a server restart (mcp 2.x: session-less, nothing to recover)",
                ours=ours_ms * 1000,
                baseline=alone_ms * 1000,
                unit="ms",
                result=(
                    f"openai-agents alone {ms(alone_ms)}, with mcp-hooks {ms(ours_ms)}: no session to lose "
                    f"(a fresh connect: {ms(med(fresh))})"
                ),
                note=(
                    f"alone {spread_ms(r.first.seconds for r in alone if r.first.ok)}, with mcp-hooks "
                    f"{spread_ms(r.first.seconds for r in ok)}, fresh raw-SDK connect + call {spread_ms(fresh)}; "
                    f"{procedure}. Rebuilds per restart: {', '.join(str(r.reconnects) for r in ours)}"
                ),
            )
        )
        return
    suite.add(
        Figure(
            id="openai-agents.restart.latency",
            group=GROUP,
            label="First call after a server restart with mcp-hooks, against a fresh raw-SDK connect + call",
            ours=ours_ms * 1000,
            baseline=med(fresh) * 1000,
            unit="ms",
            result=f"with mcp-hooks {ms(ours_ms)}, {times(ours_x)} a fresh connect ({ms(med(fresh))})",
            note=(
                f"medians (ratio: of per-round ratios); with mcp-hooks {spread_ms(r.first.seconds for r in ok)}, "
                f"fresh raw-SDK connect + initialize + call {spread_ms(fresh)}; {procedure}. The gap to a fresh "
                "connect: the refused first attempt (404) and closing the old session, then openai-agents' own "
                "connect (initialize) before the replay. Rebuilds per restart: "
                f"{', '.join(str(r.reconnects) for r in ours)}"
            ),
        )
    )


# --- 2. N concurrent calls across a restart ---------------------------------------------------------------


@dataclass
class ConcurrentRound:
    n: int
    answered: int
    settled: float
    reconnects: int
    errors: list[str] = field(default_factory=list)


async def concurrent_round(srv: FaultServer, on: bool, n: int) -> ConcurrentRound:
    import mcp_hooks_openai_agents

    async def body(server: Any) -> ConcurrentRound:
        started = time.perf_counter()
        calls = [asyncio.create_task(outcome(invoke(server, "slow", seconds=SLOW))) for _ in range(n)]
        await asyncio.sleep(KILL_AFTER)
        await restart(srv)
        results = await asyncio.gather(*calls)
        settled = time.perf_counter() - started
        errors = sorted({r.describe() for r in results if not r.ok})
        rebuilt = mcp_hooks_openai_agents.reconnect_count(server)
        return ConcurrentRound(n, sum(r.ok for r in results), settled, rebuilt, errors)

    found: ConcurrentRound = await with_server(srv, on, body)
    print(
        f"    {n} calls across a restart ({label(on)}): {found.answered}/{n} answered, all settled in "
        f"{found.settled:.1f} s"
        + (f", {found.reconnects} rebuild(s)" if on else "")
        + (f"; errors: {found.errors}" if found.errors else ""),
        flush=True,
    )
    return found


def gap_cause(rounds: list[ConcurrentRound]) -> str:
    """Why calls with mcp-hooks went unanswered, from the errors they ended with."""
    seen = " ".join(e for r in rounds for e in r.errors)
    causes = []
    if "Could not reach the server" in seen:
        causes.append(
            "the restarted server did not accept connections again before the call's deadline (rebuilds that "
            "find it down are retried with backoff until then, not counted against max_reconnects)"
        )
    if "Timed out while waiting for response" in seen:
        causes.append(
            "a call under way at the kill was not failed at once but waited for openai-agents' read timeout "
            "(client_session_timeout_seconds, 5 s), and a timeout is not taken for session loss, so it was not "
            "replayed"
        )
    return f" Cause of the gap: {'; and '.join(causes)}." if causes else ""


def concurrent_figures(suite: Suite, n: int, alone: list[ConcurrentRound], ours: list[ConcurrentRound]) -> None:
    def got(rounds: list[ConcurrentRound]) -> str:
        return f"{sum(r.answered for r in rounds)}/{n * len(rounds)}"

    def rebuilt(rounds: list[ConcurrentRound]) -> str:
        return ", ".join(str(r.reconnects) for r in rounds)

    def settled(rounds: list[ConcurrentRound]) -> str:
        return f"{med(r.settled for r in rounds):.1f} s"

    def errors(rounds: list[ConcurrentRound]) -> str:
        return "; ".join(sorted({e for r in rounds for e in r.errors})) or "none"

    rounds = f"{len(alone)} restart{'s' if len(alone) > 1 else ''} of {n} calls"
    gap = gap_cause(ours)
    suite.add(
        Figure(
            id=f"openai-agents.concurrent.{n}.answered",
            group=GROUP,
            label=f"{n} concurrent calls across a SIGKILL restart: answered",
            ours=float(sum(r.answered for r in ours)),
            baseline=float(sum(r.answered for r in alone)),
            unit="calls",
            result=f"openai-agents alone {got(alone)}, with mcp-hooks {got(ours)} ({rounds})",
            note=(
                f"each call slow({SLOW:g} s), the server SIGKILLed {KILL_AFTER:g} s after they start and restarted "
                "while the client's loop runs; openai-agents sends one request at a time per HTTP server. Until all "
                f"settled: alone {settled(alone)}, with mcp-hooks {settled(ours)} (default options). Errors alone: "
                f"{errors(alone)}. Errors with mcp-hooks: {errors(ours)}.{gap}"
            ),
        )
    )
    suite.add(
        Figure(
            id=f"openai-agents.concurrent.{n}.reconnects",
            group=GROUP,
            label=f"{n} concurrent calls across a SIGKILL restart: sessions rebuilt by mcp-hooks per restart",
            ours=float(max(r.reconnects for r in ours)),
            baseline=None,
            unit="rebuilds",
            result=f"{rebuilt(ours)} ({rounds})",
            note="successful rebuilds (mcp_hooks_openai_agents.reconnect_count), one shared by every call that met "
            "the lost session" + (" (mcp 2.x: session-less, nothing to rebuild)" if MCP_MAJOR >= 2 else ""),
        )
    )


# --- the suite --------------------------------------------------------------------------------------------


async def run(suite: Suite, quick: bool) -> None:
    from agents import set_tracing_disabled

    set_tracing_disabled(True)  # no trace export (no network)
    # openai-agents alone with retries fails after its fixed backoff (1 + 2 + 4 s): one round shows it
    rounds, retried_rounds = (2, 1) if quick else (8, 1)
    concurrent_rounds = {20: 1} if quick else {20: 3, 100: 1}
    with FaultServer() as srv:
        print(f"openai-agents against {srv.url} (mcp {MCP_MAJOR}.x)", flush=True)
        print("  the first call after a restart", flush=True)
        alone: list[RestartRound] = []
        ours: list[RestartRound] = []
        for _ in range(rounds):
            alone.append(await restart_round(srv, False))
            ours.append(await restart_round(srv, True))
        retried = [await restart_round(srv, False, retries=RETRIES, reference=False) for _ in range(retried_rounds)]
        restart_figures(suite, alone, retried, ours)
        for n, count in concurrent_rounds.items():
            print(f"  {n} concurrent calls across a restart", flush=True)
            alone_n: list[ConcurrentRound] = []
            ours_n: list[ConcurrentRound] = []
            for _ in range(count):
                alone_n.append(await concurrent_round(srv, False, n))
                ours_n.append(await concurrent_round(srv, True, n))
            concurrent_figures(suite, n, alone_n, ours_n)


def main() -> None:
    import tempfile
    from pathlib import Path

    args = arguments(__doc__.splitlines()[0] if __doc__ else "openai-agents benchmarks")
    log = Path(tempfile.gettempdir()) / "mcp-hooks-bench-openai-agents.log"
    log_to_file(log)
    name = "openai-agents" if MCP_MAJOR < 2 else "openai-agents-mcp2"
    suite = Suite(name, quick=args.quick, distributions=("openai-agents", "mcp-hooks-openai-agents"))
    started = time.monotonic()
    try:
        asyncio.run(run(suite, args.quick))
    except BaseException:
        print(f"library log: {log}", flush=True)
        raise
    print(f"measured in {time.monotonic() - started:.0f} s", flush=True)
    suite.write(args.out)


if __name__ == "__main__":
    main()
