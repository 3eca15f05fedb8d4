"""The kit's state directory and cheap per-call path: cached controls, append-only counters, the POST idle
TTL, the health report, and the new options' validation."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from kit_helpers import TOOLS_LIST, check_stale_answer, raw_post, raw_session

from mcp_hooks.testing import STALE_STYLES, FaultServer, FaultServerError
from mcp_hooks.testing.controller import StateFiles
from mcp_hooks.testing.server import parse_args


@pytest.mark.timeout(60)
def test_every_control_change_is_seen_by_the_next_request(mcp_shared_fault_server: FaultServer) -> None:
    """control.json is re-read only when it changed: changes faster than the file clock still show."""
    srv = mcp_shared_fault_server
    for round_ in range(3):
        for style in STALE_STYLES:
            srv.set_stale_style(style)  # several replacements within one timestamp tick
            check_stale_answer(style, *raw_post(srv.url, TOOLS_LIST, session_id=f"never-{round_}")[:3])
            assert srv.health()["stale_style"] == style
    # even where the file clock is coarse (seconds on some file systems): same size, same mtime
    srv.set_stale_style("typescript")
    check_stale_answer("typescript", *raw_post(srv.url, TOOLS_LIST, session_id="never-a")[:3])
    before = os.stat(srv.files.control)
    srv.set_stale_style("ts-example")  # as long as "typescript"
    os.utime(srv.files.control, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(srv.files.control)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    check_stale_answer("ts-example", *raw_post(srv.url, TOOLS_LIST, session_id="never-b")[:3])
    srv.clear_controls()
    assert srv.health()["stale_style"] == "python"


_WORKER = """
import sys
from pathlib import Path
from mcp_hooks.testing.controller import StateFiles
files = StateFiles(Path(sys.argv[1]))
for i in range(int(sys.argv[2])):
    files.increment("shared")
    files.put(f"{sys.argv[3]}-{i}", str(i))
"""


@pytest.mark.timeout(60)
def test_counters_and_store_are_exact_across_processes_and_torn_lines(tmp_path: Path) -> None:
    files = StateFiles(tmp_path)
    workers = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), "200", name], stdin=subprocess.DEVNULL)
        for name in ("a", "b")
    ]
    for _ in range(100):  # this process increments meanwhile, under the same lock
        files.increment("shared")
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    assert files.counter("shared") == 500
    assert files.get("a-199") == "199" and files.get("b-0") == "0" and files.get("c-0") is None
    # a writer killed in the middle of its line leaves a torn end: it is skipped, never glued to the next
    with open(files.counters, "ab") as fh:
        fh.write(b'{"key": "shared", "val')
    assert files.counter("shared") == 500
    assert files.increment("shared") == 501
    read_back = subprocess.run(
        [sys.executable, "-c", f"{_WORKER}\nprint(files.counter('shared'))", str(tmp_path), "0", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert read_back.stdout.strip() == "501"  # a fresh process folds the same log to the same value
    # the state dir emptied and written again by another process (a new log, maybe on the old inode)
    files.counters.unlink()
    files.kv.unlink()
    again = subprocess.run([sys.executable, "-c", _WORKER, str(tmp_path), "600", "z"], timeout=60, check=False)
    assert again.returncode == 0
    assert files.counter("shared") == 600
    assert files.get("a-199") is None and files.get("z-599") == "599"


@contextmanager
def standing_get(url: str, session_id: str) -> Iterator[None]:
    """Hold the session's standing GET (SSE) stream open, as connect() does."""
    request = urllib.request.Request(
        url, headers={"accept": "text/event-stream", "mcp-session-id": session_id}, method="GET"
    )
    response = urllib.request.urlopen(request, timeout=30)
    try:
        assert response.status == 200
        yield
    finally:
        response.close()


@pytest.mark.timeout(60)
def test_post_idle_ttl_counts_posts_not_the_get_stream(mcp_fault_server_factory: Callable[..., FaultServer]) -> None:
    ttl = 1.0
    srv = mcp_fault_server_factory(post_idle_ttl=ttl, stale_style="go")
    assert srv.health()["post_idle_ttl"] == ttl
    quiet, busy = raw_session(srv.url), raw_session(srv.url)
    with standing_get(srv.url, quiet):
        deadline = time.monotonic() + ttl * 1.6
        while time.monotonic() < deadline:  # POSTs keep one session alive; the other only holds its GET
            assert raw_post(srv.url, TOOLS_LIST, session_id=busy)[0] == 200
            time.sleep(0.1)
        check_stale_answer("go", *raw_post(srv.url, TOOLS_LIST, session_id=quiet)[:3])
    assert raw_post(srv.url, TOOLS_LIST, session_id=busy)[0] == 200
    check_stale_answer("go", *raw_post(srv.url, TOOLS_LIST, session_id=quiet)[:3])  # expired for good
    assert srv.health()["stale_answers"] == 2


def test_new_options_are_validated() -> None:
    for bad in (0, -1.0, True):
        with pytest.raises(ValueError, match="post_idle_ttl"):
            FaultServer(post_idle_ttl=bad)
    with pytest.raises(ValueError, match="transport='http'"):
        FaultServer(transport="stdio", post_idle_ttl=1.0)
    srv = FaultServer(transport="stdio", legacy_only=True)
    try:
        assert srv.legacy_only
        assert "--legacy-only" in srv.stdio_parameters().args  # accepted; stdio has no 2026 era to refuse
        with pytest.raises(FaultServerError, match="HTTP"):
            srv.health()
    finally:
        srv.close()
    not_started = FaultServer(legacy_only=True, post_idle_ttl=2.5)
    try:
        with pytest.raises(FaultServerError, match="health check"):
            not_started.health()
        command = not_started._command(1234)
        assert "--legacy-only" in command
        assert command[command.index("--post-idle-ttl") + 1] == "2.5"
    finally:
        not_started.close()
    args: Any = parse_args(["--state-dir", "d", "--legacy-only", "--post-idle-ttl", "2.5"])
    assert (args.legacy_only, args.post_idle_ttl) == (True, 2.5)
    assert (parse_args(["--state-dir", "d"]).legacy_only, parse_args(["--state-dir", "d"]).post_idle_ttl) == (
        False,
        None,
    )
    with pytest.raises(SystemExit):
        parse_args(["--state-dir", "d", "--post-idle-ttl", "0"])


@pytest.mark.timeout(60)
def test_health_reports_a_running_server_only(mcp_fault_server_factory: Callable[..., FaultServer]) -> None:
    srv = mcp_fault_server_factory()
    health = srv.health()
    assert health["pid"] == srv.pid
    assert (health["legacy_only"], health["post_idle_ttl"], health["stale_answers"]) == (False, None, 0)
    srv.kill()
    with pytest.raises(FaultServerError, match="health check"):
        srv.health()
