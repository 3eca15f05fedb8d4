"""Property tests: ``classify`` terminates on any error graph (random nesting, cycles, huge depth), never
recurses, and an ``InterruptedError`` reachable within the budget always wins."""

from __future__ import annotations

import asyncio
import sys
from collections import deque

from core_helpers import (
    BaseExceptionGroup,
    anyio,
    http_status_error,
    httpx,
    in_flight_error,
    isolated_pm,
    sdk_error,
    session_lost_error,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mcp_hooks import Loss, classify, is_session_expired
from mcp_hooks.classify import NODE_BUDGET

PM = isolated_pm()


class ToolError(Exception):
    pass


# Leaf makers: real SDK and transport errors, plain errors, and teardown debris.
LEAVES = [
    session_lost_error,
    in_flight_error,
    lambda: sdk_error(-32001, "Request timed out"),
    lambda: sdk_error(-32601, "Method not found"),
    lambda: http_status_error(404),
    lambda: http_status_error(503, body="Too many open sessions"),
    lambda: httpx.ConnectError("All connection attempts failed"),
    lambda: httpx.RemoteProtocolError("peer closed connection"),
    anyio.ClosedResourceError,
    anyio.EndOfStream,
    lambda: RuntimeError("Connection refused"),
    lambda: ValueError("bad input"),
    lambda: ToolError("session not found"),
    lambda: asyncio.CancelledError("Cancelled by cancel scope"),
    lambda: RuntimeError("tool call failed"),
]


@st.composite
def error_graphs(draw, *, with_interrupt: bool):
    """A random error graph: nodes made in order, groups holding earlier nodes, then arbitrary
    ``__cause__``/``__context__`` edges (self-loops and cycles included). Returns (root, nodes)."""
    count = draw(st.integers(min_value=1, max_value=40))
    nodes: list[BaseException] = []
    for index in range(count):
        if index and draw(st.booleans()) and draw(st.booleans()):
            members = draw(st.lists(st.integers(0, index - 1), min_size=1, max_size=4))
            nodes.append(BaseExceptionGroup(f"group {index}", [nodes[m] for m in members]))
        else:
            nodes.append(LEAVES[draw(st.integers(0, len(LEAVES) - 1))]())
    for node in nodes:
        if draw(st.booleans()):
            node.__cause__ = nodes[draw(st.integers(0, count - 1))]
        if draw(st.booleans()):
            node.__context__ = nodes[draw(st.integers(0, count - 1))]
    root = nodes[draw(st.integers(0, count - 1))]
    if with_interrupt:
        reachable = _reachable(root)
        host = reachable[draw(st.integers(0, len(reachable) - 1))]
        interrupted = InterruptedError("the user pressed stop")
        interrupted.__context__ = nodes[draw(st.integers(0, count - 1))]  # cycles through it, too
        if draw(st.booleans()):
            host.__cause__ = interrupted
        else:
            host.__context__ = interrupted
    return root, nodes


def _reachable(root: BaseException) -> list[BaseException]:
    out, seen, queue = [], {id(root)}, deque([root])
    while queue:
        node = queue.popleft()
        out.append(node)
        children = [node.__cause__, node.__context__, *getattr(node, "exceptions", ())]
        for child in children:
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                queue.append(child)
    return out


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(error_graphs(with_interrupt=False))
def test_classify_terminates_on_any_graph(graph):
    root, _ = graph
    verdict = classify(root)
    assert verdict.loss in set(Loss)
    assert verdict.loss is not Loss.INTERRUPTED  # no InterruptedError was put in
    # is_session_expired agrees with the verdict (for errors the engine would catch)
    if isinstance(root, Exception):
        assert is_session_expired(root, plugin_manager_=PM) is verdict.is_session_loss


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(error_graphs(with_interrupt=True))
def test_interrupted_error_anywhere_always_wins(graph):
    root, _ = graph
    assert classify(root).loss is Loss.INTERRUPTED
    assert is_session_expired(root, plugin_manager_=PM) is False


def _chain(depth: int, bottom: BaseException, attribute: str = "__cause__") -> BaseException:
    top: BaseException = bottom
    for index in range(depth):
        upper = RuntimeError(f"layer {index}")
        setattr(upper, attribute, top)
        top = upper
    return top


def test_a_50000_deep_chain_never_hits_the_recursion_limit():
    limit = sys.getrecursionlimit()
    for attribute in ("__cause__", "__context__"):
        top = _chain(50_000, session_lost_error(), attribute)
        verdict = classify(top)  # the session error lies beyond the budget: no verdict, no crash
        assert verdict.loss is Loss.NONE
        assert is_session_expired(top, plugin_manager_=PM) is False
        # within the budget it is found
        near = _chain(NODE_BUDGET // 2, session_lost_error(), attribute)
        assert classify(near).loss is Loss.REJECTED
    assert sys.getrecursionlimit() == limit


def test_a_50000_deep_chain_of_groups():
    top: BaseException = in_flight_error()
    for index in range(50_000):
        top = BaseExceptionGroup(f"level {index}", [top])
    assert classify(top).loss is Loss.NONE  # beyond the budget
    top = in_flight_error()
    for index in range(100):
        top = BaseExceptionGroup(f"level {index}", [top])
    assert classify(top).loss is Loss.IN_FLIGHT


def test_interrupted_error_within_the_budget_of_a_deep_chain():
    interrupted = InterruptedError("stop")
    top = _chain(NODE_BUDGET - 10, interrupted)
    top.__context__ = session_lost_error()  # nearer evidence of loss does not beat the user's stop
    assert classify(top).loss is Loss.INTERRUPTED
    assert is_session_expired(top, plugin_manager_=PM) is False


def test_wide_graph_with_cycles():
    errors = [session_lost_error() if i % 97 == 0 else RuntimeError(f"e{i}") for i in range(20_000)]
    for i, error in enumerate(errors):
        error.__cause__ = errors[(i * 7 + 3) % len(errors)]
        error.__context__ = errors[(i * 13 + 5) % len(errors)]
    root = errors[1]
    verdict = classify(root)
    assert verdict.loss in (Loss.REJECTED, Loss.NONE)
    self_loop = session_lost_error()
    self_loop.__cause__ = self_loop
    self_loop.__context__ = self_loop
    assert classify(self_loop).loss is Loss.REJECTED
