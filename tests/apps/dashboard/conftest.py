"""Fixtures of the dashboard tests: a clip with two narrated events, Chromium through Playwright, a recording."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentkit.tooling import Tool
from agentkit.types import Box, Decision, Frame, ToolCall

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def events_clip(people_video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seconds 4-27 of the people clip at 480 px: a person arrives (~4 s in), leaves (~16 s), another comes (~21 s)."""
    from agentkit.envs.media.video import VideoSource
    from agentkit.video_io import Mp4Writer

    dst = tmp_path_factory.mktemp("dash") / "events.mp4"

    async def go() -> None:
        src = VideoSource(str(people_video), start_s=4.0, end_s=27.0, max_width=480)
        await src.open()
        w = Mp4Writer(dst, fps=src.fps or 10)
        async for f in src.frames():
            w.write(f.image, f.pts - 4.0)
        w.close()
        await src.close()

    asyncio.run(go())
    return dst


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (its own browser download is not used)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, chromium_sandbox=False)
        yield b
        b.close()


class NoteArgs(BaseModel):
    text: str


class NoteTool(Tool):
    """A tool that succeeds unless the text says "fail": tool calls and their results for the dashboard."""

    name = "note"
    Args = NoteArgs

    async def run(self, args: NoteArgs) -> Any:
        if "fail" in args.text:
            from agentkit.errors import ToolError

            raise ToolError(f"cannot note {args.text!r}")
        return {"noted": args.text}


def scripted(frame: Frame) -> Decision:
    """Every 10th frame a Response with a box and a tool call, Standby before it, Silence otherwise."""
    k = frame.seq % 10
    if k == 9:
        return Decision.response(
            f"event at frame {frame.seq}",
            boxes=[Box(0.1, 0.2, 0.4, 0.8, label="thing")],
            tool_calls=[ToolCall("note", {"text": f"seen {frame.seq}" if frame.seq % 20 != 19 else "fail"})],
        )
    return Decision.standby() if k >= 6 else Decision.silence()


@pytest.fixture(scope="session")
def record_pattern() -> Callable[..., Path]:
    """Writes a recording folder (frames.mp4, decisions.jsonl, actions.jsonl, meta.json) of the test pattern."""

    def make(folder: Path, seconds: float = 4.0) -> Path:
        from agentkit.envs.media.pattern import TestPatternSource
        from agentkit.loop import StreamLoop
        from agentkit.recorder import Recorder
        from agentkit.testing import ScriptedPolicy
        from agentkit.tooling import ToolBox

        async def go() -> None:
            loop = StreamLoop(
                TestPatternSource(duration_s=seconds),
                ScriptedPolicy(scripted),
                toolbox=ToolBox([NoteTool()]),
                recorder=Recorder(folder, fps=10.0, meta={"source": "test-pattern"}),
            )
            await loop.run()

        # a thread of its own: Playwright's sync API keeps an event loop running in the test's thread
        with ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(go())).result()
        return folder

    return make


@pytest.fixture(scope="session")
def scripted_policy() -> Callable[[], Any]:
    from agentkit.testing import ScriptedPolicy

    return lambda: ScriptedPolicy(scripted)


@pytest.fixture(scope="session")
def note_tool() -> Callable[[], Tool]:
    return NoteTool
