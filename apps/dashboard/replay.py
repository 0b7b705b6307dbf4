"""A finished run for the dashboard: a recording folder read once, its frames decoded on demand.

``agentkit dashboard DIR`` shows a recording the way the live page shows a run, with a timeline to scrub.
The folder is what :class:`~agentkit.recorder.Recorder` writes (``frames.mp4``, ``decisions.jsonl``,
``actions.jsonl``, ``meta.json``; frame *i* answers decision *i*), or a narration folder without
``frames.mp4``, whose ``annotated.mp4`` holds the same frames already drawn. Decisions and actions are
read once (small); frames are decoded with PyAV only when asked for: an index of presentation times is
built from the packets without decoding, a request close after the last one decodes forward, any other
seeks to the key frame before it. Drawn JPEGs are kept in a small LRU cache, so scrubbing back and forth
costs nothing the second time.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from agentkit.apps.dashboard.state import annotated_jpeg, frame_header, stream_slug
from agentkit.errors import ConfigError
from agentkit.sinks import read_jsonl
from agentkit.types import ActionResult, Decision, DecisionKind, ToolCall

FORWARD_DECODE = 48  # decode forward rather than seek when the frame asked for is at most this far ahead


class FrameIndex:
    """Random access to the frames of a video by index (presentation order), decoding as little as possible.

    Not thread-safe by itself: :class:`ReplayStream` holds a lock around it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._container: Any = av.open(str(path))
        except (av.error.FFmpegError, OSError) as e:
            raise ConfigError(f"cannot open {path}: {str(e).splitlines()[0]}") from None
        if not self._container.streams.video:
            raise ConfigError(f"no video stream in {path}")
        self._stream = self._container.streams.video[0]
        self.pts: list[int] = sorted(p.pts for p in self._container.demux(self._stream) if p.pts is not None)
        self._iter: Iterator[Any] | None = None
        self._next = 0  # index of the frame the iterator yields next
        self.seeks = 0
        self.decoded = 0

    def __len__(self) -> int:
        return len(self.pts)

    def get(self, i: int) -> np.ndarray:
        """Frame ``i`` as RGB ``uint8``.

        Raises:
            IndexError: ``i`` is outside the video.
        """
        if not 0 <= i < len(self.pts):
            raise IndexError(f"frame {i} outside 0..{len(self.pts) - 1}")
        if self._iter is None or not self._next <= i <= self._next + FORWARD_DECODE:
            self._container.seek(self.pts[i], stream=self._stream, backward=True, any_frame=False)
            self._iter = iter(self._container.decode(self._stream))
            self._next = -1  # unknown until the first frame comes out
            self.seeks += 1
        for vf in self._iter:
            self.decoded += 1
            k = bisect.bisect_left(self.pts, vf.pts) if vf.pts is not None else self._next
            self._next = k + 1
            if k >= i:
                if k != i:  # a timestamp the packet index did not have: give the nearest frame
                    self._iter = None
                return vf.to_ndarray(format="rgb24")
        self._iter = None
        raise IndexError(f"frame {i} could not be decoded from {self.path}")

    def close(self) -> None:
        self._container.close()


def series_by_second(decisions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One plot point per second of stream time: decisions, frames the source made, latency p50/p95, drops."""
    out: list[dict[str, Any]] = []
    by_second: dict[int, list[dict[str, Any]]] = {}
    for d in decisions:
        by_second.setdefault(int(d.get("pts", 0.0)), []).append(d)
    dropped, prev_seq = 0, None
    if not by_second:
        return out
    for second in range(min(by_second), max(by_second) + 1):
        ds = by_second.get(second, [])
        lat = np.asarray([d["latency_ms"] for d in ds if d.get("latency_ms") is not None], dtype=np.float64)
        seqs = [int(d.get("seq", -1)) for d in ds]
        for s in seqs:
            if prev_seq is not None and s > prev_seq + 1:
                dropped += s - prev_seq - 1
            prev_seq = s if prev_seq is None else max(prev_seq, s)
        out.append(
            {
                "t": second,
                "fps": len(ds),
                "in_fps": None,
                "p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                "p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
                "dropped": dropped,
            }
        )
    return out


class ReplayStream:
    """One recording folder, served read-only."""

    def __init__(self, folder: str | Path, name: str | None = None, *, jpeg_width: int = 960, cache: int = 64) -> None:
        self.dir = Path(folder)
        if not self.dir.is_dir():
            raise ConfigError(f"not a folder: {self.dir}")
        if not (self.dir / "decisions.jsonl").exists():
            raise ConfigError(f"{self.dir} is not a recording: no decisions.jsonl")
        self.name = stream_slug(name or self.dir.resolve().name)
        self.records = read_jsonl(self.dir / "decisions.jsonl")
        self.decisions = [Decision.from_dict(r) for r in self.records]
        actions_path = self.dir / "actions.jsonl"
        self.actions = read_jsonl(actions_path) if actions_path.exists() else []
        self.meta = _read_json(self.dir / "meta.json")
        self.metrics = _read_json(self.dir / "metrics.json")
        self.hold_response = self.meta.get("app") == "robot"
        self.point_labels: tuple[str, ...] = ("block", "target") if self.hold_response else ()
        self.jpeg_width = jpeg_width
        self.video: Path | None
        if (self.dir / "frames.mp4").exists():
            self.video, self.annotate = self.dir / "frames.mp4", True
        elif (self.dir / "annotated.mp4").exists():  # a narration without --record: the frames are drawn already
            self.video, self.annotate = self.dir / "annotated.mp4", False
        else:
            self.video, self.annotate = None, False
        self._index = FrameIndex(self.video) if self.video is not None else None
        self.frames = min(len(self._index), len(self.decisions)) if self._index is not None else 0
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, bool], tuple[bytes, dict[str, Any]]] = OrderedDict()
        self._cache_size = cache
        # for drawing frame i: the latest Response at or before it, and the action results up to its frame
        self._last_response: list[int | None] = []
        last = None
        for i, d in enumerate(self.decisions):
            if d.kind is DecisionKind.RESPONSE:
                last = i
            self._last_response.append(last)
        self._action_seqs = [int(a.get("seq", -1)) for a in self.actions]

    def timeline(self) -> dict[str, Any]:
        """Everything but the frames: every decision (with its index ``i``), action, plot point and count."""
        decisions = [dict(r, i=i) for i, r in enumerate(self.records)]
        series = series_by_second(self.records)
        lat = np.asarray([r["latency_ms"] for r in self.records if r.get("latency_ms") is not None], dtype=np.float64)
        kinds = [r.get("kind") for r in self.records]
        counters = {
            "processed": len(self.records),
            "responses": kinds.count("response"),
            "standbys": kinds.count("standby"),
            "gated": sum(1 for r in self.records if r.get("gated")),
            "errors": sum(1 for r in self.records if r.get("errors")),
            "dropped": series[-1]["dropped"] if series else 0,
            "actions": len(self.actions),
            "action_errors": sum(1 for a in self.actions if not a.get("ok", True)),
            "fps": round(len(self.records) / span, 2) if (span := _span(self.records)) > 0 else None,
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
                "p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
            },
        }
        return {
            "stream": self.name,
            "status": "recording",
            "folder": str(self.dir),
            "frames": self.frames,
            "annotated_video": not self.annotate and self.video is not None,
            "meta": self.meta,
            "metrics": self.metrics,
            "counters": counters,
            "decisions": decisions,
            "actions": self.actions,
            "series": series,
        }

    def frame(self, i: int, annotated: bool = True) -> tuple[bytes, dict[str, Any]]:
        """Frame ``i`` as JPEG (drawn with decision ``i`` unless ``annotated`` is false) and its header.

        Raises:
            IndexError: no such frame (or the recording has no video).
        """
        if self._index is None:
            raise IndexError(f"{self.dir} has no frames.mp4 or annotated.mp4")
        if not 0 <= i < self.frames:
            raise IndexError(f"frame {i} outside 0..{self.frames - 1}")
        draw = annotated and self.annotate
        key = (i, draw)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
            image = self._index.get(i)
        d = self.decisions[i]
        lr = self._last_response[i]
        upto = bisect.bisect_right(self._action_seqs, d.seq)
        recent = [_action(a) for a in self.actions[max(0, upto - 2) : upto]]
        jpeg, (w, h) = annotated_jpeg(
            image,
            d,
            self.decisions[lr] if lr is not None else None,
            recent,
            hold_response=self.hold_response,
            point_labels=self.point_labels,
            max_width=self.jpeg_width,
            quality=80,
            annotate=draw,
        )
        header = frame_header(self.name, d, w, h) | {"i": i, "annotated": draw or not self.annotate}
        with self._lock:
            self._cache[key] = (jpeg, header)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return jpeg, header

    def close(self) -> None:
        if self._index is not None:
            self._index.close()


class ReplayHub:
    """The recordings ``agentkit dashboard DIR...`` serves, side by side."""

    mode = "replay"

    def __init__(self, folders: list[str | Path], *, title: str = "") -> None:
        self.streams: dict[str, ReplayStream] = {}
        for folder in folders:
            stream = ReplayStream(folder)
            name, k = stream.name, 1
            while name in self.streams:
                k += 1
                name = f"{stream.name}-{k}"
            stream.name = name
            self.streams[name] = stream
        self.title = title or ", ".join(self.streams)

    def close(self) -> None:
        for s in self.streams.values():
            s.close()


def _action(a: dict[str, Any]) -> ActionResult:
    call = a.get("call") or {}
    return ActionResult(
        ToolCall(str(call.get("name", "?")), dict(call.get("arguments") or {})), bool(a.get("ok")), error=a.get("error")
    )


def _span(records: list[dict[str, Any]]) -> float:
    """Seconds of stream time the decisions cover (one frame interval included)."""
    if len(records) < 2:
        return 0.0
    first, last = float(records[0].get("pts", 0.0)), float(records[-1].get("pts", 0.0))
    return (last - first) * len(records) / (len(records) - 1)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
