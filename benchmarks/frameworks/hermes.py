"""Figure 6, hermes-agent 0.19 (its own environment, mcp 1.26): hermes alone against hermes + mcp-hooks.

Run it in hermes' environment (``nox -s bench-hermes``, or ``python -m benchmarks.frameworks.hermes``
where hermes-agent and mcp-hooks-hermes are installed)::

    python -m benchmarks.frameworks.hermes [--quick] [--out PATH]

hermes connects to the testing kit's fault server (streamable HTTP on loopback) with
``tools.mcp_tool.register_mcp_servers``, what its start-up does with ``mcp_servers`` in config.yaml, and
every call goes through ``tools.registry.registry.dispatch``, the dispatcher its agent loop uses (no
model involved). "Alone" is hermes as shipped (``mcp_hooks.uninstrument("hermes")``); "with mcp-hooks"
is ``mcp_hooks.instrument("hermes")`` before hermes connects. Both run in the same process, against the
same server, by the same procedure, and the figures are medians over rounds:

- the first call after a server restart, also as a ratio to a brand-new raw-SDK connect + initialize +
  call to the same restarted server, measured in the same round;
- N concurrent calls (one agent worker thread each) across a SIGKILL restart: how many are answered,
  how long until all have settled, and how many sessions mcp-hooks rebuilt;
- a write (``incr``, not safe to repeat) lost in flight: how it ends, over HTTP and over stdio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import mcp_hooks
from benchmarks.common import Figure, Suite, arguments, fail, ratio
from benchmarks.frameworks import counting_reconnects, fresh_call, log_to_file, med, ms, spread_ms, switch_shim, times
from mcp_hooks.testing import FaultServer

GROUP = "Against hermes-agent 0.19"
FRAMEWORK = "hermes-agent"
SERVER = "fault"

#: hermes' tool timeout (its ``timeout`` setting) in the restart rounds: never reached there.
RESTART_TOOL_TIMEOUT = 20.0
#: In the concurrent rounds, the same for both (hermes' default is 300 s): what a call stuck on a lost
#: answer waits for. hermes sends one request at a time per server, so it must cover N x ``SLOW``.
CONCURRENT_TOOL_TIMEOUT = {20: 10.0, 100: 30.0}
#: Each concurrent call is ``slow(SLOW)``; the server is SIGKILLed ``KILL_AFTER`` s after they start.
SLOW = 0.1
KILL_AFTER = 0.15
#: In the write-lost-in-flight rounds, for both.
WRITE_TOOL_TIMEOUT = 5.0


@dataclass
class Hermes:
    """hermes' MCP client (``tools.mcp_tool``), driven the way its agent drives it."""

    mcp_tool: ModuleType
    registry: Any

    def connect(self, config: dict[str, Any]) -> None:
        names = self.mcp_tool.register_mcp_servers({SERVER: config})
        if f"mcp__{SERVER}__echo" not in names:
            fail(f"hermes did not register the fault server's tools: {names}")

    def dispatch(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """One tool call through hermes' registry, as the agent loop makes it; the parsed JSON answer."""
        answer = json.loads(self.registry.dispatch(f"mcp__{SERVER}__{tool}", dict(arguments)))
        if not isinstance(answer, dict):
            raise RuntimeError(f"hermes answered {answer!r}")  # from a worker thread: not fail()
        return answer

    def call(self, tool: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], float]:
        started = time.perf_counter()
        answer = self.dispatch(tool, arguments)
        return answer, time.perf_counter() - started

    def close(self) -> None:
        self.mcp_tool.shutdown_mcp_servers()
        with self.mcp_tool._lock:
            self.mcp_tool._servers.clear()
        self.mcp_tool._server_error_counts.clear()
        self.mcp_tool._server_breaker_opened_at.clear()


def answered(answer: dict[str, Any]) -> bool:
    return "error" not in answer and "result" in answer


def answered_by(answer: dict[str, Any], pid: int | None) -> bool:
    """An ``echo`` answer from the server process ``pid`` (the restarted one)."""
    if not answered(answer):
        return False
    text = answer["result"] if isinstance(answer["result"], str) else json.dumps(answer["result"])
    return text.rstrip(")").endswith(f"(pid {pid}")


@contextlib.contextmanager
def shim(on: bool) -> Iterator[None]:
    """hermes with the shim (turned on as a user does, before hermes connects), or as shipped."""
    from mcp_hooks_hermes import mcp_hooks_integration

    switch_shim("hermes", mcp_hooks_integration, on)
    try:
        yield
    finally:
        mcp_hooks.uninstrument("hermes")


@contextlib.contextmanager
def connected(hermes: Hermes, config: dict[str, Any]) -> Iterator[Hermes]:
    hermes.connect(config)
    try:
        yield hermes
    finally:
        hermes.close()


def label(on: bool) -> str:
    return "with mcp-hooks" if on else "hermes alone"


# --- 1. the first call after a restart ------------------------------------------------------------------


@dataclass
class RestartRound:
    answered: bool
    seconds: float
    fresh: float


def restart_rounds(hermes: Hermes, srv: FaultServer, on: bool, rounds: int) -> list[RestartRound]:
    """One connection, ``rounds`` restarts (SIGTERM and SIGKILL in turn). After each restart an untimed
    raw-SDK connection lets the new process serve its first request; then hermes' call is timed, then a
    fresh raw-SDK connect + initialize + call to the same server (the reference)."""
    found: list[RestartRound] = []
    with shim(on), connected(hermes, {"url": srv.url, "timeout": RESTART_TOOL_TIMEOUT, "connect_timeout": 20}):
        first, _ = hermes.call("echo", {"text": "before"})
        if not answered_by(first, srv.pid):
            fail(f"hermes' first call failed ({label(on)}): {first}")
        for n in range(rounds):
            srv.restart(sig=signal.SIGTERM if n % 2 == 0 else signal.SIGKILL)
            asyncio.run(fresh_call(srv.url, arguments={"text": "warm-up"}))
            answer, seconds = hermes.call("echo", {"text": f"after restart {n}"})
            fresh = asyncio.run(fresh_call(srv.url))
            found.append(RestartRound(answered_by(answer, srv.pid), seconds, fresh))
            print(
                f"    restart {n + 1} ({label(on)}): {ms(seconds)}"
                f"{'' if found[-1].answered else ' NOT ANSWERED: ' + str(answer)[:120]}; fresh connect {ms(fresh)}",
                flush=True,
            )
    return found


def restart_figures(suite: Suite, alone: list[RestartRound], ours: list[RestartRound]) -> None:
    def ratios(rounds: list[RestartRound]) -> list[float]:
        return [ratio(r.seconds, r.fresh) for r in rounds if r.answered]

    def ok(rounds: list[RestartRound]) -> int:
        return sum(r.answered for r in rounds)

    alone_x, ours_x = med(ratios(alone)), med(ratios(ours))
    fresh_all = [r.fresh for r in alone + ours]
    counts = f"answered {ok(alone)}/{len(alone)} alone, {ok(ours)}/{len(ours)} with mcp-hooks"
    procedure = (
        f"{len(alone)} restarts each (SIGTERM and SIGKILL in turn), one connection; hermes' call is made once "
        "the new process has served one untimed raw-SDK connection, and the fresh connect right after it"
    )
    suite.add(
        Figure(
            id="hermes.restart.ratio",
            group=GROUP,
            label="First call after a server restart, x a fresh raw-SDK connect + initialize + call",
            ours=ours_x,
            baseline=alone_x,
            unit="x fresh connect",
            result=f"hermes alone {times(alone_x)} fresh connect, with mcp-hooks {times(ours_x)}",
            note=(
                f"medians of per-round ratios; {counts}. hermes alone polls every 0.25 s for its rebuilt "
                "session; with mcp-hooks the wait wakes on hermes' own ready event. The gap to a fresh connect "
                "is hermes' own rebuild: the refused first attempt (404), closing the old session (DELETE), and "
                f"listing the tools again (tools/list) before the replay. {procedure}."
            ),
        )
    )
    suite.add(
        Figure(
            id="hermes.restart.latency",
            group=GROUP,
            label="First call after a server restart, through hermes' tool dispatch",
            ours=med(r.seconds for r in ours if r.answered) * 1000,
            baseline=med(r.seconds for r in alone if r.answered) * 1000,
            unit="ms",
            result=(
                f"hermes alone {ms(med(r.seconds for r in alone if r.answered))}, "
                f"with mcp-hooks {ms(med(r.seconds for r in ours if r.answered))} "
                f"(fresh connect {ms(med(fresh_all))})"
            ),
            note=(
                f"hermes alone {spread_ms(r.seconds for r in alone if r.answered)}, with mcp-hooks "
                f"{spread_ms(r.seconds for r in ours if r.answered)}, fresh raw-SDK connect "
                f"{spread_ms(fresh_all)}; {counts}"
            ),
        )
    )


# --- 2. N concurrent calls across a restart -----------------------------------------------------------


@dataclass
class ConcurrentRound:
    n: int
    answered: int
    settled: float
    reconnects: int
    errors: list[str]


def concurrent_round(hermes: Hermes, srv: FaultServer, on: bool, n: int) -> ConcurrentRound:
    """A fresh connection; ``n`` calls of ``slow`` started together (one agent worker thread each),
    the server SIGKILLed and restarted ``KILL_AFTER`` s later; every answer, and when the last came."""
    timeout = CONCURRENT_TOOL_TIMEOUT[n]
    with (
        shim(on),
        counting_reconnects(FRAMEWORK) as counter,
        connected(hermes, {"url": srv.url, "timeout": timeout, "connect_timeout": 20}),
    ):
        warm, _ = hermes.call("echo", {"text": "before"})
        if not answered_by(warm, srv.pid):
            fail(f"hermes' first call failed ({label(on)}): {warm}")
        with concurrent.futures.ThreadPoolExecutor(n, thread_name_prefix="bench-hermes-call") as pool:
            started = time.perf_counter()
            futures = [pool.submit(hermes.dispatch, "slow", {"seconds": SLOW}) for _ in range(n)]
            time.sleep(KILL_AFTER)
            srv.restart(sig=signal.SIGKILL)
            # hermes bounds each call (tool timeout; its recovery waits 15 s, then retries once).
            answers = [f.result(timeout=3 * timeout + 60) for f in futures]
            settled = time.perf_counter() - started
        reconnects = counter.count
    ok = sum(answered(a) for a in answers)
    errors = sorted({str(a.get("error", a))[:90] for a in answers if not answered(a)})
    print(
        f"    {n} calls across a restart ({label(on)}): {ok}/{n} answered, all settled in {settled:.1f} s"
        + (f", {reconnects} rebuild(s)" if on else "")
        + (f"; errors: {errors}" if errors else ""),
        flush=True,
    )
    return ConcurrentRound(n, ok, settled, reconnects, errors)


def concurrent_figures(suite: Suite, n: int, alone: list[ConcurrentRound], ours: list[ConcurrentRound]) -> None:
    total = n * len(alone)
    got_alone, got_ours = sum(r.answered for r in alone), sum(r.answered for r in ours)
    rounds = f"{len(alone)} restart{'s' if len(alone) > 1 else ''} of {n} calls"
    timeout = CONCURRENT_TOOL_TIMEOUT[n]
    errors = sorted({e for r in alone for e in r.errors})
    suite.add(
        Figure(
            id=f"hermes.concurrent.{n}.answered",
            group=GROUP,
            label=f"{n} concurrent calls across a SIGKILL restart: answered",
            ours=float(got_ours),
            baseline=float(got_alone),
            unit="calls",
            result=f"hermes alone {got_alone}/{total}, with mcp-hooks {got_ours}/{len(ours) * n} ({rounds})",
            note=(
                f"each call slow({SLOW:g} s), the server SIGKILLed {KILL_AFTER:g} s after they start; tool timeout "
                f"{timeout:g} s for both (hermes' default is 300 s). hermes sends one request at a time per server: "
                "alone, the call in flight never gets an answer and holds the server's lock until the tool "
                f"timeout, so the calls queued behind it time out too. Errors alone: {'; '.join(errors) or 'none'}"
            ),
        )
    )
    suite.add(
        Figure(
            id=f"hermes.concurrent.{n}.settled",
            group=GROUP,
            label=f"{n} concurrent calls across a SIGKILL restart: until the last one settled",
            ours=med(r.settled for r in ours),
            baseline=med(r.settled for r in alone),
            unit="s",
            result=(
                f"hermes alone {med(r.settled for r in alone):.1f} s (its tool timeout, {timeout:g} s), "
                f"with mcp-hooks {med(r.settled for r in ours):.1f} s"
            ),
            note=f"median over {rounds}; with mcp-hooks the {n} calls still run one at a time ({n} x {SLOW:g} s)",
        )
    )
    suite.add(
        Figure(
            id=f"hermes.concurrent.{n}.reconnects",
            group=GROUP,
            label=f"{n} concurrent calls across a SIGKILL restart: sessions rebuilt by mcp-hooks per restart",
            ours=float(max(r.reconnects for r in ours)),
            baseline=None,
            unit="rebuilds",
            result=f"{', '.join(str(r.reconnects) for r in ours)} ({rounds})",
            note="one rebuild shared by every call that met the lost session",
        )
    )


# --- 3. a write lost in flight ------------------------------------------------------------------------


@dataclass
class WriteRound:
    answer: dict[str, Any]
    seconds: float
    runs: int
    server_back: float | None = None  # s from the call's start until the killed server was started again


def revive(srv: FaultServer, back_at: list[float]) -> threading.Thread:
    """Start the server again (from a thread) as soon as it has died, noting when it was back."""

    def run() -> None:
        deadline = time.monotonic() + 30
        while srv.running and time.monotonic() < deadline:
            time.sleep(0.01)
        if not srv.running:
            srv.start()
            back_at.append(time.perf_counter())

    thread = threading.Thread(target=run, name="bench-hermes-revive", daemon=True)
    thread.start()
    return thread


def write_lost_http(hermes: Hermes, srv: FaultServer, on: bool) -> WriteRound:
    """``incr`` runs, then the server dies before answering (and is started again at once)."""
    config = {"url": srv.url, "timeout": WRITE_TOOL_TIMEOUT, "connect_timeout": 20}
    with shim(on), connected(hermes, config):
        hermes.call("echo", {"text": "before"})
        ran = srv.executions_from_now()
        srv.kill_during_next_call("incr", when="after")
        back_at: list[float] = []
        back = revive(srv, back_at)
        try:
            started = time.perf_counter()
            answer, seconds = hermes.call("incr", {"key": f"http-{'shim' if on else 'alone'}"})
        finally:
            back.join(40)
            srv.clear_controls()
            if not srv.running:
                srv.start()
        runs = ran("incr")
    server_back = back_at[0] - started if back_at else None
    print(
        f"    a write lost in flight, HTTP ({label(on)}): {str(answer)[:100]} after {seconds:.1f} s; ran {runs}x"
        + (f"; the server was back after {server_back:.1f} s" if server_back is not None else ""),
        flush=True,
    )
    return WriteRound(answer, seconds, runs, server_back)


def write_lost_stdio(hermes: Hermes, srv: FaultServer, on: bool) -> WriteRound:
    """hermes spawns the server; it dies right after running ``incr``, before answering."""
    params = srv.stdio_parameters()
    config = {"command": params.command, "args": list(params.args), "env": dict(params.env), "timeout": 20}
    with shim(on), connected(hermes, config):
        ran = srv.executions_from_now()
        srv.kill_during_next_call("incr", when="after")
        try:
            answer, seconds = hermes.call("incr", {"key": f"stdio-{'shim' if on else 'alone'}"})
        finally:
            srv.clear_controls()
        runs = ran("incr")
    print(f"    a write lost in flight, stdio ({label(on)}): {str(answer)[:100]} after {seconds:.1f} s; ran {runs}x")
    return WriteRound(answer, seconds, runs)


def ending(round_: WriteRound) -> str:
    answer = round_.answer
    if answer.get("outcome_uncertain"):
        return "'outcome uncertain'"
    if answered(answer):
        return "a success"
    error = str(answer.get("error", ""))
    return "a timeout error" if "timed out" in error else f"error {error[:60]!r}"


def write_figures(suite: Suite, http: dict[bool, list[WriteRound]], stdio: dict[bool, list[WriteRound]]) -> None:
    def runs(rounds: list[WriteRound]) -> str:
        return "/".join(f"{r.runs}x" for r in rounds)

    def endings(rounds: list[WriteRound]) -> str:
        return " / ".join(sorted({ending(r) for r in rounds}))

    alone, ours = http[False], http[True]
    alone_s, ours_s = med(r.seconds for r in alone), med(r.seconds for r in ours)
    suite.add(
        Figure(
            id="hermes.write_lost.http.seconds",
            group=GROUP,
            label="A write (incr) lost in flight, HTTP: until the call answered",
            ours=ours_s,
            baseline=alone_s,
            unit="s",
            result=(
                f"hermes alone {endings(alone)} after {alone_s:.1f} s, with mcp-hooks {endings(ours)} "
                f"after {ours_s:.1f} s; ran {runs(alone)} and {runs(ours)}"
            ),
            note=(
                f"median of {len(alone)} each; tool timeout {WRITE_TOOL_TIMEOUT:g} s for both (hermes' default: "
                "300 s): alone, the call waits for it, holding the server's lock. The server is killed right after "
                "running incr and started again at once (it was back after "
                f"{med(r.server_back for r in alone + ours if r.server_back is not None):.1f} s, median); with "
                "mcp-hooks the time includes waiting for it to accept connections and the rebuild, before the call "
                "is settled as uncertain: "
                f"{ms(med(r.seconds - r.server_back for r in ours if r.server_back is not None))} after the server "
                "was back (median)"
            ),
        )
    )
    alone, ours = stdio[False], stdio[True]
    suite.add(
        Figure(
            id="hermes.write_lost.stdio.runs",
            group=GROUP,
            label="A write (incr) lost in flight, stdio: times it ran on the server",
            ours=float(max(r.runs for r in ours)),
            baseline=float(max(r.runs for r in alone)),
            unit="runs",
            result=(
                f"hermes alone ran it {runs(alone)} ({endings(alone)}), with mcp-hooks {runs(ours)} ({endings(ours)})"
            ),
            note=(
                "hermes spawns the server, which dies right after running incr; alone, hermes retries any "
                "'connection closed' error on its respawned server, so the write runs again"
            ),
        )
    )


# --- the suite ---------------------------------------------------------------------------------------


def run(suite: Suite, quick: bool) -> None:
    from tools import mcp_tool
    from tools.registry import registry

    hermes = Hermes(mcp_tool, registry)
    blocks, per_block = (1, 2) if quick else (2, 5)
    concurrent_rounds = {20: 1} if quick else {20: 2, 100: 1}
    write_rounds = 1 if quick else 3

    with FaultServer() as srv:
        print(f"hermes-agent against {srv.url}", flush=True)
        print("  the first call after a restart", flush=True)
        restarts: dict[bool, list[RestartRound]] = {False: [], True: []}
        for _ in range(blocks):
            for on in (False, True):
                restarts[on] += restart_rounds(hermes, srv, on, per_block)
        restart_figures(suite, restarts[False], restarts[True])

        for n, count in concurrent_rounds.items():
            print(f"  {n} concurrent calls across a restart", flush=True)
            found: dict[bool, list[ConcurrentRound]] = {False: [], True: []}
            for _ in range(count):
                for on in (False, True):
                    found[on].append(concurrent_round(hermes, srv, on, n))
            concurrent_figures(suite, n, found[False], found[True])

        print("  a write lost in flight", flush=True)
        http: dict[bool, list[WriteRound]] = {False: [], True: []}
        for _ in range(write_rounds):
            for on in (False, True):
                http[on].append(write_lost_http(hermes, srv, on))
    with FaultServer(transport="stdio") as stdio_srv:
        stdio = {on: [write_lost_stdio(hermes, stdio_srv, on)] for on in (False, True)}
    write_figures(suite, http, stdio)


def main() -> None:
    args = arguments(__doc__.splitlines()[0] if __doc__ else "hermes-agent benchmarks")
    # hermes keeps logs and state under HERMES_HOME: never the real home directory here.
    home = os.environ.get("HERMES_HOME")
    made = home is None
    if home is None:
        home = tempfile.mkdtemp(prefix="mcp-hooks-bench-hermes-")
        os.environ["HERMES_HOME"] = home
    log = Path(home) / "bench.log"
    log_to_file(log)
    suite = Suite("hermes", quick=args.quick, distributions=("hermes-agent", "mcp-hooks-hermes"))
    started = time.monotonic()
    try:
        run(suite, args.quick)
    except BaseException:
        print(f"library log: {log}", file=sys.stderr, flush=True)
        made = False  # keep it for reading
        raise
    finally:
        if made:
            shutil.rmtree(home, ignore_errors=True)
    print(f"measured in {time.monotonic() - started:.0f} s", flush=True)
    suite.write(args.out)


if __name__ == "__main__":
    main()
