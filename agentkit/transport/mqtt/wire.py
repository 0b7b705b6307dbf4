"""The wire format and topic layout of the MQTT robot bridge (JSON + JPEG/PNG, never pickle).

Why a module of its own: the robot node and the agent side (source and tool executor) live in different
processes, possibly on different machines; both must agree on topics and encodings byte for byte, and a
message from the network is untrusted input. Every message kind has a pydantic model here; a payload is
checked for size *before* it is parsed, JSON is parsed without NaN/Infinity and without unbounded
nesting, and a malformed message becomes a :class:`WireError` (a ``ValueError``) with one short line that
never echoes the payload — never an exception that ends a task, and never code execution.

Topics, under ``agentkit/<name>/`` (``name``: 1-64 of ``A-Z a-z 0-9 _ -``, so it can never be an MQTT
wildcard or a second topic level):

========  =========  ====  ================================  ====================================
topic     direction  QoS   payload                           model
========  =========  ====  ================================  ====================================
frame     node->     0     ``u32`` + JSON header + JPEG      :class:`FrameHeader`
depth     node->     0     ``u32`` + JSON header + PNG16 mm  :class:`FrameHeader` (+ unit, format)
state     node->     0     JSON privileged scene state       :class:`StateMsg`
status    node->     1     JSON, retained; LWT says offline  :class:`StatusMsg`
action    ->node     1     JSON tool call                    :class:`ActionMsg`
control   ->node     1     JSON reset / cancel / state       :class:`ControlMsg`
result    node->     1     JSON answer to action / control   :class:`ResultMsg`
========  =========  ====  ================================  ====================================

``extra`` policy, chosen per direction: what the node *executes* (action, control) forbids unknown
fields — a typo such as ``"sed": 3`` must be an error, not a reset with a random seed; what the agent
*reads* (frame header, state, status, result) ignores unknown fields, so a newer node can add one
without breaking older agents. All models are strict (``"1"`` is not a number, ``true`` is not an
integer) and reject non-finite floats.

Headers carry ``session`` (random per node start), ``seq`` (per session, increasing) and ``t`` (the
sender's ``time.time()``): receivers drop anything older than what they already hold, older than a
maximum age, or more than :data:`MAX_SKEW_S` in the future.
"""

from __future__ import annotations

import json
import logging
import math
import re
import struct
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypeVar

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from agentkit.types import ActorStatus

PREFIX = "agentkit"
TOPICS = ("frame", "depth", "state", "status", "action", "control", "result")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_HEADER = 64 * 1024
MAX_FRAME_BYTES = 4 * 1024 * 1024  # a JPEG/PNG frame with its header; 320x240 JPEG q90 is ~25 KB
MAX_JSON_BYTES = 64 * 1024  # action, control, result, status, state
MAX_PIXELS = 4096 * 4096  # checked from the image's own header before it is decoded (decompression bombs)
MAX_SKEW_S = 5.0  # how far in the future a timestamp may be (clock skew between machines)
_SPEC = re.compile(r"^(?P<scheme>mqtts?)://(?P<host>[^:/@\s]+)(?::(?P<port>\d{1,5}))?(?:/(?P<name>.*?))?/?$")


class WireError(ValueError):
    """A message rejected at the wire; ``reason`` is a short key for counting (``too_large``, ``invalid``...)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def check_name(name: str) -> str:
    """A robot name usable as one topic level; ``ValueError`` naming the value otherwise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValueError(f"bad robot name {name!r}: expected 1-64 characters of A-Z a-z 0-9 _ -")
    return name


@dataclass(frozen=True)
class BrokerSpec:
    """``mqtt[s]://host:port/name`` parsed; ``tls`` for ``mqtts://``. The name is validated."""

    host: str
    port: int
    name: str
    tls: bool = False

    def __post_init__(self) -> None:
        check_name(self.name)
        if not 0 < self.port < 65536:
            raise ValueError(f"bad MQTT port {self.port}: expected 1-65535")

    def topic(self, kind: str) -> str:
        if kind not in TOPICS:
            raise ValueError(f"unknown topic kind {kind!r}")
        return f"{PREFIX}/{self.name}/{kind}"

    def with_name(self, name: str) -> BrokerSpec:
        return replace(self, name=name)

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}/{self.name}"


def parse_spec(spec: str, name: str | None = None) -> BrokerSpec:
    """Parse ``mqtt://host[:port][/name]`` (port 1883) or ``mqtts://...`` (TLS, port 8883).

    ``name`` fills in a missing robot name.

    Raises:
        ValueError: with the expected form, for anything else (including a name that is not 1-64 of
            ``A-Z a-z 0-9 _ -``: ``a/#`` would subscribe to other robots' topics).
    """
    m = _SPEC.match(spec.strip())
    if not m:
        raise ValueError(f"bad MQTT address {spec!r}: expected mqtt://host:port/name or mqtts://host:port/name")
    robot = m.group("name") or name
    if not robot:
        raise ValueError(f"MQTT address {spec!r} names no robot: expected mqtt://host:port/name")
    tls = m.group("scheme") == "mqtts"
    return BrokerSpec(m.group("host"), int(m.group("port") or (8883 if tls else 1883)), check_name(robot), tls)


# -- message models ------------------------------------------------------------------------------------------
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Session = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
Time = Annotated[float, Field(ge=0.0)]  # seconds since the epoch, finite (the models forbid inf/nan)
Pixels = Annotated[int, Field(ge=1, le=16384)]
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class _Command(BaseModel):
    """agent -> node: executed, so closed (unknown fields are errors)."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class _Report(BaseModel):
    """node -> agent: read, so open to fields a newer node adds (ignored)."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


class CallMsg(_Command):
    name: ToolName
    arguments: dict[str, Any] = Field(default_factory=dict)


class ActionMsg(_Command):
    """``{"id", "t", "call": {"name", "arguments"}, "frame_seq"?, "frame_t"?}``."""

    id: Id
    t: Time
    call: CallMsg
    frame_seq: Seq | None = None  # the frame the call was decided on
    frame_t: Time | None = None  # that frame's publish time (node clock), for the round-trip figure


class ControlMsg(_Command):
    """``{"id", "t", "cmd": "reset" (+ "seed") | "cancel" (+ "ref": an action id, else all) | "state"}``."""

    id: Id
    t: Time
    cmd: Literal["reset", "cancel", "state"]
    seed: Seed | None = None
    ref: Id | None = None

    @model_validator(mode="after")
    def _fields_fit_cmd(self) -> ControlMsg:
        if self.seed is not None and self.cmd != "reset":
            raise ValueError(f"'seed' is only for reset, not {self.cmd}")
        if self.ref is not None and self.cmd != "cancel":
            raise ValueError(f"'ref' is only for cancel, not {self.cmd}")
        return self


class ResultMsg(_Report):
    """``{"id", "ok", "t", "output", "error", "duration_ms"?, "frame_to_action_ms"?}``."""

    id: Id
    ok: bool
    t: Time
    output: Any = None
    error: Annotated[str, StringConstraints(max_length=4096)] | None = None
    duration_ms: Annotated[float, Field(ge=0.0)] | None = None
    frame_to_action_ms: float | None = None


class StatusMsg(_Report):
    """Retained ``{"online", "session", "t", "fps"?}``; the node's last will is the same with ``online: false``."""

    online: bool
    session: Session
    t: Time
    fps: Annotated[float, Field(gt=0.0, le=1000.0)] | None = None


class Stamp(_Report):
    """What freshness is judged on: which node run (``session``), which message of it (``seq``), when (``t``)."""

    session: Session
    seq: Seq
    t: Time


class FrameHeader(Stamp):
    """The JSON header of a ``frame`` (and ``depth``) message: the stamp, the size, the actor's status."""

    w: Pixels
    h: Pixels
    episode: Count
    busy: bool
    actions: Count
    steps: Count

    def status(self) -> ActorStatus:
        return ActorStatus(self.episode, self.busy, self.actions, self.steps)


class StateMsg(Stamp):
    """The privileged scene state: the stamp plus whatever the actor reports (kept: ``extra="allow"``)."""

    model_config = ConfigDict(extra="allow")


M = TypeVar("M", bound=BaseModel)


def describe(e: ValidationError, limit: int = 3) -> str:
    """``field: problem; ...`` for the first ``limit`` errors, without the offending input."""
    errs = e.errors(include_url=False, include_input=False, include_context=False)
    parts = [f"{'.'.join(str(x) for x in err['loc']) or 'message'}: {err['msg']}" for err in errs[:limit]]
    if len(errs) > limit:
        parts.append(f"and {len(errs) - limit} more")
    return "; ".join(parts)


def parse(model: type[M], obj: Any) -> M:
    """Validate a decoded message; :class:`WireError` (``invalid``) naming the fields otherwise."""
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise WireError("invalid", f"invalid {model.__name__}: {describe(e)}") from None


def usable_id(obj: Any) -> str | None:
    """The ``id`` of a decoded message if it is one a result can be addressed to, else ``None``."""
    msg_id = obj.get("id") if isinstance(obj, dict) else None
    return msg_id if isinstance(msg_id, str) and _ID.fullmatch(msg_id) else None


_HEAD_ID = re.compile(rb'^\s*\{\s*"id"\s*:\s*"([A-Za-z0-9_.:-]{1,64})"')


def sniff_id(payload: bytes) -> str | None:
    """The id of a message too large to parse, if it is the first key (as the link writes it)."""
    m = _HEAD_ID.match(payload[:200])
    return m.group(1).decode() if m else None


def check_time(t: float, now: float, max_age_s: float | None, max_skew_s: float | None = MAX_SKEW_S) -> None:
    """``WireError`` (``stale`` / ``future``) unless ``now - max_age_s <= t <= now + max_skew_s``."""
    if max_skew_s is not None and t - now > max_skew_s:
        raise WireError(
            "future", f"message from the future: t is {t - now:.3g} s ahead (clock skew tolerance {max_skew_s:g} s)"
        )
    if max_age_s is not None and now - t > max_age_s:
        raise WireError("stale", f"stale message: sent {now - t:.1f} s ago (ttl {max_age_s:g} s)")


# -- binary framing and images ---------------------------------------------------------------------------
def check_size(payload: bytes, limit: int, what: str) -> None:
    if len(payload) > limit:
        raise WireError("too_large", f"{what} too large: {len(payload)} bytes (max {limit})")


def pack(header: dict[str, Any], body: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    return struct.pack(">I", len(h)) + h + body


def unpack(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a binary message into its JSON header and body; ``WireError`` if malformed."""
    if len(payload) < 4:
        raise WireError("invalid", "message too short for a header")
    (n,) = struct.unpack(">I", payload[:4])
    if n > MAX_HEADER or 4 + n > len(payload):
        raise WireError("invalid", f"bad header length {n}")
    return loads(payload[4 : 4 + n], MAX_HEADER), payload[4 + n :]


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` read from a PNG or JPEG header without decoding; ``WireError`` if neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 <= len(data):
            if data[i] != 0xFF:
                break
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + length
    raise WireError("invalid", "not a JPEG or PNG image (no size in its header)")


def _check_pixels(data: bytes, expect: tuple[int, int] | None) -> None:
    w, h = image_size(data)
    if w * h > MAX_PIXELS or w == 0 or h == 0:
        raise WireError("too_large", f"image of {w}x{h} pixels (max {MAX_PIXELS})")
    if expect is not None and (w, h) != expect:
        raise WireError("invalid", f"image is {w}x{h}, header says {expect[0]}x{expect[1]}")


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """JPEG -> RGB; the pixel count (and ``size`` = ``(w, h)`` if given) is checked before decoding."""
    _check_pixels(data, size)
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise WireError("invalid", "not a JPEG image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_depth(depth: np.ndarray, max_m: float = 65.0) -> bytes:
    """Depth in metres -> 16-bit PNG of millimetres (0 = no reading, beyond ``max_m``)."""
    mm = np.where(np.isfinite(depth) & (depth < max_m), depth * 1000.0, 0.0)
    ok, buf = cv2.imencode(".png", np.clip(mm, 0, 65535).astype(np.uint16))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def decode_depth(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """16-bit PNG of millimetres -> float32 metres (NaN where there was no reading)."""
    _check_pixels(data, size)
    mm = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if mm is None or mm.dtype != np.uint16 or mm.ndim != 2:
        raise WireError("invalid", "not a 16-bit depth PNG")
    m = mm.astype(np.float32) / 1000.0
    m[mm == 0] = np.nan
    return m


# -- JSON --------------------------------------------------------------------------------------------------
def dumps(obj: dict[str, Any]) -> bytes:
    """Compact JSON; ``ValueError`` for NaN/Infinity (the receiver would reject them)."""
    return json.dumps(obj, separators=(",", ":"), default=_default, allow_nan=False).encode()


def _no_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf
        raise ValueError(f"non-finite number {text[:20]}")
    return value


def loads(payload: bytes, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """Parse a JSON object message of at most ``max_bytes``; ``WireError`` for anything else.

    The size is checked before parsing; ``NaN``, ``Infinity`` and overflowing numbers are refused anywhere
    in the message, as is nesting deep enough to exhaust the parser's recursion.
    """
    check_size(payload, max_bytes, "message")
    try:
        obj = json.loads(payload, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise WireError("invalid", "not JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:  # JSONDecodeError, non-finite, int too long
        raise WireError("invalid", f"not JSON: {str(e)[:120]}") from None
    if not isinstance(obj, dict):
        raise WireError("invalid", "message is not a JSON object")
    return obj


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


# -- freshness and rejections ----------------------------------------------------------------------------
class Freshness:
    """Drops stale, future and out-of-order messages: per-session increasing ``seq`` and a window on ``t``.

    A new ``session`` (the node restarted) is accepted and resets the sequence. Within a session, a
    ``seq`` that does not increase is dropped unless its ``t`` is more than ``resync_s`` newer than the
    last one admitted: the sequence was reset or hijacked (a forged frame with a huge ``seq``), and time
    says this one is new — so one bad header cannot stall the stream for good.
    """

    def __init__(
        self, max_age_s: float | None = 2.0, max_skew_s: float | None = MAX_SKEW_S, resync_s: float = 1.0
    ) -> None:
        self.max_age_s = max_age_s
        self.max_skew_s = max_skew_s
        self.resync_s = resync_s
        self.session: str | None = None
        self.seq = -1
        self.t = 0.0
        self.dropped_stale = 0
        self.dropped_future = 0
        self.dropped_old = 0
        self.resyncs = 0

    def admit(self, stamp: Stamp | Mapping[str, Any], now: float) -> bool:
        """Whether to take this message (and remember it as the newest). ``WireError`` for a bad stamp."""
        s = stamp if isinstance(stamp, Stamp) else parse(Stamp, dict(stamp))
        try:
            check_time(s.t, now, self.max_age_s, self.max_skew_s)
        except WireError as e:
            if e.reason == "future":
                self.dropped_future += 1
            else:
                self.dropped_stale += 1
            return False
        if s.session == self.session and s.seq <= self.seq:
            if s.t <= self.t + self.resync_s:
                self.dropped_old += 1
                return False
            self.resyncs += 1
        self.session, self.seq, self.t = s.session, s.seq, s.t
        return True


class Rejections:
    """Counts rejected messages by reason and logs them, at most one line per reason every ``every_s``.

    A flood of bad messages must neither fill the log nor go unnoticed: the first of each kind is
    logged, the rest are counted and reported with the next line of that kind.
    """

    def __init__(self, logger: logging.Logger, who: str, every_s: float = 5.0) -> None:
        self.log, self.who, self.every_s = logger, who, every_s
        self.counts: Counter[str] = Counter()
        self._last: dict[str, float] = {}
        self._quiet: Counter[str] = Counter()

    def __call__(self, reason: str, detail: str, *, exc_info: BaseException | None = None) -> None:
        self.counts[reason] += 1
        now = time.monotonic()
        if now - self._last.get(reason, -math.inf) < self.every_s:
            self._quiet[reason] += 1
            return
        quiet = self._quiet.pop(reason, 0)
        self._last[reason] = now
        more = f" (and {quiet} more since the last line)" if quiet else ""
        self.log.warning("%s: rejected (%s): %s%s", self.who, reason, detail, more, exc_info=exc_info)

    @property
    def total(self) -> int:
        return sum(self.counts.values())
