"""The files of a state directory, shared by the controller and the server process: ``control.json``
(replaced atomically), ``executions.log`` and ``requests.log`` (one JSON line per record, one
``write`` each), ``counters.log`` and ``kv.log`` (append-only logs folded into a dict, the last record
of a key wins), ``port``, ``pid`` and ``server.log``. Stdlib only, like the controller.

Nothing is fsync'd: data handed to the kernel with ``write`` survives a SIGKILL of the process that
wrote it (it is in the page cache), so counts stay exact across kills and restarts; fsync would only
protect against a crash of the operating system, at a millisecond per tool call.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.platform != "win32":
    import fcntl

__all__ = ["StateFiles"]

_LOG_TAIL_CHARS = 4000


def _write_atomic(path: Path, data: str) -> None:
    """Replace ``path`` with ``data`` so that readers see the old or the new content, never a mix.

    Always a new file (a new inode): the server's cache of ``control.json`` relies on it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _append_line(path: Path, record: dict[str, Any]) -> None:
    """One JSON line, one ``write`` to an ``O_APPEND`` file: complete in the page cache at once, so it
    survives a SIGKILL that follows (no fsync: that only matters if the OS crashes)."""
    line = json.dumps(record) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of a file written by :func:`_append_line`, in order."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # one write() per line: not torn in practice, but be lenient
        if isinstance(record, dict):
            records.append(record)
    return records


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class _FoldedLog:
    """An append-only log of ``{"key": k, "value": v}`` lines folded into a dict (the last record of a
    key wins), read incrementally: each refresh parses only what was appended since the last one.

    Writers append one line with one ``write`` while holding :meth:`StateFiles.locked` (after a
    refresh); readers need no lock, as only complete lines are parsed. The first line of a log names it
    with a random token, so a log deleted and written again at the same path (even on a reused inode)
    is never taken for the continuation of the one read before."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mutex = threading.Lock()
        self._head = b""  # the first line (the token) of the log folded so far
        self._offset = 0
        self._clean_end = True
        self._values: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        """The current value of ``key`` (None if it has none), after reading what was appended."""
        with self._mutex:
            self._refresh()
            return self._values.get(key)

    def _reset(self) -> None:
        self._head, self._offset, self._clean_end, self._values = b"", 0, True, {}

    def _refresh(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._reset()
            return
        try:
            size = os.fstat(fd).st_size
            if self._offset and (size < self._offset or os.pread(fd, len(self._head), 0) != self._head):
                self._reset()  # another log now: start again from its beginning
            chunks: list[bytes] = []
            position = self._offset
            while position < size:
                chunk = os.pread(fd, size - position, position)
                if not chunk:
                    break
                chunks.append(chunk)
                position += len(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        complete = data.rfind(b"\n") + 1
        if not self._head and complete:
            self._head = data[: data.index(b"\n") + 1]
        for line in data[:complete].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # the torn end of a line whose writer was killed mid-write
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                self._values[record["key"]] = record.get("value")
        self._offset += complete
        self._clean_end = complete == len(data)

    def set(self, key: str, value: Any) -> None:
        """Append one record; the caller holds the state lock (so no other process appends meanwhile)."""
        with self._mutex:
            self._refresh()
            line = json.dumps({"key": key, "value": value}) + "\n"
            if not self._clean_end:
                line = "\n" + line  # never glue a record to a torn line
            elif not self._offset:  # a new log: its first line is its token
                line = json.dumps({"log": secrets.token_hex(8)}) + "\n" + line
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)


_FOLDED: dict[Path, _FoldedLog] = {}
_FOLDED_MUTEX = threading.Lock()


def _folded(path: Path) -> _FoldedLog:
    with _FOLDED_MUTEX:
        log = _FOLDED.get(path)
        if log is None:
            log = _FOLDED[path] = _FoldedLog(path)
        return log


@dataclass(frozen=True)
class StateFiles:
    """The files of one state directory, shared by the controller and the server process."""

    root: Path

    @property
    def control(self) -> Path:
        return self.root / "control.json"

    @property
    def executions_log(self) -> Path:
        return self.root / "executions.log"

    @property
    def requests_log(self) -> Path:
        return self.root / "requests.log"

    @property
    def counters(self) -> Path:
        return self.root / "counters.log"

    @property
    def kv(self) -> Path:
        return self.root / "kv.log"

    @property
    def port(self) -> Path:
        return self.root / "port"

    @property
    def pid(self) -> Path:
        return self.root / "pid"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """An exclusive lock (``flock``) over read-modify-write of the state files, across processes."""
        if sys.platform == "win32":  # pragma: no cover - no flock; the kit targets POSIX
            yield
            return
        with open(self.root / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # controls ---------------------------------------------------------------------------------
    def read_controls(self) -> dict[str, Any]:
        return _read_json_object(self.control)

    def update_controls(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        with self.locked():
            controls = self.read_controls()
            change(controls)
            _write_atomic(self.control, json.dumps(controls, sort_keys=True))
            return controls

    # executions -------------------------------------------------------------------------------
    def append_execution(self, tool: str, pid: int) -> None:
        """One line, one ``write`` to an ``O_APPEND`` file: complete in the page cache before the tool runs,
        so it survives a SIGKILL that follows (no fsync: that only matters if the OS crashes)."""
        _append_line(self.executions_log, {"tool": tool, "pid": pid, "time": time.time()})

    def execution_records(self) -> list[dict[str, Any]]:
        return _read_lines(self.executions_log)

    # protocol requests that set a session up ---------------------------------------------------
    def append_request(self, method: str, pid: int, value: str) -> None:
        """Record one ``logging/setLevel`` (``value``: the level) or ``resources/subscribe`` /
        ``resources/unsubscribe`` (``value``: the URI) answered by process ``pid`` (one line, one ``write``)."""
        _append_line(self.requests_log, {"method": method, "pid": pid, "value": value, "time": time.time()})

    def request_records(self, method: str | None = None) -> list[dict[str, Any]]:
        """The recorded requests (all, or those of ``method``), in the order they were answered."""
        return [r for r in _read_lines(self.requests_log) if method is None or r.get("method") == method]

    # counters and key/value store -------------------------------------------------------------
    # Append-only logs, folded incrementally: a write costs the same with ten keys or ten thousand.
    def increment(self, key: str) -> int:
        log = _folded(self.counters)
        with self.locked():
            value = int(log.get(key) or 0) + 1
            log.set(key, value)
            return value

    def counter(self, key: str) -> int:
        return int(_folded(self.counters).get(key) or 0)

    def put(self, key: str, value: str) -> None:
        with self.locked():
            _folded(self.kv).set(key, value)

    def get(self, key: str) -> str | None:
        value = _folded(self.kv).get(key)
        return None if value is None else str(value)

    def tail_log(self, chars: int = _LOG_TAIL_CHARS) -> str:
        try:
            with open(self.log, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - chars))
                return fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""
