"""``mcp-hooks probe URL``, the real command line in a subprocess, against the kit in every stale style."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from kit_helpers import MCP_MAJOR, OLD_PYTHON_SDK, SESSIONLESS_VERSION, check_stale_answer

from mcp_hooks.testing import STALE_STYLES, FaultServer
from mcp_hooks.testing.controller import HEALTH_PATH

PROBE_TIMEOUT = 90

# What the installed SDK raises for each style's answer (research/mcp_sdk.md §4), where it is one error.
SDK_RAISES = (
    {
        "python": "MCPError -32600: Session not found",
        "typescript": "MCPError -32001: Session not found",
        "ts-example": "MCPError -32000: Bad Request: No valid session ID provided",
        "go": "MCPError -32600: Session terminated",
        "bare-404": "MCPError -32600: Session terminated",
        "gone-410": "MCPError -32603: Server returned an error response",
        "old-python": "MCPError -32603: Server returned an error response",
    }
    if MCP_MAJOR >= 2
    else {  # mcp 1.x ignores a 404's body; on a 400 or 410 its transport crashes instead
        style: "McpError 32600: Session terminated"
        for style in ("typescript", "go", "bare-404", *(() if OLD_PYTHON_SDK else ("python",)))
    }
)


def run_probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_hooks", "probe", *args],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("style", STALE_STYLES)
def test_probe_reports_each_stale_style_and_recognises_it(mcp_shared_fault_server: FaultServer, style: str) -> None:
    srv = mcp_shared_fault_server
    srv.set_stale_style(style)
    done = run_probe(srv.url, "--json")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no traceback, no SDK log lines, no warnings
    report = json.loads(done.stdout)
    assert report["keeps_sessions"] is True
    assert report["server"]["name"] == "mcp-hooks-fault-server"
    # the status, type and body reported are the style's real answer, byte for byte
    answer = report["unknown_session_answer"]
    check_stale_answer(style, answer["status"], answer["content_type"], answer["body"].encode())
    # recognised as session loss, refused before it ran (safe to replay), as connect() sees it
    assert report["recognised"] is True
    assert report["classification"]["loss"] == "rejected"
    assert isinstance(report["recognised_from_error_alone"], bool)
    if style in SDK_RAISES:
        assert report["sdk_raises"] == SDK_RAISES[style]
    # the kit under mcp 2.x also speaks the session-less protocol, and the report says so
    assert report["sessionless_protocol"] == ([SESSIONLESS_VERSION] if MCP_MAJOR >= 2 else None)
    assert ("session-less protocol" in report["verdict"]) == (MCP_MAJOR >= 2)


@pytest.mark.timeout(120)
def test_probe_says_whether_a_server_is_session_less(mcp_fault_server_factory: Callable[..., FaultServer]) -> None:
    legacy = mcp_fault_server_factory(legacy_only=True, stale_style="gone-410")
    both = mcp_fault_server_factory(stale_style="typescript")
    stateless = mcp_fault_server_factory(stateless=True)
    with ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda srv: run_probe(srv.url), (legacy, both, stateless)))
    for done in runs:
        assert done.returncode == 0, done.stderr
        assert done.stderr == ""

    def line(out: str, label: str) -> str:
        found = re.search(rf"^   {re.escape(label)} \.+ (.*)$", out, re.MULTILINE)
        assert found, (label, out)
        return found.group(1)

    legacy_out, both_out, stateless_out = (done.stdout for done in runs)
    # legacy_only: sessions only, whatever the client
    assert line(legacy_out, "session-less protocol") == "no"
    assert line(legacy_out, "keeps sessions") == "yes"
    assert line(legacy_out, "answer to an unknown session") == "HTTP 410 ''"
    assert line(legacy_out, "recognised by mcp-hooks") == "yes"
    assert "hold no session" not in legacy_out
    # the plain kit: under mcp 2.x it speaks both, and the output says who keeps a session
    sessionless = f"yes ({SESSIONLESS_VERSION})" if MCP_MAJOR >= 2 else "no"
    assert line(both_out, "session-less protocol") == sessionless
    assert line(both_out, "keeps sessions") == "yes"
    assert line(both_out, "recognised by mcp-hooks") == "yes"
    assert ("mcp 2.x clients in their default mode='auto' hold no session" in both_out) == (MCP_MAJOR >= 2)
    # stateless: no session id at all
    assert line(stateless_out, "keeps sessions") == "no"
    assert stateless_out.rstrip().endswith("there is no session to lose")


@pytest.mark.timeout(120)
def test_probe_refuses_what_is_not_an_mcp_server_in_one_line(mcp_shared_fault_server: FaultServer) -> None:
    srv = mcp_shared_fault_server
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        cases = {
            srv.url.replace("/mcp", HEALTH_PATH): "does not answer like an MCP server (HTTP 200 to initialize)",
            srv.url + "-nothing": "does not answer like an MCP server (HTTP 404 to initialize)",
            f"http://127.0.0.1:{unused.getsockname()[1]}/mcp": "cannot reach",
            "ftp://127.0.0.1/mcp": "needs an http:// or https:// URL",
        }
        with ThreadPoolExecutor(len(cases)) as pool:
            runs = dict(zip(cases, pool.map(lambda url: run_probe(url, "--json"), cases), strict=True))
    for url, done in runs.items():
        assert done.returncode == 2, (url, done.stdout, done.stderr)
        assert done.stdout == ""
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("mcp-hooks probe: ")
        assert cases[url] in lines[0]


@pytest.mark.timeout(120)
def test_probe_reports_a_refusal_and_sends_it_again_as_mcp_hooks_would(
    mcp_fault_server_factory: Callable[..., FaultServer],
) -> None:
    with_header = mcp_fault_server_factory()
    with_header.throttle(429, retry_after=1, count=1)
    without = mcp_fault_server_factory()
    without.throttle(503, count=2)
    with ThreadPoolExecutor(2) as pool:
        header_run, bare_run = pool.map(lambda args: run_probe(*args), ((with_header.url, "--json"), (without.url,)))
    assert header_run.returncode == 0, header_run.stderr
    report = json.loads(header_run.stdout)
    assert report["refused"] == [{"status": 429, "retry_after": "1", "decision": "sent again after 1 s"}]
    assert report["recognised"] is True  # the probe went on once the refused request was answered
    assert with_header.health()["throttled"] == 1
    # without Retry-After: the built-in plugin's jittered backoff, twice, in the text report
    assert bare_run.returncode == 0, bare_run.stderr
    refused = re.findall(r"^   refused \.+ HTTP 503: sent again after ([0-9.]+) s$", bare_run.stdout, re.MULTILINE)
    assert len(refused) == 2, bare_run.stdout
    assert all(0 < float(wait) <= 10 for wait in refused)
    assert without.health()["throttled"] == 2


@pytest.mark.timeout(120)
def test_probe_says_when_mcp_hooks_would_not_wait_for_a_refusal(mcp_fault_server: FaultServer) -> None:
    mcp_fault_server.throttle(429, retry_after=120, count=1)
    done = run_probe(mcp_fault_server.url)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert "refused the probe's request with HTTP 429, Retry-After: 120; mcp-hooks would not send it again" in line


@pytest.mark.timeout(120)
def test_probe_recognises_a_401_to_a_stale_session(mcp_fault_server: FaultServer) -> None:
    mcp_fault_server.answer_stale_with_401()
    done = run_probe(mcp_fault_server.url, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["unknown_session_answer"]["status"] == 401
    assert report["recognised"] is True
    assert report["classification"]["loss"] == "rejected"
    assert "answers a stale session with 401" in report["verdict"]
