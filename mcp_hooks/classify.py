"""Is this error session loss, and did the request run? One answer for every SDK and framework.

:func:`classify` walks the error graph (``ExceptionGroup`` members, ``__cause__``, ``__context__`` and
the wrapper attributes frameworks use) breadth first, with a visited set and a node budget, and judges
each node by, in order of strength:

1. a mark that :func:`mcp_hooks.connect` attaches when it saw the HTTP answer itself
   (:func:`mark_session_lost`): a 404 to a request that carried ``Mcp-Session-Id`` is session loss
   whatever its body says, and the request did not run;
2. an HTTP status carried by the error (httpx ``HTTPStatusError``): 404, 410 or 401 to a session-bearing
   request (a 401 there is a gateway that dropped the session and blames the token), or a 400 whose body
   names the session;
3. the SDK error's code and message, duck-typed on ``.error.code``/``.error.message`` or
   ``.code``/``.message`` (mcp 1.x ``McpError``, 2.x ``MCPError``, fastmcp's alias), codes of both signs;
4. typed transport failures (connection refused before sending; reset, closed or broken while in flight);
5. the message alone, for wrappers that kept only the text.

The nearest evidence wins (the error raised to the caller says more than its history), except that a
mark anywhere in the graph outranks any wording (the transport saw the answer itself, and the SDK may
have wrapped it in an error whose words say otherwise), and an ``InterruptedError`` anywhere means the
user asked to stop: never recover. A ``CancelledError`` inside
the graph is debris of a transport's teardown and says nothing either way.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import Any

__all__ = [
    "Loss",
    "Verdict",
    "SessionLostMark",
    "classify",
    "era_refused",
    "flow_expired",
    "mark_session_lost",
    "session_lost_mark",
    "NODE_BUDGET",
]

#: The most nodes of an error graph that :func:`classify` looks at.
NODE_BUDGET = 10_000

MARK_ATTRIBUTE = "__mcp_hooks_session_lost__"


class Loss(enum.Enum):
    """What happened to the session, as far as the error tells."""

    #: Not session loss: re-raise unchanged.
    NONE = "none"
    #: The session or connection was gone before the request ran (404 to a session-bearing request,
    #: session not found or terminated, connection refused). Safe to replay.
    REJECTED = "rejected"
    #: The connection died while the request was in flight. The tool may have run.
    IN_FLIGHT = "in-flight"
    #: The user asked to stop (``InterruptedError`` in the graph). Never recover.
    INTERRUPTED = "interrupted"


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The answer of :func:`classify`: what was lost, why it is believed, and which error showed it."""

    loss: Loss
    reason: str = ""
    evidence: BaseException | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def is_session_loss(self) -> bool:
        """The session or its connection is gone and must be rebuilt."""
        return self.loss is Loss.REJECTED or self.loss is Loss.IN_FLIGHT

    @property
    def request_ran(self) -> bool | None:
        """``False`` when the request surely did not run, ``None`` when it may have."""
        if self.loss is Loss.REJECTED:
            return False
        if self.loss is Loss.IN_FLIGHT:
            return None
        return None

    def __bool__(self) -> bool:
        return self.is_session_loss


@dataclasses.dataclass(frozen=True)
class SessionLostMark:
    """What the HTTP layer saw, attached to an error by :func:`mark_session_lost`.

    :param loss: ``Loss.REJECTED`` (the server refused the session) or ``Loss.IN_FLIGHT`` (the
        connection died with the request outstanding).
    :param status: the HTTP status, when there was an answer.
    :param method: the JSON-RPC method of the request, when known.
    :param detail: a short human-readable account (never header values).
    """

    loss: Loss
    status: int | None = None
    method: str | None = None
    detail: str = ""


def mark_session_lost(error: BaseException, mark: SessionLostMark) -> BaseException:
    """Attach ``mark`` to ``error`` so that :func:`classify` trusts it over any wording; returns ``error``."""
    try:
        setattr(error, MARK_ATTRIBUTE, mark)
    except (AttributeError, TypeError):  # an exception type with __slots__ and no __dict__
        pass
    return error


def session_lost_mark(error: BaseException) -> SessionLostMark | None:
    """The mark attached by :func:`mark_session_lost`, if any."""
    mark = getattr(error, MARK_ATTRIBUTE, None)
    return mark if isinstance(mark, SessionLostMark) else None


NOT_LOST = Verdict(Loss.NONE, "no sign of session loss")

# --- messages ---------------------------------------------------------------------------------------

# Checked first: a 2.x server's answer for a request in flight when its session died. The tool may
# have run, although the words say "session terminated".
_IN_FLIGHT_SESSION = re.compile(r"session (?:was )?terminated before the request complet", re.IGNORECASE)

# The session is unknown to the server: the request was refused before it ran.
_REJECTED_TEXT = re.compile(
    "|".join(
        [
            r"session not found",
            r"session terminated",
            r"no valid session",
            r"invalid or expired session",
            r"(?:invalid|unknown|expired|stale) session",
            r"session (?:has )?expired",
            r"session is unknown",
            r"session (?:id )?(?:is )?(?:invalid|not valid|not recognized|no longer valid)",
            r"session has been terminated",
            r"session (?:does not|doesn't|no longer) exists?",
            r"session is closing",
            r"mcp_session_terminated",
            r"server not initialized",
            r"missing session id",
            r"mcp-session-id header is required",
            r"invalid session id",
        ]
    ),
    re.IGNORECASE,
)

# The connection went away with the request outstanding. These phrases are specific to the MCP SDKs
# and the frameworks above them.
_IN_FLIGHT_TEXT = re.compile(
    "|".join(
        [
            r"sse stream ended",
            r"server session was closed unexpectedly",
            r"failed due to connection loss",
            r"server disconnected without sending a response",
            r"connection to (?:the )?mcp server (?:was )?lost",
        ]
    ),
    re.IGNORECASE,
)

# "Connection closed" is the SDK's own -32000; on an arbitrary exception it proves nothing.
_CONNECTION_CLOSED = re.compile(r"connection closed", re.IGNORECASE)

# --- types ------------------------------------------------------------------------------------------

_KIND_GENERIC = 0
_KIND_INTERRUPTED = 1
_KIND_SKIP_SELF = 2  # CancelledError debris, a tool's own error: judge the children only
_KIND_HTTP_STATUS = 3
_KIND_REFUSED = 4
_KIND_IN_FLIGHT = 5
_KIND_SDK = 6
_BARE_GENERIC = -1 - _KIND_GENERIC  # the kind the walk gives a bare node of a generic type

_REFUSED_NAMES = frozenset({"ConnectError", "ConnectionRefusedError", "ConnectTimeout"})
_IN_FLIGHT_NAMES = frozenset(
    {
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
        "ClosedResourceError",
        "BrokenResourceError",
        "EndOfStream",
        "ConnectionResetError",
        "ConnectionAbortedError",
        "BrokenPipeError",
        "IncompleteRead",
    }
)
_TRANSPORT_MODULES = ("httpx", "httpx2", "httpcore", "anyio", "builtins", "h11", "http")

#: Attributes holding a wrapped error, as frameworks name them.
_WRAPPER_ATTRIBUTES = ("original_exception", "original_error", "inner_exception", "exc")
#: Every other attribute the walk and the judges read, besides ``__cause__`` and ``__context__``.
_READ_ATTRIBUTES = ("exceptions", "error", "code", "message", "response", "request", MARK_ATTRIBUTE)

#: BaseException's own descriptors: a type that replaces one is not plain.
_BASE_LINKS = {attr: BaseException.__dict__[attr] for attr in ("__cause__", "__context__")}
#: type -> (kind, plain): see _type_info
_type_infos: dict[type, tuple[int, bool]] = {}
#: type -> whether its instances hash and compare by identity: see _by_identity
_identity_types: dict[type, bool] = {}


def _type_info(tp: type) -> tuple[int, bool]:
    """The kind of an error type (how its instances are judged), and whether it is *plain*: its
    instances can carry what the walk and the judges read only in their ``__dict__`` (no class
    attribute, property, slot or ``__getattr__`` provides it). A plain node with an empty ``__dict__``
    is judged by its type and words alone, and the walk reads its dict instead of asking getattr."""
    info = _type_infos.get(tp)
    if info is not None:
        return info
    kind = _KIND_GENERIC
    for base in tp.__mro__:
        name = base.__name__
        module = base.__module__.split(".", 1)[0]
        if base is InterruptedError:
            kind = _KIND_INTERRUPTED
            break
        if name == "CancelledError" or name == "ToolError":
            kind = _KIND_SKIP_SELF
            break
        if name == "HTTPStatusError":
            kind = _KIND_HTTP_STATUS
            break
        if name in ("McpError", "MCPError"):
            kind = _KIND_SDK
            break
        if module in _TRANSPORT_MODULES:
            if name in _REFUSED_NAMES:
                kind = _KIND_REFUSED
                break
            if name in _IN_FLIGHT_NAMES:
                kind = _KIND_IN_FLIGHT
                break
    plain = (
        not hasattr(tp, "__getattr__")
        and not any(hasattr(tp, attr) for attr in (*_READ_ATTRIBUTES, *_WRAPPER_ATTRIBUTES))
        # the walk takes a bare node's __cause__ and __context__ as the setters left them
        and all(getattr(tp, attr, None) is _BASE_LINKS[attr] for attr in _BASE_LINKS)
    )
    info = (kind, plain)
    if len(_type_infos) < 4096:
        _type_infos[tp] = info
    return info


def _code_and_message(node: BaseException) -> tuple[int | None, str | None]:
    """Duck-typed JSON-RPC code and message: ``.error.code`` (both majors) or ``.code``."""
    err = getattr(node, "error", None)
    code = getattr(err, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        msg = getattr(err, "message", None)
        return code, msg if isinstance(msg, str) else None
    code = getattr(node, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        msg = getattr(node, "message", None)
        return code, msg if isinstance(msg, str) else None
    return None, None


def _judge_text(text: str, *, sdk_shaped: bool) -> tuple[Loss, str] | None:
    if _IN_FLIGHT_SESSION.search(text):
        return Loss.IN_FLIGHT, "session terminated while the request was in flight"
    match = _REJECTED_TEXT.search(text)
    if match:
        return Loss.REJECTED, f"message says {match.group(0).lower()!r}"
    match = _IN_FLIGHT_TEXT.search(text)
    if match:
        return Loss.IN_FLIGHT, f"message says {match.group(0).lower()!r}"
    if sdk_shaped and _CONNECTION_CLOSED.search(text):
        return Loss.IN_FLIGHT, "connection closed with the request outstanding"
    return None


def _judge_code(code: int, message: str | None) -> tuple[Loss, str] | None:
    text = message or ""
    verdict = _judge_text(text, sdk_shaped=True)
    if verdict is not None:
        return verdict[0], f"code {code}, {verdict[1]}"
    if code == 32600:
        # mcp 1.x answers every 404 with this positive literal (a typo for -32600), whatever the body.
        return Loss.REJECTED, "code 32600 (mcp 1.x: HTTP 404 to a session-bearing request)"
    protocol = _PROTOCOL_REFUSALS.get(code)
    if protocol is not None:
        return Loss.REJECTED, protocol
    return None


#: The 2026-07-28 protocol's refusals before dispatch (the request never ran) that a new session or client
#: cures: it negotiates the protocol version again and lists the tools again.
_UNSUPPORTED_VERSION = -32022
_PROTOCOL_REFUSALS = {
    _UNSUPPORTED_VERSION: "code -32022 UnsupportedProtocolVersion: the server no longer speaks the version this client "
    "negotiated (a rolling upgrade or rollback); a new session negotiates again",
    -32020: "code -32020 HeaderMismatch: the request's routing headers disagree with the server's tools; a "
    "new session lists them again",
}


def flow_expired(error: BaseException) -> bool:
    """The server refused a multi-round-trip round's ``requestState`` (the 2026-07-28 protocol's ``-32602``
    "Invalid or expired requestState": it restarted, or a replica with another key answered, between the
    rounds). The round never ran; the flow can be started again from its first request."""
    code, message = _code_and_message(error)
    return code == -32602 and "requeststate" in (message or str(error)).lower()


def era_refused(error: BaseException) -> bool:
    """A session-less (2026-07-28) request refused before it ran for the protocol era: ``-32022``
    UnsupportedProtocolVersion, or a server that asks for a session (a pre-2026 server, after a rollback)."""
    code, _ = _code_and_message(error)
    if code == _UNSUPPORTED_VERSION:
        return True
    return classify(error).loss is Loss.REJECTED and "session" in str(error).lower()


def _header_has_session(request: Any) -> bool:
    headers = getattr(request, "headers", None)
    if headers is None:
        return False
    try:
        return "mcp-session-id" in headers
    except Exception:  # a foreign headers object
        return False


def _response_text(response: Any) -> str:
    try:
        text = response.text
    except Exception:  # a streamed body that was never read
        return ""
    return text if isinstance(text, str) else ""


def _judge_http(node: BaseException) -> tuple[Loss, str] | None:
    response = getattr(node, "response", None)
    status = getattr(response, "status_code", None)
    if not isinstance(status, int):
        return None
    request = getattr(node, "request", None) or getattr(response, "request", None)
    with_session = _header_has_session(request)
    if status == 404 and with_session:
        return Loss.REJECTED, "HTTP 404 to a request that carried Mcp-Session-Id"
    if status == 410 and with_session:
        return Loss.REJECTED, "HTTP 410 Gone to a request that carried Mcp-Session-Id"
    if status == 401 and with_session:
        # a gateway that dropped an idle session blames the token; a fresh session's handshake refused
        # too (no session id) is an auth failure, so this rebuilds at most once
        return Loss.REJECTED, "HTTP 401 to a request that carried Mcp-Session-Id (taken as the session dropped)"
    if status in (400, 401, 404, 410, 503):
        body = _response_text(response)
        if body and _REJECTED_TEXT.search(body):
            return Loss.REJECTED, f"HTTP {status} whose body names the session"
    return None


def _judge(node: BaseException, kind: int, bare: bool = False) -> tuple[Loss, str] | None:
    """``bare``: the node has no attribute that could carry a mark, a code or a response."""
    if not bare:
        mark = getattr(node, MARK_ATTRIBUTE, None)
        if isinstance(mark, SessionLostMark):
            detail = mark.detail or (f"HTTP {mark.status}" if mark.status else "seen by the transport")
            return mark.loss, detail
    if kind == _KIND_HTTP_STATUS:
        return _judge_http(node)
    if kind == _KIND_REFUSED:
        return Loss.REJECTED, f"{type(node).__name__}: the request was not sent"
    if kind == _KIND_IN_FLIGHT:
        return Loss.IN_FLIGHT, f"{type(node).__name__} with the request outstanding"
    if not bare:
        code, message = _code_and_message(node)
        if code is not None:
            if message is None:
                message = str(node)
            return _judge_code(code, message)
    return _judge_words(node, sdk_shaped=kind == _KIND_SDK)


def _judge_words(node: BaseException, sdk_shaped: bool = False) -> tuple[Loss, str] | None:
    """What the node's message says, if anything."""
    try:
        text = str(node)
    except Exception:  # a broken __str__ must not break classification
        return None
    # Every message _judge_text can judge holds one of these words: most errors stop at this cheap scan.
    lowered = text.lower()
    if not (
        "session" in lowered
        or "connection" in lowered
        or "stream" in lowered
        or "initiali" in lowered
        or "disconnected" in lowered
    ):
        return None
    return _judge_text(text, sdk_shaped=sdk_shaped)


def _nodes(error: BaseException, budget: int) -> tuple[list[BaseException], list[int]]:
    """The nodes of the error graph, nearest first (breadth first), each once, at most ``budget`` of them,
    and beside each its kind, negative (``-1 - kind``) when the node is bare (see :func:`_type_info`).

    Children: ``__cause__``, group members, the wrapper attributes frameworks use, ``__context__``.
    No recursion, one pass over a list (this runs on every failed call, and graphs can be huge).
    """
    nodes = [error]
    kinds: list[int] = []
    # Each node once, by identity: an error whose type keeps object's hash and equality is its own key
    # (no allocation); any other by its id() (a type may compare unlike errors equal, or not hash).
    seen: set[object] = {_key(error)}
    infos = _type_infos
    identity = _identity_types
    add = seen.add
    append = nodes.append
    index = 0
    key: object
    while index < len(nodes) and index < budget:
        node = nodes[index]
        index += 1
        tp = type(node)
        info = infos.get(tp) or _type_info(tp)
        # plain: group members and wrapped errors can only be instance attributes; bare: there are none
        attributes = (getattr(node, "__dict__", None) or None) if info[1] else None
        bare = info[1] and attributes is None
        kinds.append(-1 - info[0] if bare else info[0])
        if len(nodes) >= budget:
            continue  # judge what was found, look for no more
        # A bare node's two links, unrolled (a loop over the pair made the 10,000-node walk ~10% slower).
        # They hold None or an exception: their setters see to it.
        if bare:
            child = node.__cause__
            if child is not None:
                key = child if identity.get(type(child)) or _by_identity(type(child)) else id(child)
                if key not in seen:
                    add(key)
                    append(child)
            child = node.__context__
            if child is not None:
                key = child if identity.get(type(child)) or _by_identity(type(child)) else id(child)
                if key not in seen:
                    add(key)
                    append(child)
            continue
        if attributes is None:
            members = getattr(node, "exceptions", None)
            extra = [getattr(node, attr, None) for attr in _WRAPPER_ATTRIBUTES]
        else:
            members = attributes.get("exceptions")
            extra = [attributes.get(attr) for attr in _WRAPPER_ATTRIBUTES]
        if not isinstance(members, (tuple, list)):
            members = ()
        children = (node.__cause__, *members, *extra, node.__context__)
        for child in children:
            if isinstance(child, BaseException):
                key = _key(child)
                if key not in seen:
                    add(key)
                    append(child)
    del nodes[budget:], kinds[budget:]
    return nodes, kinds


def _by_identity(tp: type) -> bool:
    """Whether instances of ``tp`` hash and compare by identity (object's own ``__hash__`` and ``__eq__``)."""
    known = _identity_types.get(tp)
    if known is None:
        known = tp.__hash__ is object.__hash__ and tp.__eq__ is object.__eq__  # type: ignore[comparison-overlap]
        if len(_identity_types) < 4096:
            _identity_types[tp] = known
    return known


def _key(node: BaseException) -> object:
    """The node itself when its type hashes and compares by identity, else its ``id()``."""
    return node if _by_identity(type(node)) else id(node)


def _first_of_kind(kinds: list[int], kind: int) -> int | None:
    """The index of the first node of ``kind`` (bare or not), or ``None``."""
    found = [kinds.index(k) for k in (kind, -1 - kind) if k in kinds]
    return min(found) if found else None


def classify(error: BaseException, *, budget: int = NODE_BUDGET) -> Verdict:
    """Judge ``error``: session loss before the request ran, in flight, interrupted, or none.

    Terminates on any graph (cycles included) after at most ``budget`` nodes, without recursion.
    """
    best: Verdict | None = None
    marked: Verdict | None = None  # a mark anywhere outranks wording anywhere
    nodes, kinds = _nodes(error, budget)
    interrupted = _first_of_kind(kinds, _KIND_INTERRUPTED)
    if interrupted is not None:
        return Verdict(Loss.INTERRUPTED, "InterruptedError: the user asked to stop", nodes[interrupted])
    for node, kind in zip(nodes, kinds, strict=True):
        if kind < 0:  # bare: no mark, no code, no response; its type and words tell
            if kind == _BARE_GENERIC:  # the most common node: its words alone tell
                if best is None:
                    judged = _judge_words(node)
                    if judged is not None:
                        best = Verdict(judged[0], judged[1], node)
                continue
            if best is None and kind != -1 - _KIND_SKIP_SELF:
                judged = _judge(node, -1 - kind, bare=True)
                if judged is not None:
                    best = Verdict(judged[0], judged[1], node)
            continue
        if marked is None and isinstance(getattr(node, MARK_ATTRIBUTE, None), SessionLostMark):
            judged = _judge(node, kind)
            if judged is not None:
                marked = Verdict(judged[0], judged[1], node)
        elif best is None and kind != _KIND_SKIP_SELF:
            judged = _judge(node, kind)
            if judged is not None:
                best = Verdict(judged[0], judged[1], node)
    if marked is not None:
        return marked
    return best if best is not None else NOT_LOST


def server_unreachable(error: BaseException, *, budget: int = NODE_BUDGET) -> bool:
    """``True`` when a typed connection failure before sending (refused, connect timeout) stands in the
    error graph: the server is down or restarting, not answering with a verdict of its own."""
    return _first_of_kind(_nodes(error, budget)[1], _KIND_REFUSED) is not None


def is_interrupted(error: BaseException, *, budget: int = NODE_BUDGET) -> bool:
    """``True`` when an ``InterruptedError`` stands anywhere in the error graph (within the budget)."""
    return _first_of_kind(_nodes(error, budget)[1], _KIND_INTERRUPTED) is not None
