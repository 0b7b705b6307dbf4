"""The loop's contract: latest-wins dropping, losslessness, ordering, cancellation, errors as values."""

import asyncio
import time

import pytest
from pydantic import BaseModel, ConfigDict

from agentkit.loop import LatestSlot, LoopConfig
from agentkit.testing import ListSource, ScriptedPolicy, run_stream
from agentkit.tooling import Tool
from agentkit.types import Decision, ToolCall


def test_slow_policy_on_live_source_drops_instead_of_queueing():
    # 100 frames at 100 fps against a policy that needs 50 ms a frame: at most ~20 can be processed.
    policy = ScriptedPolicy(delay_s=0.05)
    summary, sink = run_stream(ListSource(100, fps=100), policy)
    m = summary.metrics
    assert m["frames_in"] == 100
    assert m["processed"] + m["dropped"] == 100
    assert m["dropped"] >= 50
    # Latency stays bounded by ~one policy step plus one frame wait, never grows with the stream.
    assert m["latency_ms"]["p95"] < 400
    assert sink.frames == sorted(sink.frames)  # newest-first never reorders


def test_lossless_source_processes_every_frame_in_order():
    summary, sink = run_stream(ListSource(40), ScriptedPolicy(delay_s=0.002))
    assert summary.metrics["dropped"] == 0
    assert sink.frames == list(range(40))
    assert [d.seq for d in sink.decisions] == list(range(40))
    assert sink.closed


def test_max_frames_stops_the_run():
    summary, sink = run_stream(ListSource(1000), ScriptedPolicy(), config=LoopConfig(max_frames=7))
    assert summary.metrics["processed"] == 7 and len(sink.decisions) == 7


def test_policy_exception_is_recorded_and_stream_goes_on():
    def decide(frame):
        if frame.seq == 3:
            raise ValueError("bad logits")
        return Decision.silence()

    summary, sink = run_stream(ListSource(6), ScriptedPolicy(decide))
    assert summary.ok and len(sink.decisions) == 6
    assert "bad logits" in sink.decisions[3].errors[0]


def test_source_error_ends_run_with_error_and_closes_sinks():
    summary, sink = run_stream(ListSource(10, fail_after=4, error=OSError("disk gone")), ScriptedPolicy())
    assert summary.error == "disk gone"
    assert len(sink.decisions) == 4 and sink.closed


class SleepArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float


class SleepTool(Tool):
    name = "sleep"
    Args = SleepArgs

    def __init__(self):
        self.started = 0
        self.cancelled = 0

    async def run(self, args):
        self.started += 1
        try:
            await asyncio.sleep(args.seconds)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return {"slept": args.seconds}


def test_tool_calls_run_as_tasks_while_frames_keep_streaming_and_instruct_cancels_them():
    tool = SleepTool()

    def decide(frame):
        if frame.seq == 0:
            return Decision.response(tool_calls=[ToolCall("sleep", {"seconds": 30})])
        return Decision.silence()

    async def interrupt(loop):
        while loop.metrics.processed < 10:  # noqa: ASYNC110 - polling a counter the loop owns
            await asyncio.sleep(0.01)
        loop.instruct("stop that, new task")

    t0 = time.monotonic()
    summary, _sink = run_stream(ListSource(40, fps=100), ScriptedPolicy(decide), tools=[tool], during=interrupt)
    assert time.monotonic() - t0 < 10  # the 30 s action did not block the stream or the end of the run
    assert tool.started == 1 and tool.cancelled == 1
    assert summary.metrics["processed"] >= 10  # frames kept flowing while the action ran


def test_invalid_tool_calls_become_recorded_errors():
    tool = SleepTool()

    def decide(frame):
        calls = {
            0: [ToolCall("sleep", {"seconds": "soon"})],
            1: [ToolCall("fly", {})],
            2: [ToolCall("sleep", {"seconds": 0})],
        }
        return Decision.response(tool_calls=calls[frame.seq]) if frame.seq in calls else Decision.silence()

    summary, sink = run_stream(ListSource(5), ScriptedPolicy(decide), tools=[tool])
    by_seq = {a.seq: a for a in sink.actions}
    assert not by_seq[0].ok and "seconds" in by_seq[0].error
    assert not by_seq[1].ok and "unknown tool 'fly'" in by_seq[1].error
    assert by_seq[2].ok and by_seq[2].output == {"slept": 0}
    assert summary.metrics["action_errors"] == 2


class EveryOther:
    def admit(self, frame):
        return frame.seq % 2 == 0


def test_gate_skips_frames_as_silence_without_calling_policy():
    policy = ScriptedPolicy()
    summary, sink = run_stream(ListSource(10), policy, gate=EveryOther())
    assert policy.seen == [0, 2, 4, 6, 8]
    assert summary.metrics["gated"] == 5 and all(d.gated for d in sink.decisions[1::2])


def test_latest_slot_counts_replacements():
    async def go():
        slot = LatestSlot()
        from agentkit.testing import ListSource

        frames = [f async for f in ListSource(3).frames()]
        for f in frames:
            slot.put(f)
        got = await slot.get()
        slot.close()
        return slot.dropped, got.seq, await slot.get()

    assert asyncio.run(go()) == (2, 2, None)


@pytest.mark.parametrize("n", [1, 5])
def test_policy_reset_called_once_per_run(n):
    policy = ScriptedPolicy()
    run_stream(ListSource(n), policy)
    assert policy.resets == 1
