"""``attach``: recovery on someone else's function, in place, reversibly, once."""

from __future__ import annotations

import importlib
import inspect
import sys
import textwrap
import uuid

import pytest
import wrapt
from core_helpers import isolated_pm, session_lost_error

from mcp_hooks import AttachHandle, attach

# A small "framework" module: a client whose calls fail once on a dead session.
FRAMEWORK_SOURCE = """
from core_helpers import session_lost_error

log = []
dead = {"value": False}


def _maybe_fail(where):
    log.append(where)
    if dead["value"]:
        dead["value"] = False
        raise session_lost_error()


def call_tool(name, arguments=None):
    _maybe_fail(("function", name))
    return ("function", name)


class Base:
    server_name = "framework-server"

    async def call_tool(self, name, arguments=None):
        _maybe_fail(("Base.call_tool", name))
        return ("Base.call_tool", name)

    def inherited(self, name):
        _maybe_fail(("Base.inherited", name))
        return ("Base.inherited", name)

    @classmethod
    def from_config(cls, name):
        _maybe_fail(("Base.from_config", cls.__name__, name))
        return ("Base.from_config", cls.__name__, name)

    @staticmethod
    def helper(name):
        _maybe_fail(("Base.helper", name))
        return ("Base.helper", name)


class Sub(Base):
    async def call_tool(self, name, arguments=None):
        _maybe_fail(("Sub.call_tool", name))
        return ("Sub.call_tool", name)


class SubSub(Sub):
    pass
"""


@pytest.fixture
def make_module(tmp_path):
    """Write a uniquely named module into a folder on ``sys.path``; returns its name (not imported)."""
    names: list[str] = []
    handles: list[AttachHandle] = []
    sys.path.insert(0, str(tmp_path))

    def make(source: str = FRAMEWORK_SOURCE) -> str:
        name = f"fw_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        names.append(name)
        return name

    make.handles = handles  # type: ignore[attr-defined]
    try:
        yield make
    finally:
        for handle in handles:
            handle.detach()
        sys.path.remove(str(tmp_path))
        for name in names:
            sys.modules.pop(name, None)


@pytest.fixture
def framework(make_module):
    name = make_module()
    module = importlib.import_module(name)
    module.attach = lambda qualname, **options: _attach(make_module, f"{name}:{qualname}", **options)
    return module


def _attach(make_module, target: str, **options) -> AttachHandle:
    options.setdefault("plugin_manager", isolated_pm())
    handle = attach(target, **options)
    make_module.handles.append(handle)
    return handle


def test_attach_a_function(framework):
    original = framework.call_tool
    rebuilds = []
    handle = framework.attach("call_tool", reconnect=rebuilds.append)
    assert handle.status == "attached"
    assert handle.active
    assert framework.call_tool is not original
    assert isinstance(framework.call_tool, wrapt.FunctionWrapper)
    framework.dead["value"] = True
    assert framework.call_tool("search", {"q": 1}) == ("function", "search")
    assert len(rebuilds) == 1
    assert rebuilds[0].tool == "search"
    assert rebuilds[0].arguments == {"q": 1}
    handle.detach()
    assert framework.call_tool is original
    assert handle.status == "detached"


async def test_attach_an_async_method(framework):
    original = vars(framework.Base)["call_tool"]
    rebuilds = []
    handle = framework.attach("Base.call_tool", reconnect=rebuilds.append)
    assert inspect.iscoroutinefunction(framework.Base.call_tool)
    client = framework.Base()
    assert inspect.iscoroutinefunction(client.call_tool)
    framework.dead["value"] = True
    assert await client.call_tool("search") == ("Base.call_tool", "search")
    (call,) = rebuilds
    assert call.owner is client
    assert call.server == "framework-server"
    assert call.tool == "search"
    handle.detach()
    assert vars(framework.Base)["call_tool"] is original
    assert inspect.iscoroutinefunction(framework.Base.call_tool)


def test_attach_a_classmethod(framework):
    original = vars(framework.Base)["from_config"]
    rebuilds = []
    handle = framework.attach("Base.from_config", reconnect=rebuilds.append)
    framework.dead["value"] = True
    assert framework.Base.from_config("x") == ("Base.from_config", "Base", "x")
    assert framework.Sub.from_config("y") == ("Base.from_config", "Sub", "y")
    assert framework.Base().from_config("z") == ("Base.from_config", "Base", "z")
    assert len(rebuilds) == 1
    assert rebuilds[0].owner is framework.Base
    handle.detach()
    assert vars(framework.Base)["from_config"] is original


def test_attach_a_staticmethod(framework):
    original = vars(framework.Base)["helper"]
    rebuilds = []
    handle = framework.attach("Base.helper", reconnect=rebuilds.append)
    framework.dead["value"] = True
    assert framework.Base.helper("x") == ("Base.helper", "x")
    assert framework.Base().helper("y") == ("Base.helper", "y")
    assert len(rebuilds) == 1
    handle.detach()
    assert vars(framework.Base)["helper"] is original


async def test_attach_a_subclass_override_named_explicitly(framework):
    base_original = vars(framework.Base)["call_tool"]
    sub_original = vars(framework.Sub)["call_tool"]
    rebuilds = []
    handle = framework.attach("Sub.call_tool", reconnect=rebuilds.append)
    assert vars(framework.Base)["call_tool"] is base_original  # the base is untouched
    framework.dead["value"] = True
    assert await framework.Sub().call_tool("x") == ("Sub.call_tool", "x")
    assert len(rebuilds) == 1
    framework.dead["value"] = True
    with pytest.raises(Exception) as info:
        await framework.Base().call_tool("y")  # not attached: passes through
    assert "Session" in str(info.value)
    assert len(rebuilds) == 1
    handle.detach()
    assert vars(framework.Sub)["call_tool"] is sub_original


def test_attach_an_inherited_method_and_detach_removes_it_again(framework):
    assert "inherited" not in vars(framework.Sub)
    rebuilds = []
    handle = framework.attach("Sub.inherited", reconnect=rebuilds.append)
    assert "inherited" in vars(framework.Sub)
    framework.dead["value"] = True
    assert framework.Sub().inherited("x") == ("Base.inherited", "x")
    assert len(rebuilds) == 1
    handle.detach()
    assert "inherited" not in vars(framework.Sub)
    assert framework.Sub.inherited is framework.Base.inherited


def test_attach_an_inherited_classmethod(framework):
    rebuilds = []
    handle = framework.attach("Sub.from_config", reconnect=rebuilds.append)
    framework.dead["value"] = True
    assert framework.Sub.from_config("x") == ("Base.from_config", "Sub", "x")
    assert framework.Sub().from_config("y") == ("Base.from_config", "Sub", "y")
    assert framework.SubSub.from_config("z") == ("Base.from_config", "SubSub", "z")  # still binds late
    assert framework.SubSub().from_config("w") == ("Base.from_config", "SubSub", "w")
    assert len(rebuilds) == 1
    handle.detach()
    assert "from_config" not in vars(framework.Sub)


def test_attaching_twice_returns_the_same_handle_and_wraps_once(framework):
    original = vars(framework.Base)["inherited"]
    first = framework.attach("Base.inherited")
    second = framework.attach("Base.inherited")
    assert second is first
    wrapper = vars(framework.Base)["inherited"]
    assert wrapper.__wrapped__ is original  # one layer, around the original
    assert not isinstance(wrapper.__wrapped__, wrapt.FunctionWrapper)
    first.detach()
    first.detach()  # twice is fine
    assert vars(framework.Base)["inherited"] is original
    third = framework.attach("Base.inherited")  # attach again after detach: a new handle, one layer
    assert third is not first
    assert vars(framework.Base)["inherited"].__wrapped__ is original
    third.detach()
    assert vars(framework.Base)["inherited"] is original


async def test_a_bound_method_captured_while_attached_passes_through_after_detach(framework):
    rebuilds = []
    handle = framework.attach("Base.call_tool", reconnect=rebuilds.append)
    client = framework.Base()
    bound = client.call_tool  # captured while attached
    handle.detach()
    framework.dead["value"] = True
    with pytest.raises(Exception) as info:
        await bound("x")
    assert type(info.value) is type(session_lost_error())  # untouched: no recovery, same error type
    assert rebuilds == []
    assert not getattr(info.value, "__notes__", None)
    assert await bound("x") == ("Base.call_tool", "x")


def test_attach_a_target_whose_module_is_imported_later(make_module):
    name = make_module()
    assert name not in sys.modules
    rebuilds = []
    handle = _attach(make_module, f"{name}:Base.inherited", reconnect=rebuilds.append)
    assert handle.status == "pending"
    assert not handle.attached_on_import
    assert _attach(make_module, f"{name}:Base.inherited") is handle  # still one handle
    module = importlib.import_module(name)
    assert handle.status == "attached"
    assert handle.attached_on_import
    module.dead["value"] = True
    assert module.Base().inherited("x") == ("Base.inherited", "x")
    assert len(rebuilds) == 1
    handle.detach()
    assert not isinstance(vars(module.Base)["inherited"], wrapt.FunctionWrapper)


def test_a_pending_attach_detached_before_import_never_attaches(make_module):
    name = make_module()
    handle = _attach(make_module, f"{name}:call_tool")
    handle.detach()
    module = importlib.import_module(name)
    assert handle.status == "detached"
    assert not isinstance(module.call_tool, wrapt.FunctionWrapper)


def test_attach_errors(framework):
    with pytest.raises(AttributeError):
        framework.attach("NoSuchClass.method")
    with pytest.raises(TypeError, match="not a function"):
        framework.attach("dead")


@pytest.mark.parametrize(
    ("qualname", "options", "why"),
    [
        ("Base.no_such_method", {}, "no_such_method"),
        ("call_tool", {"tool_param": "tool_nme"}, "tool_nme"),
    ],
)
def test_a_pending_attach_that_cannot_apply_never_breaks_the_import(make_module, caplog, qualname, options, why):
    name = make_module()
    handle = _attach(make_module, f"{name}:{qualname}", **options)
    assert handle.status == "pending"
    module = importlib.import_module(name)  # the framework's own import goes on
    assert module.call_tool("x") == ("function", "x")
    assert handle.status == "failed"
    assert why in str(handle.error)
    assert any(name in record.getMessage() and why in record.getMessage() for record in caplog.records)
    handle.detach()
    # attaching again (correctly) works
    fixed = _attach(make_module, f"{name}:call_tool")
    assert fixed is not handle
    assert fixed.status == "attached"
