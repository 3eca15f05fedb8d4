"""The fault state one server process shares between its tools and its middleware: the controls
armed in ``control.json`` (read through :class:`ControlsCache`, a ``stat`` per request), consumed
one-shot or counted, and acted on (a delay, a SIGKILL before or after a tool runs).
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path
from typing import Any, NoReturn

from mcp_hooks.testing.controller import STALE_STYLES
from mcp_hooks.testing.state_files import StateFiles

__all__ = ["ControlsCache", "FaultState"]

# the server's one logger name (server.log names it on every line), whichever module logs
logger = logging.getLogger("mcp_hooks.testing.server")


class FaultState:
    """What the tools and the middleware of one server process share."""

    def __init__(self, files: StateFiles, *, stale_style: str = "python") -> None:
        self.files = files
        self.default_style = stale_style
        self.pid = os.getpid()
        self._controls = ControlsCache(files.control)
        self.extra_tool = False  # whether this process offers the extra tool (decided at start)
        self.cancelled = 0  # tool runs cancelled by the client (notifications/cancelled)

    def controls(self) -> dict[str, Any]:
        """The control file as it is now (a ``stat`` per call; parsed again only when it changed)."""
        return self._controls.read()

    def stale_style(self, controls: dict[str, Any]) -> str:
        style = controls.get("stale_style")
        return style if isinstance(style, str) and style in STALE_STYLES else self.default_style

    @staticmethod
    def generation(controls: dict[str, Any]) -> int:
        try:
            return int(controls.get("expire_sessions", 0))
        except (TypeError, ValueError):
            return 0

    def _take_kill(self, tool: str) -> str | None:
        """Consume an armed kill matching ``tool`` (one-shot, persisted before acting on it)."""
        armed = self.controls().get("kill_next_call")
        if not _matches(armed, tool):
            return None
        taken: list[str] = []

        def change(controls: dict[str, Any]) -> None:
            current = controls.get("kill_next_call")
            if _matches(current, tool):
                assert isinstance(current, dict)
                taken.append("before" if current.get("when") == "before" else "after")
                del controls["kill_next_call"]

        self.files.update_controls(change)
        return taken[0] if taken else None

    def take_handshake_fault(self, name: str) -> bool:
        """Consume an armed handshake fault, ``kill_next_handshake`` or ``drop_next_handshake_answer``
        (one-shot, persisted before acting on it)."""
        if not self.controls().get(name):
            return False
        taken: list[bool] = []

        def change(controls: dict[str, Any]) -> None:
            if controls.pop(name, None):
                taken.append(True)

        self.files.update_controls(change)
        return bool(taken)

    def take_counted(self, name: str) -> dict[str, Any] | None:
        """Consume one use of an armed counted control (``throttle``, ``reject_call``), persisted before
        acting on it."""
        if not self.controls().get(name):
            return None
        taken: list[dict[str, Any]] = []

        def change(controls: dict[str, Any]) -> None:
            armed = controls.get(name)
            if not isinstance(armed, dict):
                return
            taken.append(dict(armed))
            if int(armed.get("count", 1)) <= 1:
                del controls[name]
            else:
                controls[name] = {**armed, "count": int(armed["count"]) - 1}

        self.files.update_controls(change)
        return taken[0] if taken else None

    def die(self, tool: str, when: str) -> NoReturn:
        logger.warning("SIGKILL: armed kill %s tool %r (pid %d)", when, tool, self.pid)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(self.pid, signal.SIGKILL)
        os._exit(137)  # pragma: no cover - not reached: SIGKILL cannot be caught

    async def begin(self, tool: str) -> bool:
        """Run the controls for one execution of ``tool``; returns True if it must die after it."""
        kill = self._take_kill(tool)
        if kill == "before":
            self.die(tool, "before")
        self.files.append_execution(tool, self.pid)
        delay = self.controls().get("delay")
        if _matches(delay, tool):
            assert isinstance(delay, dict)
            seconds = float(delay.get("seconds") or 0)
            if seconds > 0:
                await _sleep(seconds)
        return kill == "after"

    def finish(self, tool: str, kill_after: bool) -> None:
        if kill_after:
            self.die(tool, "after")


class ControlsCache:
    """``control.json``, read again only when the file changed: a ``stat`` per request instead of a parse.

    Every writer replaces the file (``os.replace`` of a new file), so a change is a new inode. The
    version last read is kept open, so its inode number cannot be reused by a later version while it
    is cached: comparing ``(st_dev, st_ino, st_size, st_mtime_ns)`` of the path with the kept file
    can never mistake a new version for the cached one. A change is therefore seen on the very next
    request, exactly as when the file was parsed every time.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._key: tuple[int, int, int, int] | None = None
        self._value: dict[str, Any] = {}

    @staticmethod
    def _key_of(st: os.stat_result) -> tuple[int, int, int, int]:
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def read(self) -> dict[str, Any]:
        try:
            current = self._key_of(os.stat(self.path))
        except FileNotFoundError:
            self._forget()
            return {}
        if self._fd is not None and current == self._key:
            return self._value
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._forget()
            return {}
        try:
            key = self._key_of(os.fstat(fd))  # the version actually opened (maybe newer than the stat)
            chunks: list[bytes] = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except BaseException:
            os.close(fd)
            raise
        self._forget()
        self._fd, self._key = fd, key
        try:
            value = json.loads(b"".join(chunks))
        except ValueError:
            value = {}
        self._value = value if isinstance(value, dict) else {}
        return self._value

    def _forget(self) -> None:
        fd, self._fd, self._key, self._value = self._fd, None, None, {}
        if fd is not None:
            os.close(fd)


def _matches(entry: object, tool: str) -> bool:
    if not isinstance(entry, dict):
        return False
    wanted = entry.get("tool")
    return wanted is None or wanted == tool


async def _sleep(seconds: float) -> None:
    import anyio  # the SDK's own async layer, so this works under whatever loop runs the server

    await anyio.sleep(seconds)
