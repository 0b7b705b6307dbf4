import asyncio
import itertools
import os
import shutil
import subprocess
import time

import numpy as np
import pytest

from agentkit.envs.media.camera import CameraSource
from agentkit.envs.media.pattern import TestPatternSource
from agentkit.envs.media.video import VideoSource
from agentkit.errors import SourceError
from agentkit.sources import open_source


async def collect(source, limit=None):
    out = []
    async with source:
        async for f in source.frames():
            out.append(f)
            if limit and len(out) >= limit:
                break
    return out


def test_video_decodes_rgb_frames_with_stream_times(tiny_clip):
    frames = asyncio.run(collect(VideoSource(str(tiny_clip))))
    assert 25 <= len(frames) <= 32
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape[2] == 3
    pts = [f.pts for f in frames]
    assert pts[0] == 0.0 and all(b > a for a, b in itertools.pairwise(pts))
    assert [f.seq for f in frames] == list(range(len(frames)))


def test_realtime_paces_to_stream_clock(tiny_clip):
    t0 = time.monotonic()
    frames = asyncio.run(collect(VideoSource(str(tiny_clip), realtime=True, end_s=1.0)))
    elapsed = time.monotonic() - t0
    assert frames[-1].pts >= 0.9 and elapsed >= 0.85  # 1 s of stream took ~1 s of wall clock


def test_missing_and_directory_sources_raise_clear_errors(tmp_path):
    with pytest.raises(SourceError, match="not found"):
        open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(SourceError, match="directory"):
        open_source(str(tmp_path))
    with pytest.raises(SourceError, match="unknown source"):
        open_source("bogus")


def test_corrupt_file_raises_source_error(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(os.urandom(50_000))
    with pytest.raises(SourceError, match=r"cannot open|corrupt|no decodable"):
        asyncio.run(collect(open_source(str(bad))))


def test_truncated_file_yields_good_frames_then_errors_or_ends(people_video, tmp_path):
    # Cut the real file in half: the moov atom is at the start of this mp4, so decoding stops early.
    data = people_video.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 3])
    frames = []

    async def go():
        src = open_source(str(cut))
        async with src:
            async for f in src.frames():
                frames.append(f)

    try:
        asyncio.run(go())
    except SourceError as e:
        assert "truncated" in str(e) or "cannot open" in str(e)
    # Whatever happens, no exception other than SourceError escapes and decoded frames are intact.
    assert all(f.image.shape == (432, 768, 3) for f in frames[:5])


def test_missing_camera_gives_one_clear_error():
    src = open_source("camera:7")
    with pytest.raises(SourceError, match="cannot open camera 7"):
        asyncio.run(src.open())


class FlakyCapture:
    """A cv2.VideoCapture stand-in: delivers 3 frames, fails, then works again after a reconnect."""

    opens = 0

    def __init__(self, device):
        FlakyCapture.opens += 1
        self.n = 0
        self.ok = FlakyCapture.opens != 2  # the first reconnect attempt fails too

    def isOpened(self):
        return self.ok

    def set(self, *a):
        return True

    def get(self, prop):
        return 30.0

    def read(self):
        self.n += 1
        if FlakyCapture.opens == 1 and self.n > 3:
            return False, None
        return True, np.zeros((8, 8, 3), np.uint8)

    def release(self):
        pass


def test_camera_reconnects_with_backoff():
    FlakyCapture.opens = 0
    cam = CameraSource(0, capture_factory=FlakyCapture, backoff_s=0.01)
    frames = asyncio.run(collect(cam, limit=6))
    assert len(frames) == 6 and cam.reconnects == 1 and FlakyCapture.opens == 3


def test_camera_gives_up_after_max_retries():
    class Dies(FlakyCapture):
        def read(self):
            return False, None

    made = []

    def factory(device):
        made.append(device)
        return Dies(device) if len(made) == 1 else _Closed()

    cam = CameraSource(0, capture_factory=factory, max_retries=2, backoff_s=0.01)
    with pytest.raises(SourceError, match="did not come back after 2"):
        asyncio.run(collect(cam))
    assert len(made) == 3  # the first open and two reconnect attempts


class _Closed:
    def isOpened(self):
        return False

    def release(self):
        pass


def test_camera_reads_a_real_stream_url_through_opencv(tiny_clip):
    # No /dev/video* here: OpenCV opens a file path the same way it opens a stream URL.
    frames = asyncio.run(collect(CameraSource(str(tiny_clip), max_retries=0), limit=5))
    assert len(frames) == 5 and frames[0].image.shape[2] == 3


def test_test_pattern_moves():
    frames = asyncio.run(collect(TestPatternSource(fps=10, duration_s=1.0)))
    assert len(frames) == 10 and not np.array_equal(frames[0].image, frames[5].image)


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb not installed")
def test_screen_source_on_xvfb(monkeypatch):
    display = ":87"
    proc = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "320x200x24", "-nolisten", "tcp"], stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(50):
            if os.path.exists(f"/tmp/.X11-unix/X{display[1:]}"):
                break
            time.sleep(0.1)
        monkeypatch.setenv("DISPLAY", display)
        from agentkit.envs.media.screen import ScreenSource

        frames = asyncio.run(collect(ScreenSource(fps=20), limit=3))
        assert frames[0].image.shape == (200, 320, 3)
    finally:
        proc.terminate()
        proc.wait(5)
