"""Options are keyword-only and checked when decorating (or attaching): a bad one raises naming it."""

from __future__ import annotations

import math

import pytest
from core_helpers import isolated_pm

from mcp_hooks import attach, with_mcp_recovery

BAD_OPTIONS = [
    ("reconnect", 5, TypeError),
    ("reconnect", "reconnect", TypeError),
    ("server", "", TypeError),
    ("server", 8080, TypeError),
    ("framework", "", TypeError),
    ("framework", None, TypeError),
    ("max_reconnects", -1, ValueError),
    ("max_reconnects", 1.5, TypeError),
    ("max_reconnects", "3", TypeError),
    ("max_reconnects", True, TypeError),
    ("deadline", 0, ValueError),
    ("deadline", -1.0, ValueError),
    ("deadline", math.nan, ValueError),
    ("deadline", math.inf, ValueError),
    ("deadline", "30", TypeError),
    ("deadline", True, TypeError),
    ("replay_safe_tools", "search", TypeError),
    ("replay_safe_tools", b"search", TypeError),
    ("replay_safe_tools", 5, TypeError),
    ("replay_safe_tools", ["search", 5], TypeError),
    ("plugin_manager", object(), TypeError),
    ("tool_param", 5, TypeError),
    ("arguments_param", ["arguments"], TypeError),
]


@pytest.mark.parametrize(("option", "value", "error"), BAD_OPTIONS, ids=[f"{o}={v!r}" for o, v, _ in BAD_OPTIONS])
def test_a_bad_option_raises_when_decorating_naming_it(option, value, error):
    def call_tool(name, arguments):
        return name

    with pytest.raises(error, match=rf"'{option}'"):
        with_mcp_recovery(**{option: value})(call_tool)


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [row for row in BAD_OPTIONS if row[0] not in ("tool_param", "arguments_param")],
    ids=[f"{o}={v!r}" for o, v, _ in BAD_OPTIONS if o not in ("tool_param", "arguments_param")],
)
def test_a_bad_option_raises_when_attaching_naming_it(option, value, error):
    with pytest.raises(error, match=rf"'{option}'"):
        attach("json:dumps", **{option: value})
    import json

    assert not hasattr(json.dumps, "_self_mcp_hooks_handle")  # nothing was wrapped


def test_unknown_option_names():
    with pytest.raises(TypeError, match="'retries'"):
        with_mcp_recovery(retries=3)
    with pytest.raises(TypeError, match="'max_reconnect'"):
        attach("json:dumps", max_reconnect=3)
    with pytest.raises(TypeError, match="'timeout'"):
        attach("a_module_that_is_not_imported_yet_xyz:f", timeout=3)


@pytest.mark.parametrize("option", ["tool_param", "arguments_param"])
def test_a_parameter_option_naming_no_parameter(option):
    def call_tool(name, arguments=None):
        return name

    with pytest.raises(ValueError, match=rf"'{option}'.*'tool_nme'"):
        with_mcp_recovery(**{option: "tool_nme"})(call_tool)


def test_parameter_options_that_exist_are_used():
    from mcp_hooks import ToolCall

    pm = isolated_pm()
    seen: list[ToolCall] = []
    attempts = 0

    @with_mcp_recovery(tool_param="which", arguments_param="payload", reconnect=seen.append, plugin_manager=pm)
    def run(which, payload, name="not the tool"):
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionRefusedError(111, "Connection refused")
        return which

    assert run("get_weather", {"city": "Oslo"}) == "get_weather"
    (call,) = seen
    assert call.tool == "get_weather"
    assert call.arguments == {"city": "Oslo"}


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        with_mcp_recovery(lambda call: None, 3)  # type: ignore[call-overload]


def test_good_options_are_accepted():
    pm = isolated_pm()

    @with_mcp_recovery(
        reconnect=lambda call: None,
        server="http://127.0.0.1:8000/mcp",
        framework="unit",
        max_reconnects=0,
        deadline=0.5,
        replay_safe_tools=("search", "fetch"),
        plugin_manager=pm,
        tool_param="name",
        arguments_param="arguments",
    )
    async def call_tool(name, arguments=None):
        return name

    @with_mcp_recovery
    def bare(name):
        return name

    assert bare("x") == "x"


def test_decorating_something_that_cannot_be_wrapped():
    with pytest.raises(TypeError, match="with_mcp_recovery"):
        with_mcp_recovery()(42)

    def gen(name):
        yield name

    with pytest.raises(TypeError, match="generator"):
        with_mcp_recovery()(gen)


@pytest.mark.parametrize("target", ["json.dumps", "json:", ":dumps", "json:du mps", 42])
def test_attach_target_must_name_module_and_qualname(target):
    with pytest.raises(ValueError, match=r"package\.module:Qualified\.name"):
        attach(target)
