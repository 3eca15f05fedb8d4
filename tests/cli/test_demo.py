"""``mcp-hooks demo``: a real local server restarted under a live session, the call recovers; exit 0 only
when recovery really happened (run as a user runs it, in a child process)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.timeout(150)
@pytest.mark.parametrize("transport", ["http", "stdio"])
def test_demo_shows_the_raw_sdk_failing_and_every_recovery(transport: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_hooks", "demo", "--json", "--transport", transport],
        capture_output=True,
        text=True,
        timeout=140,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["transport"] == transport
    assert report["raw_sdk"]["later_calls_failed"] is True  # the SDK alone does not recover
    hooks = report["mcp_hooks"]
    assert hooks["answered"] and hooks["reconnects"] >= 1
    assert hooks["write_refused_as_uncertain"] and hooks["write_executions"] == 1
    assert report["healed_sdk_session"]["answered"] is True
    assert report["recovered"] is True


def test_demo_rejects_an_unknown_transport() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mcp_hooks", "demo", "--transport", "carrier-pigeon"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "transport" in done.stderr
