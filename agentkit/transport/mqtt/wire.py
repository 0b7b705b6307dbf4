"""The wire format and topic layout of the MQTT robot bridge (JSON + JPEG/PNG, never pickle).

Why a module of its own: the robot node and the agent side (source and tool executor) live in different
processes, possibly on different machines; both must agree on topics and encodings byte for byte, and a
malformed message from the network must become a clear ``ValueError``, never code execution.

Topics, under ``agentkit/<name>/``:

========  =========  ====  =====================================================================
topic     direction  QoS   payload
========  =========  ====  =====================================================================
frame     node->     0     ``u32 header length`` + JSON header + JPEG (RGB camera)
depth     node->     0     ``u32 header length`` + JSON header + 16-bit PNG, millimetres
state     node->     0     JSON: privileged scene state (for evaluation; policies must not use it)
status    node->     1     JSON, retained: ``{"online": true, ...}``; the broker's LWT sets false
action    ->node     1     JSON: ``{"id", "t", "frame_seq", "frame_t", "call": {"name", "arguments"}}``
control   ->node     1     JSON: ``{"id", "t", "cmd": "reset" | "cancel" | "state", "seed"?}``
result    node->     1     JSON: ``{"id", "ok", "output", "error", "duration_ms", ...}``
========  =========  ====  =====================================================================

Headers carry ``session`` (random per node start), ``seq`` (per session, increasing) and ``t`` (the
node's ``time.time()``): receivers drop anything older than what they already hold.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

PREFIX = "agentkit"
TOPICS = ("frame", "depth", "state", "status", "action", "control", "result")
MAX_HEADER = 64 * 1024
_SPEC = re.compile(r"^mqtt://(?P<host>[^:/]+)(?::(?P<port>\d+))?(?:/(?P<name>[A-Za-z0-9_-]+))?/?$")


@dataclass(frozen=True)
class BrokerSpec:
    """``mqtt://host:port/name`` parsed."""

    host: str
    port: int
    name: str

    def topic(self, kind: str) -> str:
        if kind not in TOPICS:
            raise ValueError(f"unknown topic kind {kind!r}")
        return f"{PREFIX}/{self.name}/{kind}"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}/{self.name}"


def parse_spec(spec: str, name: str | None = None) -> BrokerSpec:
    """Parse ``mqtt://host[:port][/name]``; ``name`` fills in a missing robot name.

    Raises:
        ValueError: with the expected form, for anything else.
    """
    m = _SPEC.match(spec.strip())
    if not m:
        raise ValueError(f"bad MQTT address {spec!r}: expected mqtt://host:port/name")
    robot = m.group("name") or name
    if not robot:
        raise ValueError(f"MQTT address {spec!r} names no robot: expected mqtt://host:port/name")
    return BrokerSpec(m.group("host"), int(m.group("port") or 1883), robot)


def pack(header: dict[str, Any], body: bytes) -> bytes:
    h = json.dumps(header, separators=(",", ":")).encode()
    return struct.pack(">I", len(h)) + h + body


def unpack(payload: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a binary message into its JSON header and body; ``ValueError`` if malformed."""
    if len(payload) < 4:
        raise ValueError("message too short for a header")
    (n,) = struct.unpack(">I", payload[:4])
    if n > MAX_HEADER or 4 + n > len(payload):
        raise ValueError(f"bad header length {n}")
    header = json.loads(payload[4 : 4 + n])
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, payload[4 + n :]


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("not a JPEG image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def encode_depth(depth: np.ndarray, max_m: float = 65.0) -> bytes:
    """Depth in metres -> 16-bit PNG of millimetres (0 = no reading, beyond ``max_m``)."""
    mm = np.where(np.isfinite(depth) & (depth < max_m), depth * 1000.0, 0.0)
    ok, buf = cv2.imencode(".png", np.clip(mm, 0, 65535).astype(np.uint16))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def decode_depth(data: bytes) -> np.ndarray:
    """16-bit PNG of millimetres -> float32 metres (NaN where there was no reading)."""
    mm = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if mm is None or mm.dtype != np.uint16 or mm.ndim != 2:
        raise ValueError("not a 16-bit depth PNG")
    m = mm.astype(np.float32) / 1000.0
    m[mm == 0] = np.nan
    return m


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=_default).encode()


def loads(payload: bytes) -> dict[str, Any]:
    """Parse a JSON object message; ``ValueError`` for anything else."""
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError("message is not a JSON object")
    return obj


def _default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


class Freshness:
    """Drops stale and out-of-order messages: per-session increasing ``seq`` and a maximum age.

    A new ``session`` (the node restarted) is accepted and resets the sequence.
    """

    def __init__(self, max_age_s: float | None = 2.0) -> None:
        self.max_age_s = max_age_s
        self.session: str | None = None
        self.seq = -1
        self.dropped_stale = 0
        self.dropped_old = 0

    def admit(self, header: dict[str, Any], now: float) -> bool:
        session, seq, t = header.get("session"), int(header.get("seq", -1)), float(header.get("t", 0.0))
        if self.max_age_s is not None and now - t > self.max_age_s:
            self.dropped_stale += 1
            return False
        if session == self.session and seq <= self.seq:
            self.dropped_old += 1
            return False
        self.session, self.seq = session, seq
        return True
