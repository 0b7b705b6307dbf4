import json
import shutil
import wave

import av
import numpy as np
import pytest

from agentkit.annotate import AnnotatedVideoSink, draw_decision
from agentkit.recorder import Recorder
from agentkit.sinks import JsonlWriter, read_jsonl
from agentkit.tools.narration.console import ConsoleSink, MessageSink
from agentkit.tools.narration.subtitles import SubtitleSink, read_cues
from agentkit.types import ActionResult, Box, Decision, Frame, ToolCall


def frame(seq, pts, w=64, h=48):
    return Frame(np.full((h, w, 3), seq * 10 % 255, np.uint8), 0.0, pts, seq)


def feed(sink, script):
    """script: list of (pts, text or None)."""
    for i, (pts, text) in enumerate(script):
        d = Decision.response(text, seq=i, pts=pts) if text else Decision.silence(seq=i, pts=pts)
        sink.on_decision(d, frame(i, pts))
    sink.close()


@pytest.mark.parametrize("fmt", ["srt", "vtt"])
def test_subtitles_cues_end_at_next_response_or_hold(tmp_path, fmt):
    path = tmp_path / f"n.{fmt}"
    feed(
        SubtitleSink(path, hold_s=4),
        [(0.0, None), (1.0, "A person arrived."), (2.5, "A person left."), (3.0, None), (9.0, "Motion started.")],
    )
    cues = read_cues(path)
    assert cues == [(1.0, 2.5, "A person arrived."), (2.5, 6.5, "A person left."), (9.0, 13.0, "Motion started.")]
    text = path.read_text()
    assert text.startswith("WEBVTT") if fmt == "vtt" else text.startswith("1\n00:00:01,000 --> 00:00:02,500")


def test_subtitle_file_is_valid_after_each_cue(tmp_path):
    sink = SubtitleSink(tmp_path / "n.srt")
    sink.on_decision(Decision.response("one", pts=1.0), frame(0, 1.0))
    sink.on_decision(Decision.response("two", pts=2.0), frame(1, 2.0))
    # not closed yet (a crash now): the first cue is already on disk
    assert read_cues(tmp_path / "n.srt") == [(1.0, 2.0, "one")]
    sink.close()


def test_jsonl_writer_flushes_each_line_and_reader_skips_torn_tail(tmp_path):
    w = JsonlWriter(tmp_path / "d.jsonl")
    w.write({"a": 1})
    assert read_jsonl(tmp_path / "d.jsonl") == [{"a": 1}]
    w.close()
    with open(tmp_path / "d.jsonl", "a") as f:
        f.write('{"b": ')
    assert read_jsonl(tmp_path / "d.jsonl") == [{"a": 1}]


def test_recorder_writes_frames_decisions_actions(tmp_path):
    rec = Recorder(tmp_path, fps=10)
    for i in range(12):
        rec.on_decision(Decision.silence(seq=i, pts=i / 10), frame(i, i / 10))
    rec.on_action(ActionResult(ToolCall("narrate", {"text": "x"}), True, 3, {"said": "x"}))
    rec.close()
    assert len(read_jsonl(tmp_path / "decisions.jsonl")) == 12
    assert read_jsonl(tmp_path / "actions.jsonl")[0]["call"]["name"] == "narrate"
    with av.open(str(tmp_path / "frames.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 12
    assert json.loads((tmp_path / "meta.json").read_text())["decisions"] == 12


def test_annotated_video_has_one_frame_per_decision_and_draws(tmp_path):
    sink = AnnotatedVideoSink(tmp_path / "a.mp4", fps=10)
    d = Decision.response("A person arrived.", boxes=[Box(0.1, 0.1, 0.5, 0.9, label="person")])
    img = frame(0, 0.0, 320, 240).image
    drawn = draw_decision(img, d, caption="A person arrived.", min_width=0)
    assert drawn.shape == img.shape and not np.array_equal(drawn, img)
    assert draw_decision(img, d).shape == (480, 640, 3)  # small frames are upscaled to stay readable
    feed(sink, [(i / 10, "hello" if i == 3 else None) for i in range(15)])
    with av.open(str(tmp_path / "a.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 15


def test_message_and_console_sinks(tmp_path, capsys):
    m = MessageSink(tmp_path / "m.jsonl")
    feed(m, [(0.5, "hi"), (1.0, None)])
    assert read_jsonl(tmp_path / "m.jsonl") == [{"seq": 0, "pts": 0.5, "text": "hi"}]
    c = ConsoleSink()
    c.on_decision(Decision.response("Someone is here.", pts=2.0), frame(0, 2.0))
    assert "Someone is here." in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_speech_sink_writes_wavs_and_a_timeline(tmp_path):
    from agentkit.tools.narration.speech import SpeechSink

    sink = SpeechSink(tmp_path, play=False)
    feed(sink, [(0.0, None), (1.0, "A person arrived."), (3.0, "A person left.")])
    wavs = sorted((tmp_path / "speech").glob("*.wav"))
    assert len(wavs) == 2
    with wave.open(str(tmp_path / "narration.wav")) as w:
        rate, n = w.getframerate(), w.getnframes()
        samples = np.frombuffer(w.readframes(n), np.int16)
    assert n / rate > 3.0
    assert np.abs(samples[: int(0.9 * rate)]).max() == 0  # silent before the first Response
    assert np.abs(samples[int(1.0 * rate) : int(2.0 * rate)]).max() > 1000  # speech at 1 s
