"""Issue 10 part 3a: ``agentkit serve --mqtt`` workers share the streams of one real Mosquitto broker.

What must hold (``docs/scale-out.md``, "The guarantee"): when a worker is killed (SIGKILL, so the broker
publishes its last will) or leaves cleanly (SIGTERM / ``stop()``), or a worker joins, every stream keeps getting
decisions within a few seconds; the consumer's ``decisions.jsonl`` holds **exactly one record per frame** from
each stream's first record to the last frame published (a decision, or a skip with its reason), no frame twice,
none missing. With the shipped ACL, a worker cannot publish decisions or an offline status in another worker's
name.

Cameras, the recorder and the checks run in this process; workers run as real ``agentkit serve --mqtt``
subprocesses (kill test) or in this process (clean handover, ACL), on the tiny Qwen2-VL checkpoint.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = [pytest.mark.mqtt, pytest.mark.vlm]
pytest.importorskip("aiomqtt")

FPS = 4.0
MAX_GAP_S = 5.0  # "within a few seconds": the longest a stream may go without a decision around a handover


def streams_split(workers: tuple[str, ...], per_worker: int) -> list[str]:
    """Stream names such that each worker owns ``per_worker`` of them while all are live."""
    from agentkit.transport.mqtt.ownership import owner

    by: dict[str, list[str]] = collections.defaultdict(list)
    for i in range(1000):
        name = f"cam{i}"
        w = owner(name, workers)
        if w is not None and len(by[w]) < per_worker:
            by[w].append(name)
        if all(len(by[w]) == per_worker for w in workers):
            break
    return sorted(s for w in workers for s in by[w])


class Feed:
    """Cameras: each stream publishes a frame every 1/FPS s (its config first), from a background task."""

    def __init__(self, broker: str, streams: list[str], auth: Any = None) -> None:
        self.broker, self.streams, self.auth = broker, streams, auth
        self.pubs: dict[str, Any] = {}
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None

    async def start(self) -> None:
        from agentkit.transport.mqtt.streams import StreamPublisher, mqtt_client

        self._client = mqtt_client(self.broker, auth=self.auth, timeout=5)
        await self._client.__aenter__()
        self.pubs = {s: StreamPublisher(self._client, s) for s in self.streams}
        for p in self.pubs.values():
            await p.configure(instruction="Say when something moves.")
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        rng = np.random.default_rng(0)
        start = time.monotonic()
        n = 0
        while True:
            for p in self.pubs.values():
                await p.publish(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
            n += 1
            await asyncio.sleep(max(0.0, start + n / FPS - time.monotonic()))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._client is not None:
            await self._client.__aexit__(None, None, None)

    def last_seq(self, stream: str) -> int:
        return int(self.pubs[stream].seq)


async def wait_for(predicate: Any, timeout_s: float, what: str) -> float:
    """Wait until ``predicate()``; returns the time it took."""
    t0 = time.monotonic()
    while not predicate():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - t0


def decisions(rec: Any, stream: str | None = None, worker: str | None = None, since: float = 0.0) -> list[dict]:
    return [
        r
        for r in rec.records
        if r["kind"] != "skipped"
        and (stream is None or r["stream"] == stream)
        and (worker is None or r["worker"] == worker)
        and r["received_t"] >= since
    ]


def check_log(rec: Any, feed: Feed, path: Path | None = None) -> dict[str, Any]:
    """Exactly one record per frame from each stream's first record to its last published frame."""
    seen: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    records = [json.loads(x) for x in path.read_text().splitlines()] if path is not None else rec.records
    for r in records:
        for s in range(r["seq"], r.get("last", r["seq"]) + 1):
            seen[r["stream"]][s] += 1
    report: dict[str, Any] = {"skipped": dict(rec.book.stats.skipped), "duplicates": rec.book.stats.duplicates}
    for stream in feed.streams:
        counts = seen[stream]
        assert counts, f"{stream}: no records at all"
        twice = sorted(s for s, n in counts.items() if n > 1)
        assert not twice, f"{stream}: frames recorded twice: {twice[:10]}"
        first, last = min(counts), feed.last_seq(stream)
        missing = sorted(set(range(first, last + 1)) - set(counts))
        assert not missing, f"{stream}: frames {first}..{last} without a record: {missing[:20]}"
        assert first <= 3, f"{stream}: the record starts at frame {first}"
    assert rec.book.gaps() == {}
    assert rec.rejected.total == 0, rec.rejected.counts
    return report


def max_gap(rec: Any, stream: str, start: float, end: float) -> float:
    """The longest time ``stream`` went without a decision arriving, within ``[start, end]``."""
    times = [start, *sorted(r["received_t"] for r in decisions(rec, stream) if start <= r["received_t"] <= end), end]
    return max(b - a for a, b in itertools.pairwise(times))


# -- workers --------------------------------------------------------------------------------------------------
class WorkerProcess:
    """``agentkit serve --mqtt`` in a subprocess."""

    def __init__(self, broker: str, checkpoint: Path, worker_id: str, log_dir: Path) -> None:
        cmd = [sys.executable, "-m", "agentkit.apps.cli", "serve", "--mqtt", broker, "--model", str(checkpoint)]
        cmd += ["--worker-id", worker_id, "--threads", "1", "-a", "max_new_tokens=4"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "AGENTKIT_LOG": "INFO"}
        self.log = log_dir / f"{worker_id}.log"
        self._out = self.log.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, env=env)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


class InProcessWorker:
    """A :class:`MqttWorker` on its own copy of the model, in this event loop (``await InProcessWorker.start()``)."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.task = asyncio.create_task(worker.run())

    @classmethod
    async def start(cls, broker: str, checkpoint: Path, worker_id: str, auth: Any = None) -> InProcessWorker:
        from agentkit.apps.serve.config import ServeConfig
        from agentkit.apps.serve.mqtt_worker import MqttWorker, MqttWorkerConfig
        from agentkit.apps.serve.service import StreamService
        from agentkit.policies.vlm.loading import load

        config = ServeConfig(model=str(checkpoint), policy={"max_new_tokens": 4})
        loaded = await asyncio.to_thread(load, str(checkpoint))  # the cameras and the other worker go on
        service = StreamService(config, loaded, "tiny")
        return cls(MqttWorker(service, MqttWorkerConfig(broker=broker, worker_id=worker_id), auth))

    async def stop(self) -> None:
        self.worker.stop()
        await asyncio.wait_for(self.task, 30)


@pytest.fixture()
def one_torch_thread():
    """In-process workers run two model threads in this process: one torch thread each (as ``--threads 1``),
    or their OpenMP threads spin against each other and the machine's other jobs (stalls of seconds)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- the tests ------------------------------------------------------------------------------------------------
def test_killed_worker_streams_move_within_seconds_and_no_frame_is_lost_or_recorded_twice(broker, tiny_qwen, tmp_path):
    """Two worker processes, four streams at 4 fps; SIGKILL one mid-run: its streams move to the other."""
    from agentkit.transport.mqtt.streams import DecisionRecorder

    streams = streams_split(("w1", "w2"), 2)
    out = tmp_path / "decisions.jsonl"

    async def go() -> dict[str, Any]:
        rec = DecisionRecorder(broker.url, out)
        await rec.start()
        procs = [WorkerProcess(broker.url, tiny_qwen, w, tmp_path) for w in ("w1", "w2")]
        feed = Feed(broker.url, streams)
        try:
            up = await wait_for(lambda: rec.workers.live() == {"w1", "w2"}, 120, "both workers online")
            await feed.start()
            await wait_for(lambda: all(len(decisions(rec, s)) >= 4 for s in streams), 60, "decisions on every stream")
            owners = {s: decisions(rec, s)[-1]["worker"] for s in streams}
            assert sorted(owners.values()) == ["w1", "w1", "w2", "w2"], owners  # ownership as the hash says
            moved = [s for s in streams if owners[s] == "w1"]
            await asyncio.sleep(1.0)
            killed = time.time()
            procs[0].kill(signal.SIGKILL)
            will_s = await wait_for(lambda: rec.workers.live() == {"w2"}, 10, "w1's last will")
            await wait_for(
                lambda: all(decisions(rec, s, "w2", since=killed) for s in moved), 3 * MAX_GAP_S, "the takeover"
            )
            await asyncio.sleep(3.0)  # live on the surviving worker
            end = time.time()
            await feed.stop()
            last = {s: feed.last_seq(s) for s in streams}
            await wait_for(
                lambda: all(any(r["seq"] == last[s] for r in rec.records if r["stream"] == s) for s in streams),
                15,
                "the last frames' records",
            )
            report = check_log(rec, feed, out)
            first_new = {s: min(r["received_t"] for r in decisions(rec, s, "w2", since=killed)) for s in moved}
            last_old = {s: max(r["received_t"] for r in decisions(rec, s, "w1")) for s in moved}
            report.update(
                workers_up_s=round(up, 1),
                kill_to_first_decision_s={s: round(first_new[s] - killed, 3) for s in moved},
                takeover_gap_s={s: round(first_new[s] - last_old[s], 3) for s in moved},
                max_gap_s={s: round(max_gap(rec, s, killed - 2.0, end), 3) for s in streams},
                takeover_decisions=sum(1 for r in decisions(rec) if r.get("takeover")),
                will_seen_s=round(will_s, 3),
                takeover_ms=[  # w2's own time from the will to serving (sink + replay + catch-up)
                    float(x) for x in re.findall(r"took stream \S+ in (\d+) ms", procs[1].log.read_text())
                ][-len(moved) :],
            )
            return report
        finally:
            await feed.stop()
            for p in procs:
                p.close()
            await rec.close()

    report = asyncio.run(go())
    print("failover report:", json.dumps(report))
    assert all(g < MAX_GAP_S for g in report["max_gap_s"].values()), report
    assert report["skipped"]["not_received"] == 0 and report["skipped"]["rejected"] == 0, report
    assert report["skipped"]["takeover"] == 0, report  # the will came at once: nothing was left too old


def test_a_worker_joining_and_leaving_cleanly_hands_streams_over_without_losing_frames(
    broker, tiny_qwen, one_torch_thread
):
    """w1 serves all streams; w2 joins (its streams move to it), then stops cleanly (they move back)."""
    from agentkit.transport.mqtt.streams import DecisionRecorder

    streams = streams_split(("w1", "w2"), 2)

    async def go() -> dict[str, Any]:
        rec = DecisionRecorder(broker.url)
        await rec.start()
        w1 = await InProcessWorker.start(broker.url, tiny_qwen, "w1")
        feed = Feed(broker.url, streams)
        w2 = None
        try:
            await wait_for(lambda: rec.workers.live() == {"w1"}, 60, "w1 online")
            await feed.start()
            await wait_for(lambda: all(decisions(rec, s, "w1") for s in streams), 30, "w1 serving every stream")
            joined = time.time()
            w2 = await InProcessWorker.start(broker.url, tiny_qwen, "w2")
            await wait_for(lambda: len({r["stream"] for r in decisions(rec, worker="w2")}) == 2, 60, "w2 taking over")
            mine = sorted({r["stream"] for r in decisions(rec, worker="w2")})
            await asyncio.sleep(1.5)
            left = time.time()
            await w2.stop()  # clean: finishes its turns, publishes them, says offline
            await wait_for(lambda: rec.workers.live() == {"w1"}, 5, "w2's offline status")
            await wait_for(lambda: all(decisions(rec, s, "w1", since=left) for s in mine), 10, "w1 taking them back")
            await asyncio.sleep(1.5)
            end = time.time()
            await feed.stop()
            last = {s: feed.last_seq(s) for s in streams}
            await wait_for(
                lambda: all(any(r["seq"] == last[s] for r in rec.records if r["stream"] == s) for s in streams),
                15,
                "the last frames' records",
            )
            report = check_log(rec, feed)
            report.update(
                mine=mine,
                join_gap_s={s: round(max_gap(rec, s, joined, left), 3) for s in mine},
                leave_gap_s={s: round(max_gap(rec, s, left, end), 3) for s in mine},
                w2=w2.worker.metrics()["counters"],
            )
            return report
        finally:
            await feed.stop()
            if w2 is not None and not w2.task.done():
                await w2.stop()
            await w1.stop()
            await rec.close()

    report = asyncio.run(go())
    print("handover report:", json.dumps(report))
    from agentkit.transport.mqtt.ownership import owner

    assert report["mine"] == [s for s in streams if owner(s, {"w1", "w2"}) == "w2"]
    assert all(g < MAX_GAP_S for g in [*report["join_gap_s"].values(), *report["leave_gap_s"].values()]), report
    # a clean handover leaves nothing behind: no frame skipped for a takeover, none never received
    assert report["skipped"]["takeover"] == 0 and report["skipped"]["not_received"] == 0, report
    assert report["w2"].get("unpublished", 0) == 0, report


USERS = {"worker-1": "w1-pw", "worker-2": "w2-pw", "monitor": "mon-pw", "cam1": "cam-pw"}


def test_with_the_shipped_acl_a_worker_cannot_speak_for_another(tiny_qwen, one_torch_thread):
    """The shipped config and ACL: worker-1 serves cam1; worker-2 can publish its own decisions, but neither a
    decision nor an offline status in worker-1's name; the camera cannot publish decisions at all."""
    from agentkit.errors import ConfigError
    from agentkit.transport.mqtt.auth import MqttAuth
    from agentkit.transport.mqtt.broker import MosquittoBroker, shipped_config_dir
    from agentkit.transport.mqtt.streams import DecisionRecorder, decision_topic, encode_json, mqtt_client, status_topic

    def auth(user: str) -> MqttAuth:
        return MqttAuth(username=user, password=USERS[user])

    conf = shipped_config_dir()
    try:
        secure = MosquittoBroker(config=conf / "mosquitto.conf", users=USERS, acl=conf / "acl")
    except ConfigError as e:
        pytest.skip(str(e))

    async def go(url: str) -> None:
        from agentkit.transport.mqtt.streams import StreamDecisionMsg

        rec = DecisionRecorder(url, auth=auth("monitor"))
        await rec.start()
        w1 = await InProcessWorker.start(url, tiny_qwen, "worker-1", auth=auth("worker-1"))
        feed = Feed(url, ["cam1"], auth=auth("cam1"))
        try:
            await wait_for(lambda: rec.workers.live() == {"worker-1"}, 60, "worker-1 online")
            await feed.start()
            await wait_for(lambda: len(decisions(rec, "cam1", "worker-1")) >= 3, 30, "worker-1's decisions")
            session = feed.pubs["cam1"].session

            def forged(worker: str, seq: int) -> bytes:
                msg = StreamDecisionMsg(stream="cam1", worker=worker, worker_session="x", session=session, seq=seq,
                                        after=seq - 1, t=time.time(), frame_t=time.time(), kind="response",
                                        text="forged")  # fmt: skip
                return encode_json(msg)

            offline = json.dumps({"online": False, "session": "x", "t": time.time()}).encode()
            async with mqtt_client(url, auth=auth("worker-2"), timeout=5) as w2:
                await w2.publish(decision_topic("cam1", "worker-1"), forged("worker-1", 10**6), qos=1)
                await w2.publish(status_topic("worker-1"), offline, qos=1, retain=True)
                await w2.publish(decision_topic("cam1", "worker-2"), forged("worker-2", 10**6 + 1), qos=1)
            async with mqtt_client(url, auth=auth("cam1"), timeout=5) as cam:
                await cam.publish(decision_topic("cam1", "worker-1"), forged("worker-1", 10**6 + 2), qos=1)
            await wait_for(lambda: any(r["seq"] == 10**6 + 1 for r in rec.records), 5, "worker-2's own message")
            await asyncio.sleep(0.5)
            seqs = {r["seq"] for r in rec.records}
            assert 10**6 not in seqs and 10**6 + 2 not in seqs  # dropped by the broker: no grant
            assert rec.workers.live() == {"worker-1"}  # the forged offline status never arrived
            n = len(decisions(rec, "cam1", "worker-1"))
            await wait_for(lambda: len(decisions(rec, "cam1", "worker-1")) > n + 2, 10, "worker-1 going on")
            counters = w1.worker.metrics()["counters"]
            assert counters.get("unpublished", 0) == 0
            assert counters["claims_ahead"] >= 1  # worker-2's own far-ahead claim did not silence cam1 either
        finally:
            await feed.stop()
            await w1.stop()
            await rec.close()

    with secure as b:
        asyncio.run(go(b.url))


def test_stream_publish_and_stream_record_commands(broker, tmp_path):
    """The CLI ends of the pool: a camera (``agentkit stream-publish``) and a consumer (``agentkit stream-record``),
    with a stand-in worker answering the frames here (one decision sent twice: recorded once)."""
    from agentkit.transport.mqtt.streams import (
        ALL_CONFIGS,
        ALL_FRAMES,
        StreamConfigMsg,
        StreamDecisionMsg,
        decision_topic,
        decode_frame_header,
        decode_json,
        encode_json,
        mqtt_client,
    )

    out = tmp_path / "decisions.jsonl"
    cli = [sys.executable, "-m", "agentkit.apps.cli"]
    recorder = subprocess.Popen(
        [*cli, "stream-record", "--broker", broker.url, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert recorder.stdout is not None
    assert "stream-record: recording" in recorder.stdout.readline()  # subscribed: nothing published now is missed

    async def go() -> tuple[list[int], StreamConfigMsg | None]:
        seqs: list[int] = []
        config = None
        async with mqtt_client(broker.url, timeout=5) as c:
            await c.subscribe(ALL_FRAMES, qos=1)
            await c.subscribe(ALL_CONFIGS, qos=1)
            camera = await asyncio.create_subprocess_exec(
                *cli, "stream-publish", "test-pattern", "--broker", broker.url, "--stream", "cam1", "--fps", "10",
                "--max-frames", "5", "--instruction", "Count the squares.", "--max-width", "64",
            )  # fmt: skip
            async with asyncio.timeout(30):
                async for m in c.messages:
                    if str(m.topic).endswith("/config"):
                        config = decode_json(StreamConfigMsg, bytes(m.payload))
                        continue
                    header, _ = decode_frame_header(bytes(m.payload))
                    seqs.append(header.seq)
                    decision = StreamDecisionMsg(stream="cam1", worker="w1", worker_session="x", session=header.session,
                                                 seq=header.seq, after=header.seq - 1, t=time.time(),
                                                 frame_t=header.t, kind="silence")  # fmt: skip
                    for _ in range(2 if header.seq == 3 else 1):
                        await c.publish(decision_topic("cam1", "w1"), encode_json(decision), qos=1)
                    if len(seqs) == 5:
                        break
            assert await camera.wait() == 0
        return seqs, config

    seqs, config = asyncio.run(go())
    time.sleep(1.0)  # the last decisions reach the recorder
    recorder.send_signal(signal.SIGINT)  # Ctrl-C: it writes its summary and exits 0
    assert seqs == [1, 2, 3, 4, 5]
    assert config is not None and config.instruction == "Count the squares."
    summary, _ = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, summary
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(x["seq"], x["kind"]) for x in lines] == [(i, "silence") for i in range(1, 6)]
    assert '"duplicates": 1' in summary and '"gaps": {}' in summary, summary
