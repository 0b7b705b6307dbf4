"""Every registered policy and source, and every concrete sink, passes the contract checks of agentkit.checks.

The tables below map each name to a factory building the real component. A name registered (entry point) or
a sink class defined in the package without an entry fails the test, so a new component cannot skip the
checks. The last section shows each check catching a deliberately broken component.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import importlib
import io
import json
import os
import pkgutil
import shutil
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ConfigDict

import agentkit
from agentkit.checks import ContractError, check_policy, check_sink, check_source, check_source_async, sink_script
from agentkit.errors import SourceError
from agentkit.policy import POLICIES, Policy, PolicyConfig, make_policy
from agentkit.sinks import JsonlWriter, Sink
from agentkit.sources import SOURCES, Source
from agentkit.testing import CaptureSink, ListSource, ScriptedPolicy
from agentkit.types import Decision, Frame


def _base(key: str) -> str:
    """``"video[realtime]"`` -> ``"video"``: a table may hold several variants of one component."""
    return key.split("[", 1)[0]


def _cases(registered: list[str], table: dict[str, Any]) -> list[str]:
    """Every registered name and every table key: a name without an entry, or an entry without a name, fails."""
    return sorted(set(registered) | set(table))


def _entry(kind: str, key: str, registered: list[str], table: dict[str, Any]) -> Any:
    if _base(key) not in registered:
        pytest.fail(f"{kind} table entry {key!r} names no registered {kind}: remove it or fix the name")
    if key not in table:
        pytest.fail(f"registered {kind} {key!r} has no factory in tests/test_checks.py: add one so it is checked")
    return table[key]


# ================================================================================================ policies
class ChatServer:
    """A loopback OpenAI-compatible endpoint cycling through scripted replies (states, a point, junk, HTTP 500)."""

    REPLIES: tuple[Any, ...] = (
        "STANDBY",
        "RESPONSE: The square is at <point>500 250</point>.",
        "SILENCE",
        500,
        "no state word here",
    )

    def __init__(self) -> None:
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def _send(self, code: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": "tiny"}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                reply = outer.REPLIES[outer.calls % len(outer.REPLIES)]
                outer.calls += 1
                if reply == 500:
                    self._send(500, {"error": "boom"})
                else:
                    self._send(200, {"choices": [{"message": {"role": "assistant", "content": reply}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def chat_server():
    s = ChatServer()
    yield s
    s.close()


def _vlm(name: str) -> Callable[[pytest.FixtureRequest], tuple[Policy, dict[str, Any]]]:
    def build(request: pytest.FixtureRequest) -> tuple[Policy, dict[str, Any]]:
        ckpt = request.getfixturevalue("tiny_qwen")  # built once per session (tests/conftest.py)
        return make_policy(name, model=str(ckpt)), {}

    return build


def _http(request: pytest.FixtureRequest) -> tuple[Policy, dict[str, Any]]:
    server = request.getfixturevalue("chat_server")
    policy = make_policy("http", base_url=server.url, model="tiny", api_key="sk-test", min_interval_s=0.0)
    return policy, {}


# name -> (the policy, built through the registry, and extra keywords for check_policy)
POLICY_CASES: dict[str, Callable[[pytest.FixtureRequest], tuple[Policy, dict[str, Any]]]] = {
    "detector": lambda r: (make_policy("detector"), {}),
    "vlm": _vlm("vlm"),
    "vlm-gui": _vlm("vlm-gui"),
    "fetch-vlm": _vlm("fetch-vlm"),
    "http": _http,
    # privileged: frames carry no Frame.privileged, so each stream's first decision must record an error
    "miniwob-oracle": lambda r: (make_policy("miniwob-oracle"), {}),
    "miniwob-oracle[task]": lambda r: (make_policy("miniwob-oracle", task="click-button"), {}),
    "ocr": lambda r: (make_policy("ocr"), {"instruction": "Click button Submit."}),  # an instruction it parses
    "fetch-expert": lambda r: (make_policy("fetch-expert"), {}),
    "fetch-pixels": lambda r: (make_policy("fetch-pixels"), {}),
}


@pytest.mark.parametrize("key", _cases(POLICIES.names(), POLICY_CASES))
def test_registered_policy_passes_the_checks(key: str, request: pytest.FixtureRequest) -> None:
    build = _entry("policy", key, POLICIES.names(), POLICY_CASES)
    policy, kwargs = build(request)
    decisions = check_policy(policy, **kwargs)
    assert len(decisions) == 9  # three streams (8x8, 320x240, 1920x1080) of three frames
    if type(policy).privileged:
        assert all(d.errors for d in decisions[::3])


# ================================================================================================ sources
@dataclass
class Ctx:
    """What a source factory may use: fixtures, a temporary folder, and clean-up run after the check."""

    request: pytest.FixtureRequest
    tmp: Path
    stack: contextlib.AsyncExitStack


@dataclass
class Built:
    source: Source
    check: dict[str, Any] = field(default_factory=dict)  # keywords for check_source_async
    expect: type[Exception] | None = None  # the check must raise this instead (no camera on this machine)


def _clip(path: Path, n: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    from agentkit.envs.media.pattern import pattern_image
    from agentkit.video_io import Mp4Writer

    w = Mp4Writer(path, fps=10)
    for i in range(n):
        w.write(pattern_image(i, *size), i / 10)
    w.close()
    return path


async def _video(ctx: Ctx) -> Built:
    return Built(SOURCES.get("video").from_spec(str(_clip(ctx.tmp / "clip.mp4"))), {"frames": 20, "min_frames": 12})


async def _video_realtime(ctx: Ctx) -> Built:
    return Built(SOURCES.get("video").from_spec(str(_clip(ctx.tmp / "clip.mp4")), realtime=True), {"frames": 4})


async def _recording(ctx: Ctx) -> Built:
    from agentkit.recorder import Recorder

    rec = Recorder(ctx.tmp / "rec", fps=10)
    for decision, frame, _ in sink_script(64, 48):  # seq 0..9 at pts 0, 0.5, ...: kept by the replay
        rec.on_decision(decision, frame)
    rec.close()
    return Built(SOURCES.get("recording").from_spec(str(ctx.tmp / "rec")), {"frames": 20, "min_frames": 10})


async def _camera(ctx: Ctx) -> Built:
    source = SOURCES.get("camera").from_spec("0", max_retries=1, backoff_s=0.01)
    if glob.glob("/dev/video*"):
        return Built(source, {"frames": 3})
    return Built(source, expect=SourceError)  # no camera: one clear SourceError from open()


async def _camera_absent(ctx: Ctx) -> Built:
    return Built(SOURCES.get("camera").from_spec("63", max_retries=1, backoff_s=0.01), expect=SourceError)


async def _screen(ctx: Ctx) -> Built:
    pytest.importorskip("mss")
    if not os.environ.get("DISPLAY"):
        if shutil.which("Xvfb") is None:
            pytest.skip("no display and no Xvfb (apt-get install xvfb)")
        from agentkit.envs.gui.desktop import XvfbDisplay

        ctx.stack.enter_context(XvfbDisplay(320, 240))
    return Built(SOURCES.get("screen").from_spec("", fps=20.0), {"frames": 4})


async def _pattern(ctx: Ctx) -> Built:
    return Built(SOURCES.get("test-pattern").from_spec("", duration_s=1.0), {"frames": 20, "min_frames": 10})


async def _pattern_realtime(ctx: Ctx) -> Built:
    return Built(SOURCES.get("test-pattern").from_spec("", realtime=True, fps=30.0), {"frames": 5})


class PatternActor:
    """A stand-in robot for the node: the test pattern as its camera, an idle status, a small scene state."""

    def __init__(self) -> None:
        self.n = 0

    def reset(self, seed: int | None = None) -> None:
        self.n = 0

    def status(self) -> Any:
        from agentkit.types import ActorStatus

        return ActorStatus()

    def render(self, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        from agentkit.envs.media.pattern import pattern_image

        self.n += 1
        return pattern_image(self.n, 160, 120), (np.full((120, 160), 1.5, np.float32) if depth else None)

    def scene_state(self) -> dict[str, Any]:
        return {"object_pos": [1.0, 0.5, 0.4], "target_pos": [1.2, 0.6, 0.4]}


def _mqtt(privileged: bool, tls: bool = False) -> Callable[[Ctx], Awaitable[Built]]:
    async def build(ctx: Ctx) -> Built:
        from agentkit.tooling import ToolBox
        from agentkit.transport.mqtt.auth import MqttAuth
        from agentkit.transport.mqtt.node import RobotNode
        from agentkit.transport.mqtt.wire import parse_spec

        auth = None
        if tls:  # mqtts://: a private mosquitto with a TLS listener and a CA made for the test
            from agentkit.transport.mqtt.broker import MosquittoBroker

            tls_files = ctx.request.getfixturevalue("tls_files")
            broker = ctx.stack.enter_context(MosquittoBroker(tls=tls_files))
            auth = MqttAuth(tls_ca=tls_files.ca)
        else:
            broker = ctx.request.getfixturevalue("broker")  # a private mosquitto (skips where not installed)
        node = RobotNode(parse_spec(broker.url + "/c1"), PatternActor(), ToolBox([]), fps=20, auth=auth)
        task = asyncio.create_task(node.run())

        async def stop() -> None:
            node.stop()
            await task

        ctx.stack.push_async_callback(stop)
        kind = "mqtts" if tls else "mqtt"
        assert broker.url.startswith(f"{kind}://")
        source = SOURCES.get(kind).from_spec(broker.url + "/c1", max_age_s=5.0, privileged=privileged, auth=auth)
        return Built(source, {"frames": 4})

    return build


SOURCE_CASES: dict[str, Callable[[Ctx], Awaitable[Built]]] = {
    "video": _video,
    "video[realtime]": _video_realtime,
    "recording": _recording,
    "camera": _camera,
    "camera[absent]": _camera_absent,
    "screen": _screen,
    "test-pattern": _pattern,
    "test-pattern[realtime]": _pattern_realtime,
    "mqtt": _mqtt(privileged=False),
    "mqtt[privileged]": _mqtt(privileged=True),
    "mqtts": _mqtt(privileged=False, tls=True),
}


@pytest.mark.parametrize("key", _cases(SOURCES.names(), SOURCE_CASES))
def test_registered_source_passes_the_checks(key: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    build = _entry("source", key, SOURCES.names(), SOURCE_CASES)

    async def go() -> tuple[Built, list[Frame] | Exception]:
        async with contextlib.AsyncExitStack() as stack:
            built = await build(Ctx(request, tmp_path, stack))
            if built.expect is None:
                return built, await check_source_async(built.source, **built.check)
            with pytest.raises(built.expect) as err:
                await check_source_async(built.source, **built.check)
            return built, err.value

    built, out = asyncio.run(go())
    if built.expect is not None:
        assert isinstance(out, Exception) and "\n" not in str(out) and str(out)
        assert "camera" in str(out)  # names what could not be opened
        return
    assert isinstance(out, list)
    want = built.check.get("min_frames", 1)
    assert len(out) >= want
    if key.startswith("recording"):
        assert [f.seq for f in out] == list(range(10)) and out[1].pts == pytest.approx(0.5)  # the recorded clock
    if key == "mqtt[privileged]":
        assert all(isinstance(f.privileged, dict) for f in out[1:])


# ================================================================================================ sinks
def _console() -> Any:
    from rich.console import Console

    return Console(file=io.StringIO(), width=100)


def _annotated(name: str) -> Callable[[Path], Sink]:
    def build(d: Path) -> Sink:
        from agentkit.annotate import AnnotatedVideoSink

        return AnnotatedVideoSink(d / name)

    return build


def _progress(total_s: float | None) -> Callable[[Path], Sink]:
    def build(d: Path) -> Sink:
        from agentkit.progress import ProgressSink

        return ProgressSink(total_s, console=_console())

    return build


def _recorder(frames: bool) -> Callable[[Path], Sink]:
    def build(d: Path) -> Sink:
        from agentkit.recorder import Recorder

        return Recorder(d, frames=frames, fps=10.0)

    return build


def _subtitles(name: str) -> Callable[[Path], Sink]:
    def build(d: Path) -> Sink:
        from agentkit.tools.narration.subtitles import SubtitleSink

        return SubtitleSink(d / name)

    return build


def _stop_when_done(d: Path) -> Sink:
    from agentkit.apps.robot import _StopWhenDone
    from agentkit.loop import StreamLoop

    return _StopWhenDone(StreamLoop(ListSource(1), ScriptedPolicy()))


def _keep_open(d: Path) -> Sink:
    from agentkit.apps.browser_agent import _KeepOpen

    return _KeepOpen(CaptureSink())


def _collect(d: Path) -> Sink:
    from agentkit.benchmarks.detector import _Collect

    return _Collect(JsonlWriter(d / "decisions.jsonl"), None)


def _console_sink(d: Path) -> Sink:
    from agentkit.tools.narration.console import ConsoleSink

    return ConsoleSink(_console(), verbose=True)


def _messages(d: Path) -> Sink:
    from agentkit.tools.narration.console import MessageSink

    return MessageSink(d / "messages.jsonl")


def _speech(d: Path) -> Sink:
    if shutil.which("espeak-ng") is None and shutil.which("espeak") is None:
        pytest.skip("espeak-ng not installed")
    from agentkit.tools.narration.speech import SpeechSink

    return SpeechSink(d, play=False)


def _rerun(d: Path) -> Sink:
    """A Rerun stream sink whose log (normally closed by the app that owns it) closes with the sink."""
    pytest.importorskip("rerun")
    from agentkit.apps.dashboard.rerun_log import RerunLog, RerunSink

    class Owned(RerunSink):
        def close(self) -> None:
            self.log.close()

    return Owned(RerunLog(d / "run.rrd"), "cam")


def _dashboard(d: Path) -> Sink:
    from agentkit.apps.dashboard.state import DashboardSink, StreamState

    return DashboardSink(StreamState("cam"))


NARRATION = "agentkit.tools.narration"
# "module.Class[variant]" -> (factory given a fresh folder, files the full run must leave in it)
SINK_CASES: dict[str, tuple[Callable[[Path], Sink], tuple[str, ...]]] = {
    "agentkit.annotate.AnnotatedVideoSink": (_annotated("out.mp4"), ("out.mp4",)),
    "agentkit.annotate.AnnotatedVideoSink[gif]": (_annotated("out.gif"), ("out.gif",)),
    "agentkit.progress.ProgressSink": (_progress(5.0), ()),
    "agentkit.progress.ProgressSink[live]": (_progress(None), ()),
    "agentkit.recorder.Recorder": (_recorder(True), ("frames.mp4", "decisions.jsonl", "actions.jsonl", "meta.json")),
    "agentkit.recorder.Recorder[no-frames]": (_recorder(False), ("decisions.jsonl", "actions.jsonl", "meta.json")),
    "agentkit.apps.robot._StopWhenDone": (_stop_when_done, ()),
    "agentkit.apps.browser_agent._KeepOpen": (_keep_open, ()),
    "agentkit.benchmarks.detector._Collect": (_collect, ("decisions.jsonl",)),
    "agentkit.apps.dashboard.rerun_log.RerunSink": (_rerun, ("run.rrd",)),
    "agentkit.apps.dashboard.state.DashboardSink": (_dashboard, ()),
    f"{NARRATION}.console.ConsoleSink": (_console_sink, ()),
    f"{NARRATION}.console.MessageSink": (_messages, ("messages.jsonl",)),
    f"{NARRATION}.speech.SpeechSink": (_speech, ("narration.wav",)),
    f"{NARRATION}.subtitles.SubtitleSink": (_subtitles("out.srt"), ("out.srt",)),
    f"{NARRATION}.subtitles.SubtitleSink[vtt]": (_subtitles("out.vtt"), ("out.vtt",)),
}

# Modules whose optional third-party dependency this machine lacks are skipped (module -> missing import; an
# import error inside agentkit itself fails the collection); agentkit.testing holds the test fakes.
SKIPPED_MODULES: dict[str, str] = {}


def concrete_sinks() -> list[str]:
    """``module.Class`` of every concrete Sink subclass defined in the agentkit package (all modules imported)."""
    for info in pkgutil.walk_packages(agentkit.__path__, "agentkit."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # running it would start the CLI
        try:
            importlib.import_module(info.name)
        except ModuleNotFoundError as e:
            if e.name and e.name.split(".")[0] != "agentkit":  # an optional third-party dependency
                SKIPPED_MODULES[info.name] = e.name
                continue
            raise

    def subclasses(cls: type) -> list[type]:
        return [c for s in cls.__subclasses__() for c in (s, *subclasses(s))]

    found = set()
    for cls in subclasses(Sink):
        mod = cls.__module__
        if mod.startswith("agentkit.") and mod != "agentkit.testing" and not getattr(cls, "__abstractmethods__", None):
            found.add(f"{mod}.{cls.__qualname__}")
    return sorted(found)


SINKS = concrete_sinks()


def test_sink_discovery_finds_the_known_sinks() -> None:
    assert {"agentkit.recorder.Recorder", f"{NARRATION}.subtitles.SubtitleSink"} <= set(SINKS), SKIPPED_MODULES
    assert "agentkit.testing.CaptureSink" not in SINKS


@pytest.mark.parametrize("key", _cases(SINKS, SINK_CASES))
def test_every_sink_passes_the_checks(key: str, tmp_path: Path) -> None:
    factory, files = _entry("sink", key, SINKS, SINK_CASES)
    report = check_sink(factory, tmp_path)
    assert set(files) <= set(report.full_run), report
    for name, what in report.full_run.items():
        assert not what.startswith("unchecked"), (name, what)  # every file a sink writes has a known format
    if key.startswith("agentkit.recorder.Recorder"):
        n_calls = sum(len(d.tool_calls) for d, _, _ in sink_script())
        assert report.full_run["decisions.jsonl"] == "jsonl, 10 lines"
        assert report.full_run["actions.jsonl"] == f"jsonl, {n_calls} lines"
    if key.endswith("SubtitleSink") or key.endswith("SubtitleSink[vtt]"):
        texts = sum(1 for d, _, _ in sink_script() if d.kind.value == "response" and d.text)
        assert report.full_run[next(iter(files))].endswith(f"{texts} cues")


# ================================================================================================ broken components
class RaisesOnLargeFrames(ScriptedPolicy):
    def step(self, frame: Frame) -> Decision:
        if frame.width > 1000:
            raise RuntimeError("out of memory")
        return super().step(frame)


class ReturnsNone(ScriptedPolicy):
    def step(self, frame: Frame) -> Decision:
        return None  # type: ignore[return-value]


class ReusesItsDecision(ScriptedPolicy):
    _d = Decision.silence()

    def step(self, frame: Frame) -> Decision:
        return self._d


class LaxConfig(PolicyConfig):
    model_config = ConfigDict(extra="allow")


class AcceptsUnknownFields(ScriptedPolicy):
    Config = LaxConfig


class DoneIsAnInt(ScriptedPolicy):
    @property
    def done(self) -> bool:
        return 1  # type: ignore[return-value]


class PrivilegedWithoutComplaint(ScriptedPolicy):
    privileged = True


class PrivilegedAndRaises(ScriptedPolicy):
    privileged = True

    def step(self, frame: Frame) -> Decision:
        return Decision.response(text=frame.privileged["dom"])  # TypeError: None is not subscriptable


class CloseOnce(ScriptedPolicy):
    def close(self) -> None:
        if getattr(self, "_closed", False):
            raise RuntimeError("already closed")
        self._closed = True


@pytest.mark.parametrize(
    "policy,match",
    [
        (RaisesOnLargeFrames(), r"step\(\) on 1920x1080 frame seq 0 raised RuntimeError: out of memory"),
        (ReturnsNone(), r"returned NoneType None, expected a Decision \(8x8 frame seq 0\)"),
        (ReusesItsDecision(), r"returned the same Decision object twice"),
        (AcceptsUnknownFields(), r"LaxConfig accepted the unknown field"),
        (DoneIsAnInt(), r"done must be a bool, got int"),
        (PrivilegedWithoutComplaint(), r"privileged policy answered a frame without Frame.privileged with no error"),
        (PrivilegedAndRaises(), r"step\(\) on 8x8 frame seq 0 raised TypeError"),
        (CloseOnce(), r"close\(\) call 2 raised RuntimeError: already closed"),
        (ScriptedPolicy(lambda f: Decision.response(meta={"image": f.image})), r"not JSON-serializable"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Policy) else "",
)
def test_check_policy_catches_a_broken_policy(policy: Policy, match: str) -> None:
    check_policy(ScriptedPolicy())  # the fake every broken one derives from passes
    with pytest.raises(ContractError, match=match) as err:
        check_policy(policy)
    assert type(policy).__name__ in str(err.value)  # the message names the component


class SeqGoesBack(ListSource):
    async def frames(self) -> AsyncIterator[Frame]:
        async for f in super().frames():
            if f.seq == 2:
                f.seq = 0
            yield f


class PtsGoesBack(ListSource):
    async def frames(self) -> AsyncIterator[Frame]:
        async for f in super().frames():
            if f.seq == 2:
                f.pts = 0.05
            yield f


class WallClockT(ListSource):
    async def frames(self) -> AsyncIterator[Frame]:
        import time

        async for f in super().frames():
            f.t = time.time()
            yield f


class OpenRaisesOSError(ListSource):
    async def open(self) -> None:
        raise OSError("/dev/video0: permission denied")


class OpenRaisesAWallOfText(ListSource):
    async def open(self) -> None:
        raise SourceError("cannot open\nTraceback (most recent call last):\n  ...")


class Stalls(ListSource):
    async def frames(self) -> AsyncIterator[Frame]:
        async for f in super().frames():
            yield f
            await asyncio.sleep(60)


class CloseTwiceFails(ListSource):
    closed = False

    async def close(self) -> None:
        if self.closed:
            raise RuntimeError("double close")
        self.closed = True


class Empty(ListSource):
    pass


@pytest.mark.parametrize(
    "source,match",
    [
        (SeqGoesBack(5), r"seq must strictly increase: frame 2 has seq 0 after 1"),
        (PtsGoesBack(5), r"pts must not decrease: frame 2 has pts 0.05 after 0.1"),
        (WallClockT(3), r"is not a capture time on the monotonic clock"),
        (OpenRaisesOSError(3), r"open\(\) raised OSError: /dev/video0: permission denied; expected a SourceError"),
        (OpenRaisesAWallOfText(3), r"SourceError without one clear line"),
        (Stalls(5), r"no frame within 0.2 s after 1 frame"),
        (CloseTwiceFails(3), r"close\(\) call 2 raised RuntimeError: double close"),
        (Empty(0), r"yielded 0 frame\(s\), expected at least 1"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Source) else "",
)
def test_check_source_catches_a_broken_source(source: Source, match: str) -> None:
    assert len(check_source(ListSource(5))) == 5  # the fake every broken one derives from passes
    with pytest.raises(ContractError, match=match) as err:
        check_source(source, frame_timeout_s=0.2)
    assert type(source).__name__ in str(err.value)


class JsonlSink(Sink):
    """A decent file sink: one JSON line per decision, closed properly."""

    def __init__(self, folder: Path) -> None:
        self.out = JsonlWriter(folder / "d.jsonl")

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self.out.write(decision.to_dict())

    def close(self) -> None:
        self.out.close()


class TruncatesOnClose(JsonlSink):
    def close(self) -> None:
        super().close()
        size = self.out.path.stat().st_size
        if size:
            with open(self.out.path, "r+b") as f:
                f.truncate(size - 7)  # the last line is cut in the middle


class LeavesItOpen(JsonlSink):
    def close(self) -> None:
        pass


class TornVideo(Sink):
    def __init__(self, folder: Path) -> None:
        from agentkit.video_io import Mp4Writer

        self.video = Mp4Writer(folder / "v.mp4")

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        self.video.write(frame.image, frame.pts)

    def close(self) -> None:
        self.video.close()
        path = self.video.path
        if path.exists():
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])  # a crash half-way through writing the container


class CutSubtitle(Sink):
    def __init__(self, folder: Path) -> None:
        self.path = folder / "s.srt"

    def close(self) -> None:
        self.path.write_text("1\n00:00:01,000 --> 00:00:02,000\nA person arrived.\n\n2\n00:00:0")


class ChokesOnToolCalls(CaptureSink):
    def __init__(self, folder: Path) -> None:
        super().__init__()

    def on_decision(self, decision: Decision, frame: Frame) -> None:
        if decision.tool_calls:
            raise KeyError("arguments")
        super().on_decision(decision, frame)


@pytest.mark.parametrize(
    "factory,match",
    [
        (
            TruncatesOnClose,
            r"a stream of every decision kind: .*d.jsonl \(\d+ bytes\) is broken: .*last line is cut off",
        ),
        (LeavesItOpen, r"close\(\) left files open: .*d.jsonl"),
        (TornVideo, r"v.mp4 \(\d+ bytes\) is broken"),
        (CutSubtitle, r"close\(\) after zero frames: .*s.srt \(\d+ bytes\) is broken"),
        (ChokesOnToolCalls, r"on_decision\(response, seq 3\) raised KeyError"),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else "",
)
def test_check_sink_catches_a_broken_sink(factory: Callable[[Path], Sink], match: str, tmp_path: Path) -> None:
    check_sink(JsonlSink, tmp_path / "good")  # the decent sink passes
    with pytest.raises(ContractError, match=match) as err:
        check_sink(factory, tmp_path / "bad")
    assert factory.__name__ in str(err.value)
