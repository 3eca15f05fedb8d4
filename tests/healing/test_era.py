"""The session-less era re-negotiated when it later fails, under ``instrument("mcp")`` (mcp 2.x): an mcp 2.x
``Client`` picks the 2026-07-28 protocol at connect and the SDK never probes again. When the server is
replaced by one that refuses that version (``-32022`` UnsupportedProtocolVersion in a mixed fleet, or a
rollback to a pre-2026 server that asks for a session), the healed session negotiates again in place, once
for every request refused together, and sends the refused request again (it never ran). Real fault server
(``reject_calls``, ``legacy_only`` across a restart), the SDK's own Client."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from healing_helpers import Events, registered, text

import mcp_hooks
from mcp_hooks import hookimpl
from mcp_hooks.healing.messages import MCP_MAJOR

pytestmark = [
    pytest.mark.usefixtures("healing"),
    pytest.mark.timeout(120),
    pytest.mark.skipif(MCP_MAJOR < 2, reason="the session-less protocol is mcp 2.x"),
]

UNSUPPORTED = "Unsupported protocol version"


def supported_now() -> dict[str, Any]:
    """``-32022``'s data from a server that speaks only the client's newest modern version (a replica of a
    mixed fleet that refused once, say)."""
    from mcp_types.version import LATEST_MODERN_VERSION

    return {"supported": [LATEST_MODERN_VERSION], "requested": "1999-01-01"}


def is_modern(client: Any) -> bool:
    from mcp_types.version import MODERN_PROTOCOL_VERSIONS

    return client.session.protocol_version in MODERN_PROTOCOL_VERSIONS


async def test_baseline_unhealed_the_session_less_client_keeps_its_era_after_a_rollback(session_less: Any) -> None:
    import mcp

    server = session_less
    mcp_hooks.uninstrument("mcp")
    async with mcp.Client(server.url) as client:  # type: ignore[attr-defined]
        text(await client.call_tool("echo", {"text": "x"}))
        server.legacy_only = True
        await asyncio.to_thread(server.restart)
        for _ in range(2):
            with pytest.raises(Exception, match=r"[Ss]ession"):
                await asyncio.wait_for(client.call_tool("incr", {"key": "w"}), 20)
    assert server.counter("w") == 0


async def test_a_rollback_to_a_pre_2026_server_is_negotiated_again(session_less: Any, events: Events) -> None:
    import mcp

    server = session_less
    async with mcp.Client(server.url) as client:  # type: ignore[attr-defined]
        text(await client.call_tool("echo", {"text": "x"}))
        assert is_modern(client)
        server.legacy_only = True
        await asyncio.to_thread(server.restart)
        assert text(await asyncio.wait_for(client.call_tool("incr", {"key": "w"}), 20)) == "1"
        assert not is_modern(client)  # it holds a session now, like any pre-2026 client
        assert server.counter("w") == 1 and server.executions("incr") == 1
        assert len(events.reconnects) == 1
        # from then on an ordinary session: a restart that loses it is healed by the relay beneath
        await asyncio.to_thread(server.restart, signal.SIGKILL)
        assert text(await asyncio.wait_for(client.call_tool("incr", {"key": "w"}), 20)) == "2"
    assert events.giveups == []


async def test_unsupported_version_is_negotiated_again_once_for_requests_refused_together(
    session_less: Any, events: Events
) -> None:
    import mcp

    server = session_less
    async with mcp.Client(server.url) as client:  # type: ignore[attr-defined]
        text(await client.call_tool("echo", {"text": "x"}))
        server.reject_calls(-32022, UNSUPPORTED, supported_now(), count=5)
        answers = await asyncio.wait_for(
            asyncio.gather(*(client.call_tool("incr", {"key": f"k{i}"}) for i in range(5))), 30
        )
        assert [text(answer) for answer in answers] == ["1"] * 5
        assert is_modern(client)
    assert server.health()["rejected_calls"] == 5
    assert server.executions("incr") == 5  # each ran once
    assert len(events.reconnects) == 1  # one negotiation for the five


async def test_a_refusal_that_persists_is_given_back_after_one_negotiation(session_less: Any) -> None:
    import mcp

    server = session_less
    async with mcp.Client(server.url) as client:  # type: ignore[attr-defined]
        text(await client.call_tool("echo", {"text": "x"}))
        server.reject_calls(-32022, UNSUPPORTED, supported_now(), count=100)
        with pytest.raises(Exception, match=UNSUPPORTED):
            await asyncio.wait_for(client.call_tool("incr", {"key": "w"}), 30)
    assert server.health()["rejected_calls"] == 2  # refused, negotiated again, sent once more, refused
    assert server.executions("incr") == 0


class _KeepTheSession:
    @hookimpl(tryfirst=True)
    def should_reconnect(self, call: Any, error: BaseException) -> bool:
        return False


@pytest.fixture
def vetoed() -> Iterator[None]:
    with registered(_KeepTheSession(), "test-keep-the-session"):
        yield


@pytest.mark.usefixtures("vetoed")
async def test_a_plugin_can_veto_negotiating_again(session_less: Any, events: Events) -> None:
    import mcp

    server = session_less
    async with mcp.Client(server.url) as client:  # type: ignore[attr-defined]
        text(await client.call_tool("echo", {"text": "x"}))
        server.reject_calls(-32022, UNSUPPORTED, supported_now())
        with pytest.raises(Exception, match=UNSUPPORTED):
            await asyncio.wait_for(client.call_tool("incr", {"key": "w"}), 20)
        assert text(await asyncio.wait_for(client.call_tool("incr", {"key": "w"}), 20)) == "1"
    assert server.health()["rejected_calls"] == 1
    assert events.reconnects == []
