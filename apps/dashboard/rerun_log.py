"""``--rerun FILE.rrd``: the run logged for the Rerun viewer, which robotics users already know.

One recording per run, one entity tree per stream (``<stream>/...``), on two timelines: ``frame`` (the
frame's sequence number) and ``stream_time`` (its ``pts``):

* ``<stream>/image``: the frame the policy saw, JPEG-encoded (``EncodedImage``), with ``image/boxes``
  (``Boxes2D``, pixels, labelled) and ``image/points`` (``Points2D``) of the decision;
* ``<stream>/state``: 0 Silence, 1 Standby, 2 Response (``Scalars``), and ``<stream>/decisions``: a
  ``TextLog`` line per Standby and Response (the Response's text, its tool calls, any errors);
* ``<stream>/latency_ms`` and ``<stream>/model_ms`` (``Scalars``);
* ``<stream>/actions``: a ``TextLog`` line per executed tool call (level ``WARN`` when it failed).

The sink only puts references on a bounded queue (a full queue drops the item and counts it); a worker
thread encodes and logs, and the SDK writes the file from its own thread. Saving to a file needs no viewer:
open it later with ``rerun FILE.rrd``.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from pathlib import Path
from typing import Any

import cv2

from agentkit.apps.dashboard.state import stream_slug
from agentkit.errors import ConfigError
from agentkit.sinks import Sink
from agentkit.types import ActionResult, Decision, DecisionKind, Frame

log = logging.getLogger(__name__)

STATE_VALUE = {DecisionKind.SILENCE: 0.0, DecisionKind.STANDBY: 1.0, DecisionKind.RESPONSE: 2.0}
_STOP = object()


class RerunLog:
    """A ``.rrd`` file being written; :meth:`sink` gives each stream its sink. Close it after the run."""

    def __init__(self, path: str | Path, *, queue_size: int = 512, jpeg_quality: int = 80, max_width: int = 960):
        try:
            import rerun as rr
        except ImportError:
            raise ConfigError("--rerun needs the rerun-sdk package: pip install 'agentkit[dashboard]'") from None
        self.path = Path(path)
        if self.path.suffix != ".rrd":
            raise ConfigError(f"--rerun {path}: expected a file name ending in .rrd")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"--rerun {path}: cannot create its folder: {e.strerror or e}") from None
        self.rr = rr
        self.jpeg_quality = jpeg_quality
        self.max_width = max_width
        self.rec = rr.RecordingStream("agentkit", recording_id=str(uuid.uuid4()))
        self.rec.save(str(self.path))
        self.logged = 0
        self.dropped = 0  # items the worker could not keep up with
        self.failed = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._names: set[str] = set()
        self._thread = threading.Thread(target=self._work, name="rerun-log", daemon=True)
        self._thread.start()
        self._closed = False

    def sink(self, name: str) -> RerunSink:
        base = stream_slug(name)
        slug, k = base, 1
        while slug in self._names:
            k += 1
            slug = f"{base}-{k}"
        self._names.add(slug)
        return RerunSink(self, slug)

    def put(self, item: tuple[Any, ...]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                if item[0] == "decision":
                    self._log_decision(*item[1:])
                else:
                    self._log_action(*item[1:])
                self.logged += 1
            except Exception:  # one bad item must not end the log
                self.failed += 1
                log.exception("rerun: logging an item failed")

    def _log_decision(self, stream: str, d: Decision, frame: Frame) -> None:
        rr, rec = self.rr, self.rec
        rec.set_time("frame", sequence=max(0, d.seq))
        rec.set_time("stream_time", duration=max(0.0, d.pts))
        image = frame.image
        h, w = image.shape[:2]
        if w > self.max_width:
            h, w = int(round(h * self.max_width / w)), self.max_width
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), self.jpeg_quality]
        )
        if ok:
            rec.log(f"{stream}/image", rr.EncodedImage(contents=buf.tobytes(), media_type="image/jpeg"))
        if d.boxes:
            rec.log(
                f"{stream}/image/boxes",
                rr.Boxes2D(
                    array=[[b.x1 * w, b.y1 * h, b.x2 * w, b.y2 * h] for b in d.boxes],
                    array_format=rr.Box2DFormat.XYXY,
                    labels=[b.label or "" for b in d.boxes],
                ),
            )
        if d.points:
            rec.log(f"{stream}/image/points", rr.Points2D([[p.x * w, p.y * h] for p in d.points], radii=4.0))
        rec.log(f"{stream}/state", rr.Scalars(STATE_VALUE[d.kind]))
        if d.latency_ms is not None:
            rec.log(f"{stream}/latency_ms", rr.Scalars(d.latency_ms))
        if d.model_ms is not None:
            rec.log(f"{stream}/model_ms", rr.Scalars(d.model_ms))
        if d.kind is not DecisionKind.SILENCE or d.errors:
            parts = [d.kind.value.upper()]
            if d.text:
                parts.append(d.text)
            parts += [f"{c.name}({c.to_dict()['arguments']})" for c in d.tool_calls]
            parts += [f"error: {e}" for e in d.errors]
            level = rr.TextLogLevel.WARN if d.errors else rr.TextLogLevel.INFO
            rec.log(f"{stream}/decisions", rr.TextLog(" | ".join(parts), level=level))

    def _log_action(self, stream: str, r: ActionResult) -> None:
        rr, rec = self.rr, self.rec
        rec.set_time("frame", sequence=max(0, r.seq))
        outcome = "ok" if r.ok else f"error: {r.error}"
        text = f"{r.call.name}({r.call.to_dict()['arguments']}) -> {outcome} ({r.duration_ms:.0f} ms)"
        rec.log(f"{stream}/actions", rr.TextLog(text, level=rr.TextLogLevel.INFO if r.ok else rr.TextLogLevel.WARN))

    def close(self, timeout_s: float = 30.0) -> None:
        """Log what is queued, then write and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)  # blocks only while the queue is full, i.e. while the worker works
        self._thread.join(timeout_s)
        try:
            self.rec.flush(timeout_sec=timeout_s)
        finally:
            self.rec.disconnect()


class RerunSink(Sink):
    """One stream of a :class:`RerunLog`: hands references to its worker thread, nothing else."""

    def __init__(self, log_: RerunLog, stream: str) -> None:
        self.log = log_
        self.stream = stream

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self.log.put(("decision", self.stream, decision, frame))

    def on_action(self, result: ActionResult) -> None:
        self.log.put(("action", self.stream, result))
