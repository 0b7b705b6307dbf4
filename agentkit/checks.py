"""Contract checks for policies, sources and sinks, in the spirit of Gymnasium's ``check_env``.

Why: the loop relies on a few promises that no type checker sees - a policy answers every ordinary frame
with a valid :class:`~agentkit.types.Decision` instead of raising, a source's ``seq`` only grows, a sink's
``close`` leaves readable files. A component that breaks one of them fails far from its cause (a torn
subtitle file after a week-long run, a latency spike from an exception). Each check here drives one real
component the way :class:`~agentkit.loop.StreamLoop` does and raises :class:`ContractError`, whose message
names the component and what is wrong, at the first broken promise.

Example:
    >>> from agentkit.testing import ScriptedPolicy
    >>> decisions = check_policy(ScriptedPolicy(), sizes=((8, 8), (48, 64)))
    >>> len(decisions)
    6
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import time
import wave
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from agentkit.errors import ConfigError, SourceError
from agentkit.policy import Policy, PolicyConfig
from agentkit.sinks import Sink
from agentkit.sources import Source
from agentkit.types import ActionResult, Box, Decision, DecisionKind, Frame, Point, ToolCall

DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((8, 8), (240, 320), (1080, 1920))
"""Frame sizes (height, width) :func:`check_policy` streams: tiny, ordinary and full HD."""

UNKNOWN_FIELD = "no_such_field_for_check"
"""The config field :func:`check_policy` expects every policy's ``Config`` to reject."""


class ContractError(AssertionError):
    """A component breaks the contract the loop relies on; the message names the component and the fault."""


def _name(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _fail(who: Any, what: str) -> ContractError:
    return ContractError(f"{_name(who)}: {what}")


def _exc(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


# ---------------------------------------------------------------------------------------------- decisions
def _unit(v: Any) -> bool:
    return isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0


def check_decision(decision: Any, who: Any = "decision", where: str = "") -> Decision:
    """Check one decision's shape: a valid kind, normalized points and boxes, JSON-able, typed fields.

    Raises:
        ContractError: naming the field and the value that is wrong.
    """
    at = f" ({where})" if where else ""
    if not isinstance(decision, Decision):
        raise _fail(who, f"returned {type(decision).__name__} {decision!r:.80}, expected a Decision{at}")
    if not isinstance(decision.kind, DecisionKind):
        raise _fail(who, f"Decision.kind={decision.kind!r} is not a DecisionKind{at}")
    if decision.text is not None and not isinstance(decision.text, str):
        raise _fail(who, f"Decision.text must be str or None, got {type(decision.text).__name__}{at}")
    for attr, cls in (("points", Point), ("boxes", Box), ("tool_calls", ToolCall), ("errors", str)):
        items = getattr(decision, attr)
        if not isinstance(items, list):
            raise _fail(who, f"Decision.{attr} must be a list, got {type(items).__name__}{at}")
        for item in items:
            if not isinstance(item, cls):
                raise _fail(who, f"Decision.{attr} holds {item!r:.80}, expected {cls.__name__}{at}")
    for p in decision.points:
        if not (_unit(p.x) and _unit(p.y)):
            raise _fail(who, f"point {p!r} is not normalized to [0, 1]{at}")
    for b in decision.boxes:
        if not all(_unit(getattr(b, k)) for k in ("x1", "y1", "x2", "y2")) or b.x1 > b.x2 or b.y1 > b.y2:
            raise _fail(who, f"box {b!r} is not a normalized box with ordered corners{at}")
    for c in decision.tool_calls:
        if not c.name or not isinstance(c.name, str) or not isinstance(c.arguments, dict):
            raise _fail(who, f"tool call {c!r:.120} needs a name and a dict of arguments{at}")
    if decision.model_ms is not None and not (
        isinstance(decision.model_ms, (int, float)) and math.isfinite(decision.model_ms) and decision.model_ms >= 0
    ):
        raise _fail(who, f"Decision.model_ms={decision.model_ms!r} must be None or a finite number >= 0{at}")
    if not isinstance(decision.gated, bool) or not isinstance(decision.meta, dict):
        raise _fail(who, f"Decision.gated must be a bool and Decision.meta a dict{at}")
    try:
        json.dumps(decision.to_dict())
    except (TypeError, ValueError) as e:
        raise _fail(who, f"decision is not JSON-serializable (sinks write it): {_exc(e)}{at}") from None
    return decision


# ---------------------------------------------------------------------------------------------- policies
def _test_image(h: int, w: int, seq: int, rng: np.random.Generator) -> np.ndarray:
    """Ordinary content: a black frame, noise, and a gradient with a bright block that moves."""
    if seq % 3 == 1:
        return np.zeros((h, w, 3), np.uint8)
    if seq % 3 == 0:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = np.empty((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
    img[..., 2] = 96
    img[h // 4 : h // 2 + 1, w // 4 : w // 2 + 1] = 255
    return img


def policy_frames(height: int, width: int, n: int = 3, seed: int = 0) -> list[Frame]:
    """``n`` ordinary frames of one stream (``seq`` 0.., ``pts`` 0.1 s apart, no privileged data)."""
    rng = np.random.default_rng(seed)
    t0 = time.monotonic()
    return [Frame(_test_image(height, width, i, rng), t0 + i * 1e-3, i * 0.1, i, "check") for i in range(n)]


def check_policy_config(policy_cls: type[Policy]) -> None:
    """``Config`` is a :class:`PolicyConfig` subclass and validating it rejects an unknown field.

    Raises:
        ContractError: the config is missing, not a ``PolicyConfig``, or accepts unknown fields.
    """
    config = getattr(policy_cls, "Config", None)
    if not (isinstance(config, type) and issubclass(config, PolicyConfig)):
        raise _fail(policy_cls, f"Config must be a PolicyConfig subclass, got {config!r}")
    try:
        policy_cls.configure(None, {UNKNOWN_FIELD: 1}, config)
    except ConfigError as e:
        if UNKNOWN_FIELD not in str(e):
            raise _fail(policy_cls, f"ConfigError for an unknown field does not name it: {e}") from None
    except Exception as e:
        raise _fail(policy_cls, f"an unknown config field raised {_exc(e)}, expected ConfigError") from None
    else:
        raise _fail(policy_cls, f"{config.__name__} accepted the unknown field {UNKNOWN_FIELD!r}")


def check_policy(
    policy: Policy,
    *,
    sizes: Sequence[tuple[int, int]] = DEFAULT_SIZES,
    frames_per_size: int = 3,
    instruction: str = "Say when something changes.",
    step_timeout_s: float | None = 300.0,
    close: bool = True,
) -> list[Decision]:
    """Drive ``policy`` like the loop does and check every promise it makes; returns the decisions.

    For each size (height, width) a new stream: ``reset()`` on the caller's thread, then, on one worker
    thread like the loop's policy thread, ``instruct()`` and ``step()`` on ``frames_per_size`` ordinary
    frames (noise, black, a gradient) without privileged data. Checks: class attributes (``name``,
    ``privileged`` a bool, ``Config`` a :class:`PolicyConfig` that rejects unknown fields with
    :class:`ConfigError`), every decision (:func:`check_decision`, a new object each step), ``done`` a bool,
    no exception from ``step``, a privileged policy records an error on the first frame of a stream that
    lacks its privileged data, and (``close``) ``close()`` may be called twice.

    Raises:
        ContractError: naming the policy, the frame size and what is wrong.
    """
    cls = type(policy)
    if not isinstance(policy, Policy):
        raise _fail(policy, "is not an agentkit.policy.Policy")
    if not isinstance(cls.name, str) or not cls.name:
        raise _fail(policy, f"name must be a non-empty str, got {cls.name!r}")
    if not isinstance(cls.privileged, bool):
        raise _fail(policy, f"privileged must be a bool, got {cls.privileged!r}")
    check_policy_config(cls)
    decisions: list[Decision] = []
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-policy")

    def call(what: str, fn: Callable[[], Any]) -> Any:
        try:
            return worker.submit(fn).result(timeout=step_timeout_s)
        except FutureTimeout:
            raise _fail(policy, f"{what} took longer than {step_timeout_s} s") from None
        except ContractError:
            raise
        except Exception as e:
            raise _fail(policy, f"{what} raised {_exc(e)}; a policy records errors in Decision.errors") from e

    try:
        for h, w in sizes:
            where = f"{w}x{h} frame"
            try:
                policy.reset()
            except Exception as e:
                raise _fail(policy, f"reset() before a {where} stream raised {_exc(e)}") from e
            call(f"instruct() before a {where} stream", lambda: policy.instruct(instruction, 0.0))
            previous: Decision | None = None
            for frame in policy_frames(h, w, frames_per_size):
                if frame.seq == 1:  # the same text again mid-stream, without a stream time
                    call(f"instruct() mid-stream ({where})", lambda: policy.instruct(instruction, None))
                d = call(f"step() on {where} seq {frame.seq}", partial(policy.step, frame))
                here = f"{where} seq {frame.seq}"
                check_decision(d, policy, here)
                if d is previous:
                    raise _fail(policy, f"step() returned the same Decision object twice ({here}); the loop mutates it")
                if frame.seq == 0 and cls.privileged and not d.errors:
                    raise _fail(
                        policy,
                        f"privileged policy answered a frame without Frame.privileged with no error ({here}): "
                        "record what is missing in Decision.errors",
                    )
                done = policy.done
                if not isinstance(done, bool):
                    raise _fail(policy, f"done must be a bool, got {type(done).__name__} {done!r} ({here})")
                previous = d
                decisions.append(d)
    finally:
        worker.shutdown(wait=False)
    if close:
        for i in (1, 2):
            try:
                policy.close()
            except Exception as e:
                raise _fail(policy, f"close() call {i} raised {_exc(e)}; close must be idempotent") from e
    return decisions


# ---------------------------------------------------------------------------------------------- sources
def _one_line_source_error(source: Source, e: SourceError, what: str) -> SourceError:
    text = str(e)
    if not text.strip() or "\n" in text.strip():
        raise _fail(source, f"{what} raised a SourceError without one clear line: {text!r}") from e
    return e


async def check_source_async(
    source: Source,
    *,
    frames: int = 5,
    min_frames: int = 1,
    open_timeout_s: float = 30.0,
    frame_timeout_s: float = 15.0,
) -> list[Frame]:
    """Open ``source``, take up to ``frames`` frames, close it twice; returns the frames taken.

    Checks: ``lossless`` a bool, ``fps`` ``None`` or positive, ``open()`` fails only with a one-line
    :class:`SourceError` (which is re-raised as is: "no camera" is an answer, not a broken contract),
    ``frames()`` is an async iterator of :class:`Frame` with HxWx3 ``uint8`` images, strictly increasing
    ``seq``, non-decreasing finite ``pts``, non-decreasing ``t`` on the monotonic clock, at least
    ``min_frames`` frames, and ``close()`` (called twice) does not raise.

    Raises:
        ContractError: naming the source and what is wrong.
        SourceError: the source could not be opened or failed while streaming, with its own one line.
    """
    if not isinstance(source, Source):
        raise _fail(source, "is not an agentkit.sources.Source")
    if not isinstance(source.lossless, bool):
        raise _fail(source, f"lossless must be a bool, got {source.lossless!r}")
    try:
        await asyncio.wait_for(source.open(), open_timeout_s)
    except SourceError as e:
        raise _one_line_source_error(source, e, "open()") from None
    except asyncio.TimeoutError:
        raise _fail(source, f"open() took longer than {open_timeout_s} s") from None
    except Exception as e:
        raise _fail(source, f"open() raised {_exc(e)}; expected a SourceError with one clear line") from e
    taken: list[Frame] = []
    try:
        fps = source.fps
        if fps is not None and not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise _fail(source, f"fps must be None or a positive number, got {fps!r}")
        if not isinstance(source.lossless, bool):
            raise _fail(source, f"lossless must be a bool after open(), got {source.lossless!r}")
        it = source.frames()
        if not hasattr(it, "__anext__"):
            raise _fail(source, f"frames() must return an async iterator, got {type(it).__name__}")
        try:
            await _take(source, it, taken, frames, frame_timeout_s)
        finally:
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()  # what the loop's ``break`` out of ``async for`` ends in
                except Exception as e:
                    raise _fail(source, f"closing the frames() iterator raised {_exc(e)}") from e
        if len(taken) < min_frames:
            raise _fail(source, f"yielded {len(taken)} frame(s), expected at least {min_frames}")
    finally:
        for i in (1, 2):
            try:
                await source.close()
            except Exception as e:
                raise _fail(source, f"close() call {i} raised {_exc(e)}; close must be idempotent") from e
    return taken


async def _take(source: Source, it: AsyncIterator[Frame], taken: list[Frame], n: int, timeout_s: float) -> None:
    start = time.monotonic()
    last: Frame | None = None
    while len(taken) < n:
        try:
            frame = await asyncio.wait_for(it.__anext__(), timeout_s)
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise _fail(source, f"no frame within {timeout_s} s after {len(taken)} frame(s)") from None
        except SourceError as e:
            raise _one_line_source_error(source, e, f"frames() after {len(taken)} frame(s)") from None
        except Exception as e:
            raise _fail(source, f"frames() raised {_exc(e)}; expected frames or a SourceError") from e
        i = len(taken)
        if not isinstance(frame, Frame):
            raise _fail(source, f"frame {i} is a {type(frame).__name__}, expected a Frame")
        img = frame.image
        if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
            shape = getattr(img, "shape", None)
            raise _fail(source, f"frame {i} image must be HxWx3 uint8, got shape {shape} {getattr(img, 'dtype', '')}")
        if img.shape[0] < 1 or img.shape[1] < 1:
            raise _fail(source, f"frame {i} image is empty: shape {img.shape}")
        if not isinstance(frame.seq, int) or isinstance(frame.seq, bool):
            raise _fail(source, f"frame {i} seq must be an int, got {frame.seq!r}")
        if not (isinstance(frame.pts, (int, float)) and math.isfinite(frame.pts)):
            raise _fail(source, f"frame {i} pts must be a finite number, got {frame.pts!r}")
        now = time.monotonic()
        if not (isinstance(frame.t, (int, float)) and math.isfinite(frame.t)) or frame.t > now + 1.0:
            raise _fail(source, f"frame {i} t={frame.t!r} is not a capture time on the monotonic clock (now {now:.3f})")
        if last is not None:
            if frame.seq <= last.seq:
                raise _fail(source, f"seq must strictly increase: frame {i} has seq {frame.seq} after {last.seq}")
            if frame.pts < last.pts:
                raise _fail(source, f"pts must not decrease: frame {i} has pts {frame.pts} after {last.pts}")
            if frame.t < last.t:
                raise _fail(source, f"t (monotonic capture time) went back: frame {i} has {frame.t} after {last.t}")
        elif frame.t < start - 3600.0:
            raise _fail(source, f"frame 0 t={frame.t!r} is an hour before the check began: not time.monotonic()?")
        last = frame
        taken.append(frame)


def check_source(source: Source, **kwargs: Any) -> list[Frame]:
    """Synchronous :func:`check_source_async` (runs its own event loop; use the async one inside a loop)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(check_source_async(source, **kwargs))
    raise RuntimeError("check_source() inside a running event loop: await check_source_async() instead")


# ---------------------------------------------------------------------------------------------- sinks
_SRT_TIME = r"\d{2}:\d{2}:\d{2},\d{3}"
_VTT_TIME = r"\d{2}:\d{2}:\d{2}\.\d{3}"


def _check_cues(text: str, vtt: bool) -> int:
    body = text
    if vtt:
        if not text.startswith("WEBVTT"):
            raise ValueError("a WebVTT file must start with 'WEBVTT'")
        body = text.split("\n\n", 1)[1] if "\n\n" in text else ""
    if body and not body.endswith("\n"):
        raise ValueError("the last cue is cut off (no final newline)")
    stamp, index = (_VTT_TIME, "") if vtt else (_SRT_TIME, r"\d+\n")
    cue = re.compile(rf"^{index}{stamp} --> {stamp}(?: [^\n]*)?\n(?:[^\n]+\n?)+$")
    n = 0
    for block in body.strip("\n").split("\n\n"):
        if not block.strip():
            continue
        if not cue.match(block + "\n"):
            raise ValueError(f"cue {n + 1} is malformed: {block[:80]!r}")
        n += 1
    return n


def _check_media(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        n = sum(1 for _ in container.decode(video=0))
    if n == 0:
        raise ValueError("no decodable frames")
    return n


def check_file(path: str | Path) -> str:
    """Check that a file a sink wrote is complete and readable, by its suffix; returns a short description.

    Known: ``.jsonl`` (every line is JSON, the last one ends), ``.json``, ``.srt`` / ``.vtt`` (every cue whole),
    ``.mp4`` / ``.gif`` (every frame decodes), ``.wav`` (the header matches the data), ``.png`` / ``.jpg``,
    ``.rrd`` (a Rerun recording the SDK reads back).
    Other suffixes are reported as unchecked.

    Raises:
        ContractError: naming the file and what is broken.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    size = path.stat().st_size
    try:
        if suffix == ".jsonl":
            text = path.read_text(encoding="utf-8")
            if text and not text.endswith("\n"):
                raise ValueError("the last line is cut off (no final newline)")
            lines = text.splitlines()
            for i, line in enumerate(lines, 1):
                try:
                    json.loads(line)
                except json.JSONDecodeError as e:
                    raise ValueError(f"line {i} is not JSON ({e.msg}): {line[:60]!r}") from None
            return f"jsonl, {len(lines)} lines"
        if suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
            return "json"
        if suffix in (".srt", ".vtt"):
            return f"{suffix[1:]}, {_check_cues(path.read_text(encoding='utf-8'), suffix == '.vtt')} cues"
        if suffix in (".mp4", ".gif", ".webm", ".mkv", ".avi"):
            return f"{suffix[1:]}, {_check_media(path)} frames"
        if suffix == ".wav":
            with wave.open(str(path)) as w:
                n = w.getnframes()
                data = w.readframes(n)
                if len(data) != n * w.getsampwidth() * w.getnchannels():
                    raise ValueError(f"header says {n} frames, the data holds fewer")
            return f"wav, {n} samples"
        if suffix in (".png", ".jpg", ".jpeg"):
            import cv2

            if cv2.imread(str(path)) is None:
                raise ValueError("cannot be decoded as an image")
            return suffix[1:]
        if suffix == ".rrd":  # a Rerun recording: its header, then read back by the SDK where it can
            with path.open("rb") as f:
                if f.read(4) != b"RRF2":
                    raise ValueError("no Rerun file header (RRF2)")
            try:
                import rerun as rr
            except ImportError:
                return "rrd (header only: rerun-sdk not installed)"
            reader = getattr(getattr(rr, "chunk", None), "RrdReader", None)
            if reader is None:
                return "rrd (header only: this rerun-sdk has no reader)"
            reader(path).store()
            return "rrd"
    except ContractError:
        raise
    except Exception as e:
        raise ContractError(f"{path} ({size} bytes) is broken: {_exc(e)}") from None
    return f"unchecked ({size} bytes)"


def _open_files_under(root: Path) -> list[str]:
    """Files under ``root`` this process still holds open (Linux ``/proc``; empty elsewhere)."""
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return []
    held = []
    root_s = str(root.resolve())
    for fd in list(fd_dir.iterdir()):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(root_s + os.sep):
            held.append(target)
    return held


def sink_script(width: int = 161, height: int = 121) -> list[tuple[Decision, Frame, list[ActionResult]]]:
    """One short stream covering every decision kind and payload, with the action results that follow."""
    rng = np.random.default_rng(0)
    t0 = time.monotonic()
    box = Box(0.1, 0.2, 0.5, 0.9, label="person", score=0.87)
    click = ToolCall("click", {"point": Point(0.25, 0.75)}, id="call-1")
    plain = [
        Decision.silence(),
        Decision.standby(text="something is starting"),
        Decision.response("A person arrived.", boxes=[box]),
        Decision.response(points=[Point(0.5, 0.5)], tool_calls=[click]),
        Decision.silence(errors=["policy error: ValueError: unparsable output"]),
        Decision.silence(gated=True),
        Decision.response("Zwei Personen – «ici»\nsecond line", meta={"score": np.float32(1.5), "ids": (1, 2)}),
        Decision.standby(errors=["tracker lost the target"]),
        Decision.response(
            "Everything at once.",
            points=[Point(0.0, 1.0)],
            boxes=[box, Box(0.0, 0.0, 1.0, 1.0)],
            tool_calls=[ToolCall("narrate", {"text": "hello"}), ToolCall("teleport", {})],
            errors=["dropped a call"],
        ),
        Decision.silence(),
    ]
    out = []
    for i, d in enumerate(plain):
        d.seq, d.pts = i, round(i * 0.5, 3)
        d.model_ms, d.latency_ms = 12.5 + i, 20.0 + i
        frame = Frame(_test_image(height, width, i, rng), t0 + i * 0.5, d.pts, i, "check")
        actions = [
            ActionResult(c, ok=(c.name != "teleport"), seq=i, output={"done": True} if c.name != "teleport" else None,
                         error=None if c.name != "teleport" else "unknown tool 'teleport'", duration_ms=3.25)
            for c in d.tool_calls
        ]  # fmt: skip
        out.append((d, frame, actions))
    return out


@dataclass
class SinkReport:
    """What :func:`check_sink` found: every file each run left, with its description."""

    empty_run: dict[str, str] = field(default_factory=dict)  # file (relative) -> description
    full_run: dict[str, str] = field(default_factory=dict)


def _check_dir(sink: Sink, root: Path, what: str) -> dict[str, str]:
    held = _open_files_under(root)
    if held:
        raise _fail(sink, f"{what}: close() left files open: {', '.join(sorted(held))}")
    found = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            found[str(path.relative_to(root))] = check_file(path)
        except ContractError as e:
            raise _fail(sink, f"{what}: {e}") from None
    return found


def check_sink(sink_factory: Callable[[Path], Sink], tmp_dir: str | Path) -> SinkReport:
    """Build sinks with ``sink_factory(folder)`` and check them the way the loop uses them.

    Two runs, each in a fresh folder under ``tmp_dir``: ``close()`` with zero frames, then a stream of every
    decision kind (text, points, boxes, tool calls, errors, a gated frame, unicode) with ``on_action`` after
    decisions with tool calls (ok and failed), then ``close()``. After each ``close()`` no file under the
    folder may still be open, and every file must be complete and readable (:func:`check_file`).

    Raises:
        ContractError: naming the sink, the run and the broken file or the call that raised.
    """
    root = Path(tmp_dir)
    report = SinkReport()
    for what, script in (("close() after zero frames", []), ("a stream of every decision kind", sink_script())):
        folder = root / ("empty" if not script else "full")
        folder.mkdir(parents=True, exist_ok=False)
        sink = sink_factory(folder)
        if not isinstance(sink, Sink):
            raise _fail(sink, "is not an agentkit.sinks.Sink")
        for decision, frame, actions in script:
            try:
                sink.on_decision(decision, frame)
            except Exception as e:
                raise _fail(sink, f"on_decision({decision.kind.value}, seq {decision.seq}) raised {_exc(e)}") from e
            for result in actions:
                try:
                    sink.on_action(result)
                except Exception as e:
                    raise _fail(sink, f"on_action({result.call.name}, ok={result.ok}) raised {_exc(e)}") from e
        try:
            sink.close()
        except Exception as e:
            raise _fail(sink, f"close() after {what} raised {_exc(e)}") from e
        found = _check_dir(sink, folder, what)
        if script:
            report.full_run = found
        else:
            report.empty_run = found
    return report
